-- core.tcp_check against the local TCP and TLS fixtures (spec/fixtures/
-- tcp_server.py on 127.0.0.1 and ::1): every outcome and failure kind,
-- timeouts, cancellation at any point, IPv6, TLS verification and the
-- certificate's facts.
local core = require("moonwatch.core")
local tcp_fixture = require("support.tcp_fixture")
local fixture = require("support.fixture")

local DAY = 86400

describe("core.tcp_check", function()
  local srv, P

  lazy_setup(function()
    srv = tcp_fixture.start()
    P = srv.ports
  end)
  lazy_teardown(function()
    if srv then srv:stop() end
  end)

  local function check(opts)
    return core.run(function() return table.pack(core.tcp_check(opts)) end)
  end

  local function ok(opts)
    local r = check(opts)
    assert.is_table(r[1], tostring(r[2]))
    return r[1]
  end

  -- nil, "kind: message", kind, partial result
  local function failure(kind, opts)
    local r = check(opts)
    assert.is_nil(r[1])
    assert.equals(kind, r[3], tostring(r[2]))
    assert.equals(kind .. ": ", r[2]:sub(1, #kind + 2))
    return r[2], r[4]
  end

  describe("over plain TCP", function()
    it("connects, and measures the connection", function()
      local r = ok{ host = "127.0.0.1", port = P.echo }
      assert.equals("127.0.0.1", r.ip)
      assert.equals(P.echo, r.port)
      assert.is_nil(r.reply, "nothing is read without send, read_max or read_until")
      assert.is_nil(r.cert)
      local t = r.time
      assert.equals(0, t.dns, "an address is not resolved")
      assert.is_true(t.connect > 0 and t.connect <= t.total)
      assert.equals(0, t.tls)
      assert.equals(0, t.first_byte)
    end)

    it("sends and reads the reply up to the end of its line", function()
      local r = ok{ host = "127.0.0.1", port = P.echo, send = "PING\r\n" }
      assert.equals("+PONG\r\n", r.reply)
      assert.equals(7, r.size)
      assert.equals("until", r.ended)
      assert.is_true(r.time.first_byte >= r.time.connect and r.time.first_byte <= r.time.total)
    end)

    it("reads a banner the server sends first", function()
      local r = ok{ host = "127.0.0.1", port = P.banner, read_max = 512 }
      assert.equals("220 moonwatch.test ESMTP ready\r\n", r.reply)
      assert.equals("until", r.ended)
    end)

    it("reads until read_until, or to read_max", function()
      -- the reply is every byte read by then (the banner comes in one piece)
      local r = ok{ host = "127.0.0.1", port = P.banner, read_until = "ESMTP" }
      assert.equals("220 moonwatch.test ESMTP ready\r\n", r.reply)
      assert.equals("until", r.ended)
      r = ok{ host = "127.0.0.1", port = P.banner, read_max = 3 }
      assert.equals("220", r.reply)
      assert.equals("limit", r.ended)
      r = ok{ host = "127.0.0.1", port = P.big, read_max = 1000 }
      assert.equals(1000, #r.reply)
      assert.equals("limit", r.ended)
    end)

    it("reads until the server closes when read_until is empty", function()
      local r = ok{ host = "127.0.0.1", port = P.big, read_until = "", read_max = 1000000 }
      assert.equals(string.rep("x", 100000), r.reply)
      assert.equals("closed", r.ended)
    end)

    it("sends binary data as it is", function()
      local r = ok{ host = "127.0.0.1", port = P.echo, send = "a\0b\n" }
      assert.equals("a\0b\n", r.reply)
    end)

    it("keeps what came when the timeout ends a reply", function()
      local r = ok{ host = "127.0.0.1", port = P.partial, read_max = 100, timeout = 0.2 }
      assert.equals("+PART", r.reply)
      assert.equals("timeout", r.ended)
    end)

    it("connects over IPv6, with or without brackets", function()
      for _, host in ipairs{ "::1", "[::1]" } do
        local r = ok{ host = host, port = P.echo, send = "PING\n" }
        assert.equals("::1", r.ip)
        assert.equals("+PONG\r\n", r.reply)
      end
    end)

    it("resolves names", function()
      local r = ok{ host = "localhost", port = P.echo, send = "PING\n" }
      assert.equals("127.0.0.1", r.ip, "IPv4 first")
      assert.equals("+PONG\r\n", r.reply)
    end)
  end)

  describe("fails with a kind", function()
    it("refused: nothing listens on the port", function()
      local msg = failure("refused", { host = "127.0.0.1", port = P.refused })
      assert.equals("refused: connection to 127.0.0.1:" .. P.refused .. " refused", msg)
    end)

    it("refused: after trying every address of a name", function()
      local msg, partial = failure("refused", { host = "localhost", port = P.refused })
      assert.equals("refused: connection to [::1]:" .. P.refused
        .. " refused (the last of 2 addresses of 'localhost')", msg)
      assert.equals("::1", partial.ip)
    end)

    it("dns: a name that does not resolve", function()
      local msg = failure("dns", { host = "nowhere.invalid", port = 80 })
      assert.matches("could not resolve host 'nowhere.invalid': not found", msg, 1, true)
    end)

    it("timeout: no reply", function()
      local t0 = core.now()
      local msg, partial = failure("timeout", { host = "127.0.0.1", port = P.silent,
                                                send = "PING\n", timeout = 0.2 })
      local took = core.now() - t0
      assert.equals("timeout: no reply from 127.0.0.1:" .. P.silent .. " within 0.2 s", msg)
      assert.is_true(took >= 0.2 and took < 2, took .. " s")
      assert.is_true(partial.time.connect > 0)
      assert.is_true(partial.time.total >= 0.2)
    end)

    it("timeout: no connection (a listener whose queue is full)", function()
      local msg, partial = failure("timeout", { host = "127.0.0.1", port = P.backlog,
                                                timeout = 0.3 })
      assert.equals("timeout: no connection to 127.0.0.1:" .. P.backlog .. " within 0.3 s", msg)
      assert.equals(0, partial.time.connect)
      assert.is_true(partial.time.total >= 0.3)
    end)

    it("timeout: a TLS handshake that never ends", function()
      local msg = failure("timeout", { host = "127.0.0.1", port = P.silent, tls = true,
                                       timeout = 0.2 })
      assert.matches("the TLS handshake with 127.0.0.1:%d+ did not end within 0.2 s", msg)
    end)

    it("closed: the server closes without a byte", function()
      local msg = failure("closed", { host = "127.0.0.1", port = P.close, read_max = 10 })
      assert.equals("closed: 127.0.0.1:" .. P.close .. " closed the connection without replying",
        msg)
    end)

    it("reset: the server resets the connection", function()
      -- the reset comes while the probe reads, or before it saw the connection
      local msg = failure("reset", { host = "127.0.0.1", port = P.reset, read_max = 10 })
      assert.is_truthy(msg:find("Connection reset by peer", 1, true)
        or msg:find("was reset", 1, true), msg)
    end)

    it("tls: a server that does not speak TLS", function()
      local msg = failure("tls", { host = "127.0.0.1", port = P.close, tls = true })
      assert.matches("TLS handshake with 127.0.0.1:%d+ failed", msg)
    end)

    it("tls: a CA file that cannot be read", function()
      local msg = failure("tls", { host = "127.0.0.1", port = P.tls_valid, tls = true,
                                   ca_file = "/nonexistent/ca.pem" })
      assert.matches("cannot read the CA file '/nonexistent/ca.pem'", msg, 1, true)
    end)
  end)

  describe("over TLS", function()
    it("verifies against a CA file, by name and by IP address", function()
      for _, host in ipairs{ "localhost", "127.0.0.1" } do
        local r = ok{ host = host, port = P.tls_valid, tls = true, ca_file = srv.ca.valid }
        assert.equals("ok", r.cert.verify)
        assert.matches("^TLSv1%.[23]$", r.tls_version)
        assert.is_string(r.cipher)
        assert.is_true(r.time.tls > r.time.connect and r.time.tls <= r.time.total)
      end
    end)

    it("sends and reads over TLS", function()
      local r = ok{ host = "localhost", port = P.tls_valid, tls = true, ca_file = srv.ca.valid,
                    send = "PING\r\n" }
      assert.equals("+PONG\r\n", r.reply)
      assert.is_true(r.time.first_byte >= r.time.tls)
    end)

    it("gives the certificate's facts", function()
      local r = ok{ host = "::1", port = P.tls_valid, tls = true, ca_file = srv.ca.valid,
                    server_name = "localhost" }
      local c = r.cert
      assert.equals("CN=localhost", c.subject)
      assert.equals("CN=localhost", c.issuer)
      assert.same({ "localhost" }, c.san_dns)
      assert.same({ "127.0.0.1" }, c.san_ip)
      local now = os.time()
      assert.is_true(math.abs(c.not_before - now) < 600, "not_before " .. c.not_before)
      assert.is_true(math.abs(c.not_after - (now + 3 * DAY)) < 600, "not_after " .. c.not_after)
      assert.equals(c.not_after, c.expiry)
      assert.equals(c.expiry, r.cert_expiry)
      assert.equals(1, c.chain)
      local p = io.popen("openssl x509 -noout -fingerprint -sha256 -serial -in "
        .. fixture.shell_quote(srv.ca.valid))
      local out = p:read("a")
      p:close()
      local fp = out:match("Fingerprint=([%x:]+)"):gsub(":", ""):lower()
      assert.equals(fp, c.sha256)
      local serial = out:match("serial=(%x+)"):lower()
      assert.equals(serial, c.serial)
    end)

    it("fails a self-signed certificate against the system's CAs", function()
      local msg, partial = failure("tls", { host = "localhost", port = P.tls_valid, tls = true })
      assert.matches("did not verify: self%-signed certificate", msg)
      assert.equals("self-signed certificate", partial.cert.verify)
      assert.equals("CN=localhost", partial.cert.subject)
    end)

    it("fails an expired certificate, and still reports it", function()
      local msg, partial = failure("tls", { host = "localhost", port = P.tls_expired,
                                            tls = true, ca_file = srv.ca.expired })
      assert.equals("tls: the certificate of 127.0.0.1:" .. P.tls_expired
        .. " (localhost) did not verify: certificate has expired", msg)
      assert.equals("certificate has expired", partial.cert.verify)
      assert.is_true(partial.cert_expiry < os.time())
    end)

    it("fails a certificate for another host, unless server_name names it", function()
      local msg, partial = failure("tls", { host = "localhost", port = P.tls_wrong_host,
                                            tls = true, ca_file = srv.ca.wrong_host })
      assert.matches("did not verify: hostname mismatch", msg, 1, true)
      assert.same({ "wrong.example" }, partial.cert.san_dns)
      local r = ok{ host = "127.0.0.1", port = P.tls_wrong_host, tls = true,
                    ca_file = srv.ca.wrong_host, server_name = "wrong.example" }
      assert.equals("ok", r.cert.verify)
      assert.equals("CN=wrong.example", r.cert.subject)
    end)

    it("with insecure = true goes on and reports why it did not verify", function()
      local r = ok{ host = "localhost", port = P.tls_expired, tls = true, insecure = true,
                    send = "PING\n" }
      assert.equals("+PONG\r\n", r.reply)
      assert.is_truthy(r.cert.verify == "self-signed certificate"
        or r.cert.verify == "certificate has expired", r.cert.verify)
      r = ok{ host = "localhost", port = P.tls_wrong_host, tls = true, insecure = true,
              ca_file = srv.ca.wrong_host }
      assert.equals("hostname mismatch", r.cert.verify)
    end)
  end)

  describe("is cancellable", function()
    -- Cancelled after 0, 1, 2... loop turns: in every phase it reaches
    -- (connect, TLS, send, read); nothing may be left.
    local function cancel_at_every_turn(opts)
      for turns = 0, 12 do
        core.run(function()
          local status
          local task = core.spawn(function()
            local r = table.pack(core.tcp_check(opts))
            status = r[1] and "done" or r[3]
          end)
          for _ = 1, turns do core.sleep(0) end
          if not status then
            assert.is_true(task:cancel())
            assert.equals("cancelled", task:status())
          end
        end)
        assert.same({ tasks = 0, handles = 0 }, core.stats())
      end
    end

    it("while a connection is not made", function()
      cancel_at_every_turn{ host = "127.0.0.1", port = P.backlog, timeout = 30 }
    end)

    it("while connecting or waiting for a reply", function()
      cancel_at_every_turn{ host = "localhost", port = P.silent, send = "PING\n", timeout = 30 }
    end)

    it("during a TLS handshake", function()
      cancel_at_every_turn{ host = "127.0.0.1", port = P.silent, tls = true, timeout = 30 }
    end)

    it("while reading over TLS", function()
      cancel_at_every_turn{ host = "127.0.0.1", port = P.tls_valid, tls = true,
                            ca_file = srv.ca.valid, read_max = 10, timeout = 30 }
    end)
  end)

  describe("options", function()
    local function raises(opts, msg)
      local good, err = pcall(core.tcp_validate, opts)
      assert.is_false(good)
      assert.matches(msg, err, 1, true)
      good, err = pcall(check, opts)
      assert.is_false(good)
      assert.matches(msg, err, 1, true)
    end

    it("are checked, each error naming its option", function()
      assert.is_true(core.tcp_validate{ host = "localhost", port = 1 })
      raises({ host = "localhost", port = 1, tsl = true }, "tcp check: unknown option 'tsl'")
      raises({ port = 1 }, "tcp check: option 'host' is required")
      raises({ host = "localhost" }, "tcp check: option 'port' is required")
      raises({ host = "localhost", port = 0 },
        "tcp check: option 'port' must be an integer from 1 to 65535, got 0")
      raises({ host = "localhost", port = "80" },
        "tcp check: option 'port' must be an integer from 1 to 65535, got string")
      raises({ host = "", port = 1 }, "tcp check: option 'host' must not be empty")
      raises({ host = "a b", port = 1 },
        "tcp check: option 'host' must be a host name or an IP address, got 'a b'")
      raises({ host = "localhost", port = 1, timeout = 0 },
        "tcp check: option 'timeout' must be a number of seconds in (0, 86400], got 0")
      raises({ host = "localhost", port = 1, tls = "yes" },
        "tcp check: option 'tls' must be a boolean, got string")
      raises({ host = "localhost", port = 1, server_name = "x" },
        "tcp check: option 'server_name' needs tls = true")
      raises({ host = "localhost", port = 1, insecure = true },
        "tcp check: option 'insecure' needs tls = true")
      raises({ host = "localhost", port = 1, read_max = -1 },
        "tcp check: option 'read_max' must be a number of bytes from 0 to 16777216, got -1")
      raises({ host = "localhost", port = 1, send = 5 },
        "tcp check: option 'send' must be a string, got 5")
    end)

    it("must be called from a task", function()
      local good, err = pcall(core.tcp_check, { host = "localhost", port = 1 })
      assert.is_false(good)
      assert.matches("core.tcp_check must be called from a task", err, 1, true)
    end)
  end)
end)
