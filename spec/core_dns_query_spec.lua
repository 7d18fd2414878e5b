-- moonwatch.core: core.dns_query against the fixture's DNS responder (the
-- zone probe.test, over UDP and TCP, on 127.0.0.1 and ::1) and its
-- blackhole; never the system's DNS servers.
local core = require("moonwatch.core")
local fixture = require("support.fixture")

local function system_servers()
  local servers = {}
  local f = io.open("/etc/resolv.conf")
  if f then
    for line in f:lines() do
      local ip = line:match("^%s*nameserver%s+(%S+)")
      if ip then
        servers[#servers + 1] = ip:find(":", 1, true) and ("[" .. ip .. "]:53") or (ip .. ":53")
      end
    end
    f:close()
  end
  if #servers == 0 then servers[1] = "127.0.0.1:53" end
  return servers
end

-- Whether lo has ::1 (the kernel's list of IPv6 addresses, as `ip -6 addr`).
local function has_ipv6_loopback()
  local f = io.open("/proc/net/if_inet6")
  local out = f and f:read("a") or ""
  if f then f:close() end
  return out:find("^" .. ("0"):rep(31) .. "1 ") ~= nil
    or out:find("\n" .. ("0"):rep(31) .. "1 ") ~= nil
end

describe("core.dns_query", function()
  local srv, server

  lazy_setup(function()
    srv = fixture.start()
    server = "127.0.0.1:" .. srv.dns_port
  end)
  lazy_teardown(function() if srv then srv:stop() end end)
  after_each(function() assert.same({ tasks = 0, handles = 0 }, core.stats()) end)

  local function query(opts)
    opts.server = opts.server or server
    return core.run(function() return core.dns_query(opts) end)
  end

  local function answers(r, key)
    local out = {}
    for i, a in ipairs(r.answers) do out[i] = a[key] end
    return out
  end

  it("A: addresses with their TTLs, rcode NOERROR, the time taken", function()
    local r, err = query{ name = "a.probe.test", type = "A" }
    assert.is_table(r, err)
    assert.equals("NOERROR", r.rcode)
    assert.is_true(r.authoritative)
    assert.is_false(r.truncated)
    assert.same({ "192.0.2.1", "192.0.2.2" }, answers(r, "address"))
    assert.same({ "192.0.2.1", "192.0.2.2" }, answers(r, "data"))
    assert.same({ 300, 300 }, answers(r, "ttl"))
    assert.same({ "A", "A" }, answers(r, "type"))
    assert.same({ "a.probe.test", "a.probe.test" }, answers(r, "name"))
    assert.same({}, r.cnames)
    assert.is_true(r.time.total > 0 and r.time.total < 5)
  end)

  it("type defaults to A; the name's case does not matter", function()
    local r = assert(query{ name = "A.Probe.Test" })
    assert.same({ "192.0.2.1", "192.0.2.2" }, answers(r, "address"))
  end)

  it("AAAA", function()
    local r = assert(query{ name = "aaaa.probe.test", type = "AAAA" })
    assert.same({ { type = "AAAA", name = "aaaa.probe.test", ttl = 120, address = "2001:db8::1",
                    data = "2001:db8::1" } }, r.answers)
  end)

  it("CNAME: the target; an A query through it lists the CNAME in cnames", function()
    local r = assert(query{ name = "cname.probe.test", type = "CNAME" })
    assert.same({ { type = "CNAME", name = "cname.probe.test", ttl = 60, target = "a.probe.test",
                    data = "a.probe.test" } }, r.answers)
    r = assert(query{ name = "cname.probe.test", type = "A" })
    assert.same({ "192.0.2.1", "192.0.2.2" }, answers(r, "address"))
    assert.same({ "a.probe.test" }, { r.cnames[1].target })
  end)

  it("MX: preference and exchange", function()
    local r = assert(query{ name = "probe.test", type = "MX" })
    assert.same({ 10, 20 }, answers(r, "preference"))
    assert.same({ "mail.probe.test", "backup.probe.test" }, answers(r, "exchange"))
    assert.same({ "10 mail.probe.test", "20 backup.probe.test" }, answers(r, "data"))
    assert.same({ 3600, 3600 }, answers(r, "ttl"))
  end)

  it("TXT: the text, and its character-strings", function()
    local r = assert(query{ name = "probe.test", type = "TXT" })
    assert.same({ "v=spf1 -all", "hello world" }, answers(r, "text"))
    assert.same({ { "v=spf1 -all" }, { "hello ", "world" } }, answers(r, "strings"))
  end)

  it("NS: the name servers", function()
    local r = assert(query{ name = "probe.test", type = "NS" })
    assert.same({ "ns1.probe.test", "ns2.probe.test" }, answers(r, "target"))
    assert.same({ 86400, 86400 }, answers(r, "ttl"))
  end)

  it("SOA: mname, rname, serial, refresh, retry, expire, minimum", function()
    local r = assert(query{ name = "probe.test", type = "SOA" })
    assert.same({ { type = "SOA", name = "probe.test", ttl = 3600, mname = "ns1.probe.test",
                    rname = "hostmaster.probe.test", serial = 2026120301, refresh = 3600,
                    retry = 600, expire = 86400, minimum = 60,
                    data = "ns1.probe.test hostmaster.probe.test 2026120301 3600 600 86400 60" } },
      r.answers)
  end)

  it("SRV: priority, weight, port, target", function()
    local r = assert(query{ name = "_http._tcp.probe.test", type = "SRV" })
    assert.same({ { type = "SRV", name = "_http._tcp.probe.test", ttl = 600, priority = 10,
                    weight = 60, port = 8080, target = "web.probe.test",
                    data = "10 60 8080 web.probe.test" } }, r.answers)
  end)

  it("CAA: flags, tag, value", function()
    local r = assert(query{ name = "probe.test", type = "caa" })
    assert.same({ 0, 128 }, answers(r, "flags"))
    assert.same({ "issue", "iodef" }, answers(r, "tag"))
    assert.same({ "letsencrypt.org", "mailto:security@probe.test" }, answers(r, "value"))
    assert.same({ '0 issue "letsencrypt.org"', '128 iodef "mailto:security@probe.test"' },
      answers(r, "data"))
  end)

  it("NXDOMAIN, SERVFAIL and REFUSED are answers with their rcode, not failures", function()
    for name, rcode in pairs{ nx = "NXDOMAIN", servfail = "SERVFAIL", refused = "REFUSED" } do
      local r, err = query{ name = name .. ".probe.test" }
      assert.is_table(r, err)
      assert.equals(rcode, r.rcode)
      assert.same({}, r.answers)
    end
  end)

  it("NOERROR with no records of the type", function()
    local r = assert(query{ name = "a.probe.test", type = "MX" })
    assert.equals("NOERROR", r.rcode)
    assert.same({}, r.answers)
  end)

  it("a truncated UDP answer is asked again over TCP", function()
    -- over UDP the fixture sends only the TC bit, no record: every record
    -- here came over TCP
    local r, err = query{ name = "big.probe.test", type = "TXT" }
    assert.is_table(r, err)
    assert.is_false(r.truncated)
    assert.equals(40, #r.answers)
    assert.equals("record 39 " .. ("x"):rep(40), r.answers[40].text)
    r = assert(query{ name = "big.probe.test", type = "A" })
    assert.equals(100, #r.answers)
  end)

  it("asks a server on ::1", function()
    assert(has_ipv6_loopback(), "this machine has no ::1 on lo: the IPv6 spec cannot run")
    local r, err = query{ name = "a.probe.test", server = "[::1]:" .. srv.dns_port }
    assert.is_table(r, err)
    assert.same({ "192.0.2.1", "192.0.2.2" }, answers(r, "address"))
  end)

  it("without server, asks the resolver's servers (core.dns_configure)", function()
    core.dns_configure{ servers = { server } }
    local r, err = core.run(function()
      return core.dns_query{ name = "probe.test", type = "MX" }
    end)
    core.dns_configure{ servers = system_servers() }
    assert.is_table(r, err)
    assert.same({ "mail.probe.test", "backup.probe.test" }, answers(r, "exchange"))
  end)

  it("a server that never answers: nil, 'timeout: ...', 'timeout' after the timeout", function()
    local started = core.now()
    local r, err, kind = query{ name = "a.probe.test",
                                server = "127.0.0.1:" .. srv.dns_blackhole_port, timeout = 0.3 }
    local took = core.now() - started
    assert.is_nil(r)
    assert.equals("timeout", kind)
    assert.equals("timeout: no answer within 0.3 s", err)
    assert.is_true(took >= 0.3 and took < 2, took)
  end)

  it("is cancelled with its task: nothing left behind", function()
    local t = core.spawn(function()
      return core.dns_query{ name = "a.probe.test", timeout = 30,
                             server = "127.0.0.1:" .. srv.dns_blackhole_port }
    end)
    core.run(function()
      fixture.await("the query to wait", 5, function() return t:status() == "waiting" end)
      assert.is_true(t:cancel())
    end)
    assert.equals("cancelled", t:status())
    assert.same({ tasks = 0, handles = 0 }, core.stats())
    -- the channel still works for the next query
    local r, err = query{ name = "a.probe.test" }
    assert.is_table(r, err)
  end)

  it("many queries at once on one channel", function()
    local r, err = core.run(function()
      local tasks = {}
      for i = 1, 50 do
        tasks[i] = core.spawn(function() return core.dns_query{ name = "a.probe.test",
                                                                server = server } end)
      end
      local n = 0
      for _, t in ipairs(tasks) do
        while not (t:status() == "done" or t:status() == "failed") do core.sleep(0.005) end
        local ok, a = t:result()
        if ok and a and #a.answers == 2 then n = n + 1 end
      end
      return n
    end)
    assert.equals(50, r, err)
  end)

  it("must be called from a task", function()
    local ok, err = pcall(core.dns_query, { name = "a.probe.test" })
    assert.is_false(ok)
    assert.truthy(err:find("core.dns_query must be called from a task", 1, true), err)
  end)

  describe("bad options raise naming the option", function()
    local cases = {
      { {}, "core.dns_query: option 'name' must be a non-empty string, got nil" },
      { { name = "" }, "core.dns_query: option 'name' must be a non-empty string, got an "
        .. "empty string or one with a NUL byte" },
      { { name = "x", type = "PTR" }, "core.dns_query: option 'type' must be A, AAAA, CNAME, "
        .. "MX, TXT, NS, SOA, SRV or CAA, got 'PTR'" },
      { { name = "x", server = "dns.example" }, "core.dns_query: option 'server' must be an "
        .. "IP address with an optional port (127.0.0.1, 127.0.0.1:5353, ::1, [::1]:5353), "
        .. "got 'dns.example'" },
      { { name = "x", server = "127.0.0.1:0" }, "got '127.0.0.1:0'" },
      { { name = "x", server = "[::1" }, "got '[::1'" },
      { { name = "x", timeout = 0 }, "core.dns_query: option 'timeout' must be a number of "
        .. "seconds in (0, 3600]" },
      { { name = "x", timeout = "1" }, "core.dns_query: option 'timeout' must be a number of "
        .. "seconds in (0, 3600]" },
      { { name = "x", sever = "127.0.0.1" }, "core.dns_query: unknown option 'sever'" },
    }
    for _, case in ipairs(cases) do
      it(case[2], function()
        local ok, err = pcall(core.dns_check, case[1])
        assert.is_false(ok)
        assert.truthy(tostring(err):find(case[2], 1, true), err)
        ok, err = core.run(function() return pcall(core.dns_query, case[1]) end)
        assert.is_false(ok)
        assert.truthy(tostring(err):find(case[2], 1, true), err)
      end)
    end
  end)

  it("a name that is not a DNS name fails as dns", function()
    local r, err, kind = query{ name = ("x"):rep(64) .. ".test" }
    assert.is_nil(r)
    assert.equals("dns", kind)
    assert.equals("dns: not a valid DNS name", err)
  end)
end)
