-- mw.TcpMonitor and mw.TlsMonitor against the local TCP and TLS fixtures:
-- their results, records, conditions and failure kinds, and the errors of
-- bad options.
local core = require("moonwatch.core")
local mw = require("moonwatch")
local tcp_fixture = require("support.tcp_fixture")

-- Runs one check in a task, capturing its records: records, result.
local function check(m)
  local cap <close> = mw.log.capture()
  local r
  core.run(function() r = m:check() end)
  return cap, r
end

local function refused(cls, options)
  local ok, err = pcall(cls, options)
  assert.is_false(ok, "expected the options to be refused")
  return err
end

describe("TcpMonitor", function()
  local srv, P

  lazy_setup(function()
    mw.log.setup{ level = "INFO" }
    srv = tcp_fixture.start()
    P = srv.ports
  end)
  lazy_teardown(function() if srv then srv:stop() end end)

  after_each(function()
    assert.same({ tasks = 0, handles = 0 }, core.stats())
  end)

  local function addr(name, host) return (host or "127.0.0.1") .. ":" .. P[name] end

  it("is up when the port accepts, and logs one record", function()
    local m = mw.TcpMonitor{ name = "db", address = addr("echo"), check_every = 10 }
    assert.equals("db", m.name)
    assert.equals(10, m.interval)
    local cap, r = check(m)
    assert.is_true(r.up)
    assert.equals("db", r.monitor)
    assert.equals("127.0.0.1", r.ip)
    assert.is_nil(r.size)
    assert.is_true(r.duration > 0)
    assert.is_true(r.timings.connect > 0)
    assert.equals(1, #cap)
    assert.equals("INFO", cap[1].level)
    assert.equals("TcpMonitor", cap[1].name)
    assert.equals("Check\n    TCP " .. addr("echo") .. "\n    took: ", cap[1].message:match(
      "^(.-)%d+%.?%d* seconds$"))
    assert.equals("db", cap[1].fields.monitor)
    assert.equals(addr("echo"), cap[1].fields.address)
  end)

  it("sends and judges the reply: Redis's +PONG", function()
    local m = mw.TcpMonitor{ address = addr("echo"), check_every = 1, send = "PING\r\n",
                             expect = { reply_contains = "+PONG" } }
    assert.equals(addr("echo"), m.name, "named after its address")
    local _, r = check(m)
    assert.is_true(r.up, r.reason)
    assert.equals(7, r.size)
  end)

  it("reads the banner of a server that speaks first: SMTP's 220", function()
    local m = mw.TcpMonitor{ address = addr("banner", "[::1]"), interval = 1,
                             expect = { reply_matches = "^220 " } }
    assert.equals(1, m.interval)
    local _, r = check(m)
    assert.is_true(r.up, r.reason)
    assert.equals("::1", r.ip)
  end)

  it("is down with a condition's reason", function()
    local m = mw.TcpMonitor{ name = "redis", address = addr("banner"), check_every = 1,
                             expect = { reply_contains = "+PONG" } }
    local cap, r = check(m)
    assert.is_false(r.up)
    assert.equals("condition", r.kind)
    assert.equals('reply does not contain "+PONG" (it starts "220 moonwatch.test ESMTP'
      .. ' ready\\r\\n")', r.reason)
    assert.equals("WARNING", cap[1].level)
    assert.matches("Check failed\n    TCP " .. addr("banner") .. "\n    reason: reply does not",
      cap[1].message, 1, true)
    m = mw.TcpMonitor{ address = addr("echo"), check_every = 1, send = "HELLO\n",
                       expect = { reply_matches = "^\\+PONG" } }
    r = select(2, check(m))
    assert.equals('reply does not match /^\\+PONG/ (it starts "HELLO\\n")', r.reason)
    m = mw.TcpMonitor{ address = addr("echo"), check_every = 1,
                       expect = { max_response_ms = 0.0001 } }
    r = select(2, check(m))
    assert.matches("^response took %d+ ms, expected below 0.0001 ms$", r.reason)
    m = mw.TcpMonitor{ address = addr("echo"), check_every = 1, send = "PING\n",
                       expect = function(res) return res.reply == "+PONG\r\n", "not pong" end }
    r = select(2, check(m))
    assert.is_true(r.up)
    m = mw.TcpMonitor{ address = addr("echo"), check_every = 1, send = "X\n",
                       expect = { check = function(res) return false, "got " .. #res.reply end } }
    r = select(2, check(m))
    assert.equals("got 2", r.reason)
  end)

  it("is down with the probe's failure kind", function()
    local cases = {
      { "refused", { address = addr("refused") }, "refused: connection to 127.0.0.1:" },
      { "timeout", { address = addr("silent"), send = "PING\n", timeout = 0.2 },
        "timeout: no reply from 127.0.0.1:" },
      { "closed", { address = addr("close"), read_max = 10 }, "closed: 127.0.0.1:" },
      { "dns", { address = "nowhere.invalid:80" }, "dns: could not resolve host" },
      { "tls", { address = addr("tls_valid"), tls = true }, "tls: the certificate of" },
    }
    for _, case in ipairs(cases) do
      local o = case[2]
      o.check_every = 1
      local cap, r = check(mw.TcpMonitor(o))
      assert.is_false(r.up)
      assert.equals(case[1], r.kind)
      assert.equals(case[3], r.reason:sub(1, #case[3]))
      assert.equals("WARNING", cap[1].level)
    end
  end)

  it("speaks TLS and reads the certificate", function()
    local m = mw.TcpMonitor{ address = addr("tls_valid", "localhost"), check_every = 1,
                             tls = true, ca_file = srv.ca.valid, send = "PING\n",
                             expect = { reply_contains = "+PONG", cert_valid_days = 2 } }
    local _, r = check(m)
    assert.is_true(r.up, r.reason)
    assert.is_true(r.cert_expiry > os.time() + 2 * 86400)
    assert.is_true(r.timings.tls > 0)
    m = mw.TcpMonitor{ address = addr("echo"), check_every = 1, expect = { cert_valid_days = 2 } }
    _, r = check(m)
    assert.equals("no certificate: the connection did not use TLS (set tls = true)", r.reason)
  end)

  it("takes a probe in place of core.tcp_check (specs)", function()
    local seen
    local m = mw.TcpMonitor{ address = "db.example.com:5432", check_every = 1,
      expect = { reply_contains = "ok" },
      tcp_check = function(probe)
        seen = probe
        return { reply = "ok\n", size = 3, ip = "192.0.2.1", time = { total = 0.01 } }
      end }
    local _, r = check(m)
    assert.is_true(r.up)
    assert.equals("192.0.2.1", r.ip)
    assert.same({ host = "db.example.com", port = 5432, timeout = 10, read_max = 4096 }, seen)
  end)

  it("takes its options from settings as providers pass them", function()
    local m = mw.TcpMonitor{ name = "cache", options = { address = addr("echo"), check_every = 5 } }
    assert.equals("cache", m.name)
    assert.equals(5, m.interval)
  end)

  describe("refuses bad options", function()
    local base = function(extra)
      local o = { address = "localhost:6379", check_every = 1 }
      for k, v in pairs(extra) do o[k] = v end
      return o
    end

    it("naming the closest known one", function()
      assert.equals("options: unknown option 'sned' (did you mean 'send'?)",
        refused(mw.TcpMonitor, base{ sned = "PING\n" }))
      assert.equals("options: unknown option 'timout' (did you mean 'timeout'?)",
        refused(mw.TcpMonitor, base{ timout = 1 }))
      assert.equals("options: unknown condition 'reply_contain' (did you mean"
        .. " 'reply_contains'?)", refused(mw.TcpMonitor, base{ expect = { reply_contain = "x" } }))
      assert.equals("options: unknown condition 'body_contains' (did you mean"
        .. " 'reply_contains'?)", refused(mw.TcpMonitor, base{ expect = { body_contains = "x" } }))
    end)

    it("a bad address", function()
      for _, address in ipairs{ "localhost", "localhost:0", "localhost:99999", ":80", "[::1]",
                                "a:b:c", 80 } do
        local err = refused(mw.TcpMonitor, base{ address = address })
        assert.matches('options.address must be "host:port" (e.g. "db.example.com:5432" or'
          .. ' "[::1]:6379"), got ', err, 1, true)
      end
    end)

    it("bad timing", function()
      assert.matches("options.check_every must be a number of seconds of at least 0.001, got nil",
        refused(mw.TcpMonitor, { address = "localhost:1" }), 1, true)
      assert.equals("options: give check_every or interval, not both",
        refused(mw.TcpMonitor, base{ interval = 1 }))
      assert.equals("options.timeout must be a number of seconds greater than 0, got 0",
        refused(mw.TcpMonitor, base{ timeout = 0 }))
      assert.equals("options.failure_threshold must be an integer of at least 1, got 0",
        refused(mw.TcpMonitor, base{ failure_threshold = 0 }))
    end)

    it("bad conditions", function()
      assert.matches("options.expect.reply_matches: ",
        refused(mw.TcpMonitor, base{ expect = { reply_matches = "(" } }), 1, true)
      assert.equals("options.expect.cert_valid_days: must be a number of days (0 or more), got"
        .. ' "x"', refused(mw.TcpMonitor, base{ expect = { cert_valid_days = "x" } }))
      assert.equals("options.expect.reply_contains: must be a string or a list of them, got 1",
        refused(mw.TcpMonitor, base{ expect = { reply_contains = 1 } }))
    end)

    it("what the probe would refuse", function()
      assert.equals("options: option 'server_name' needs tls = true",
        refused(mw.TcpMonitor, base{ server_name = "x" }))
      assert.equals("options: option 'read_max' must be a number of bytes from 0 to 16777216,"
        .. " got -1", refused(mw.TcpMonitor, base{ read_max = -1 }))
      assert.equals("options: option 'tls' must be a boolean, got string",
        refused(mw.TcpMonitor, base{ tls = "yes" }))
    end)
  end)
end)

describe("TlsMonitor", function()
  local srv, P

  lazy_setup(function()
    mw.log.setup{ level = "INFO" }
    srv = tcp_fixture.start()
    P = srv.ports
  end)
  lazy_teardown(function() if srv then srv:stop() end end)

  after_each(function()
    assert.same({ tasks = 0, handles = 0 }, core.stats())
  end)

  local function addr(name) return "localhost:" .. P[name] end

  it("is up while the certificate verifies and is valid long enough", function()
    local m = mw.TlsMonitor{ name = "mail", address = addr("tls_valid"), ca_file = srv.ca.valid,
                             check_every = 60, expect = { cert_valid_days = 2 } }
    local cap, r = check(m)
    assert.is_true(r.up, r.reason)
    assert.is_true(r.cert_expiry > os.time())
    assert.equals("TlsMonitor", cap[1].name)
    assert.matches("^Check\n    TLS " .. addr("tls_valid"):gsub("%p", "%%%0"), cap[1].message)
  end)

  it("is down when the certificate expires within cert_valid_days", function()
    local m = mw.TlsMonitor{ address = addr("tls_valid"), ca_file = srv.ca.valid,
                             check_every = 60, expect = { cert_valid_days = 14 } }
    local _, r = check(m)
    assert.is_false(r.up)
    assert.equals("condition", r.kind)
    assert.matches("^certificate expires in [23]%.%d days %(%d+%-%d+%-%d+T[%d:]+Z%), expected"
      .. " more than 14$", r.reason)
  end)

  it("is down, kind tls, when the certificate does not verify", function()
    local cases = {
      { "tls_expired", srv.ca.expired, "certificate has expired" },
      { "tls_wrong_host", srv.ca.wrong_host, "hostname mismatch" },
      { "tls_valid", nil, "self-signed certificate" },
    }
    for _, case in ipairs(cases) do
      local _, r = check(mw.TlsMonitor{ address = addr(case[1]), ca_file = case[2],
                                        check_every = 60, expect = { cert_valid_days = 1 } })
      assert.is_false(r.up)
      assert.equals("tls", r.kind)
      assert.equals("did not verify: " .. case[3], r.reason:match("did not verify: .*$"))
      assert.is_number(r.cert_expiry, "the certificate is still read")
    end
  end)

  it("with insecure = true judges the dates of a certificate that does not verify", function()
    local m = mw.TlsMonitor{ address = addr("tls_expired"), insecure = true, check_every = 60,
                             expect = { cert_valid_days = 7 } }
    local _, r = check(m)
    assert.equals("condition", r.kind)
    assert.matches("^certificate expired %d%.%d days ago", r.reason)
  end)

  it("uses port 443 by default, and knows no TCP option", function()
    local seen
    local m = mw.TlsMonitor{ address = "example.com", check_every = 60, server_name = "www",
                             tcp_check = function(p) seen = p return { time = {} } end }
    check(m)
    assert.same({ host = "example.com", port = 443, tls = true, server_name = "www",
                  timeout = 10 }, seen)
    assert.equals("options: unknown option 'send'",
      refused(mw.TlsMonitor, { address = "example.com", check_every = 60, send = "x" }))
    assert.equals("options: unknown condition 'reply_contains'", refused(mw.TlsMonitor,
      { address = "example.com", check_every = 60, expect = { reply_contains = "x" } }))
  end)
end)

describe("README TCP and TLS probes", function()
  it("builds the monitors of its example as they are", function()
    local f = assert(io.open("README.md"))
    local text = f:read("a")
    f:close()
    local start = assert(text:find("\n### TCP and TLS probes", 1, true))
    local block = assert(text:match("```lua\n(.-)```", start))
    local built = {}
    local env = { mw = setmetatable({}, { __index = function(_, k)
      return function(options)
        local m = mw[k](options)
        built[#built + 1] = m
        return m
      end
    end }) }
    assert(load(block, "=README.md (TCP and TLS probes)", "t", env))()
    assert.equals(3, #built)
    assert.same({ "redis", "smtp", "imaps" }, { built[1].name, built[2].name, built[3].name })
    assert.equals(4096, built[2].probe.read_max, "a reply condition reads the banner")
    assert.is_true(built[3].probe.tls)
  end)
end)
