-- mw.DnsMonitor against the fixture's DNS responder (zone probe.test) and
-- its blackhole: results, conditions, failure kinds, records, bad options.
local mw = require("moonwatch")
local core = require("moonwatch.core")
local fixture = require("support.fixture")

local function check(m)
  local cap <close> = mw.log.capture()
  local r = core.run(function() return m:check() end)
  return r, cap
end

local function refusal(options)
  local ok, err = pcall(mw.DnsMonitor, options)
  assert.is_false(ok, "expected DnsMonitor to refuse the options")
  return err
end

describe("DnsMonitor", function()
  local srv, server

  lazy_setup(function()
    mw.log.setup{ level = "INFO" }
    srv = fixture.start()
    server = "127.0.0.1:" .. srv.dns_port
  end)
  lazy_teardown(function() if srv then srv:stop() end end)
  after_each(function() assert.same({ tasks = 0, handles = 0 }, core.stats()) end)

  local function monitor(o)
    o.server = o.server or server
    return mw.DnsMonitor(o)
  end

  it("is up on NOERROR by default, with the answers and an INFO record", function()
    local r, cap = check(monitor{ name = "www", query = "a.probe.test" })
    assert.is_true(r.up)
    assert.equals("www", r.monitor)
    assert.equals("NOERROR", r.rcode)
    assert.equals(2, #r.answers)
    assert.equals("192.0.2.1", r.answers[1].address)
    assert.is_true(r.duration > 0)
    assert.is_number(r.time.total)
    assert.equals(1, #cap)
    assert.equals("INFO", cap[1].level)
    assert.equals("DnsMonitor", cap[1].name)
    assert.equals("www", cap[1].fields.monitor)
    assert.equals("a.probe.test", cap[1].fields.query)
    assert.equals("192.0.2.1, 192.0.2.2", cap[1].fields.data)
    assert.truthy(cap[1].message:find("DNS a.probe.test A @" .. server, 1, true), cap[1].message)
  end)

  it("defaults: type A, check_every 60 s, the name is the query", function()
    local m = monitor{ query = "a.probe.test" }
    assert.equals(60, m.interval)
    assert.equals("a.probe.test", m.name)
    assert.equals("A", m.query.type)
  end)

  it("reads every type", function()
    local cases = {
      { "aaaa.probe.test", "AAAA", "2001:db8::1" },
      { "cname.probe.test", "CNAME", "a.probe.test" },
      { "probe.test", "MX", "10 mail.probe.test" },
      { "probe.test", "TXT", "v=spf1 -all" },
      { "probe.test", "NS", "ns2.probe.test" },
      { "probe.test", "SOA", "ns1.probe.test hostmaster.probe.test 2026120301 3600 600 86400 60" },
      { "_http._tcp.probe.test", "SRV", "10 60 8080 web.probe.test" },
      { "probe.test", "CAA", '0 issue "letsencrypt.org"' },
    }
    for _, c in ipairs(cases) do
      local r = check(monitor{ query = c[1], type = c[2], expect = { answer_contains = c[3] } })
      assert.is_true(r.up, c[2] .. ": " .. tostring(r.reason))
    end
  end)

  it("a truncated UDP answer: the whole answer over TCP", function()
    local r = check(monitor{ query = "big.probe.test", type = "TXT",
                             expect = { min_answers = 40 } })
    assert.is_true(r.up, r.reason)
  end)

  describe("rcode", function()
    it("NXDOMAIN is down with kind nxdomain; SERVFAIL servfail; REFUSED refused", function()
      for name, kind in pairs{ nx = "nxdomain", servfail = "servfail", refused = "refused" } do
        local r, cap = check(monitor{ query = name .. ".probe.test" })
        assert.is_false(r.up)
        assert.equals(kind, r.kind)
        assert.equals("rcode " .. kind:upper() .. ", expected NOERROR", r.reason)
        assert.equals("WARNING", cap[1].level)
        assert.equals(kind, cap[1].fields.kind)
      end
    end)

    it("expects another rcode, or one of a list (any case)", function()
      assert.is_true(check(monitor{ query = "nx.probe.test",
                                    expect = { rcode = "nxdomain" } }).up)
      local m = monitor{ query = "a.probe.test",
                         expect = { rcode = { "NXDOMAIN", "SERVFAIL" } } }
      local r = check(m)
      assert.is_false(r.up)
      assert.equals("rcode NOERROR, expected NXDOMAIN or SERVFAIL", r.reason)
      assert.equals("condition", r.kind)
    end)
  end)

  describe("conditions", function()
    it("answer_contains: an answer equal to each value (names without case or final dot)",
      function()
        assert.is_true(check(monitor{ query = "probe.test", type = "NS",
          expect = { answer_contains = { "NS1.probe.test.", "ns2.probe.test" } } }).up)
        local r = check(monitor{ query = "a.probe.test",
                                 expect = { answer_contains = "192.0.2.3" } })
        assert.is_false(r.up)
        assert.equals('no answer is "192.0.2.3" (answers: "192.0.2.1", "192.0.2.2")', r.reason)
        assert.equals("condition", r.kind)
        r = check(monitor{ query = "a.probe.test", type = "MX",
                           expect = { answer_contains = "x" } })
        assert.equals('no answer is "x" (no answers)', r.reason)
      end)

    it("answer_matches: a regular expression some answer matches", function()
      assert.is_true(check(monitor{ query = "probe.test", type = "MX",
        expect = { answer_matches = "^10 mail\\." } }).up)
      local r = check(monitor{ query = "probe.test", type = "TXT",
        expect = { answer_matches = "^v=DMARC1" } })
      assert.is_false(r.up)
      assert.equals('no answer matches /^v=DMARC1/ (answers: "v=spf1 -all", "hello world")',
        r.reason)
    end)

    it("min_answers", function()
      assert.is_true(check(monitor{ query = "a.probe.test", expect = { min_answers = 2 } }).up)
      local r = check(monitor{ query = "aaaa.probe.test", type = "AAAA",
                               expect = { min_answers = 2 } })
      assert.equals("1 answer, expected at least 2", r.reason)
    end)

    it("max_response_ms", function()
      assert.is_true(check(monitor{ query = "a.probe.test",
                                    expect = { max_response_ms = 5000 } }).up)
      local r = check(monitor{ query = "a.probe.test", expect = { max_response_ms = 1e-6 } })
      assert.is_false(r.up)
      assert.truthy(r.reason:find("^response took %d+ ms, expected below 1e%-06 ms$"), r.reason)
    end)

    it("check: any function of the answer, with its reason", function()
      local m = monitor{ query = "probe.test", type = "SOA", expect = { check = function(a)
        return a.answers[1].serial >= 2027000000, "the zone was not updated"
      end } }
      local r = check(m)
      assert.is_false(r.up)
      assert.equals("the zone was not updated", r.reason)
      assert.equals("condition", r.kind)
    end)

    it("the rcode is judged first", function()
      local r = check(monitor{ query = "nx.probe.test", expect = { min_answers = 1 } })
      assert.equals("nxdomain", r.kind)
    end)
  end)

  describe("failures of the query", function()
    it("a server that never answers: kind timeout", function()
      local r, cap = check(monitor{ query = "a.probe.test", timeout = 0.2,
                                    server = "127.0.0.1:" .. srv.dns_blackhole_port })
      assert.is_false(r.up)
      assert.equals("timeout", r.kind)
      assert.equals("timeout: no answer within 0.2 s", r.reason)
      assert.equals("WARNING", cap[1].level)
    end)

    it("a closed port: kind refused", function()
      local socket = require("socket")
      local u = assert(socket.udp())
      assert(u:setsockname("127.0.0.1", 0))
      local _, port = u:getsockname()
      u:close()
      local r = check(monitor{ query = "a.probe.test", server = "127.0.0.1:" .. port })
      assert.is_false(r.up)
      assert.equals("refused", r.kind)
    end)

    it("a spec's stand-in for core.dns_query", function()
      local m = mw.DnsMonitor{ query = "a.test", dns_query = function(q)
        assert.equals("a.test", q.name)
        return { rcode = "NOERROR", answers = { { data = "10.0.0.1" } }, time = { total = 0.001 } }
      end, expect = { answer_contains = "10.0.0.1" } }
      assert.is_true(check(m).up)
    end)
  end)

  describe("bad options fail when the monitor is built", function()
    local cases = {
      { { query = "x", sever = "127.0.0.1" }, "options: unknown option 'sever' (did you mean "
        .. "'server'?)" },
      { { query = "x", tipe = "A" }, "options: unknown option 'tipe' (did you mean 'type'?)" },
      { {}, "options.query must be a DNS name (a non-empty string), got nil" },
      { { query = "x", type = "PTR" }, "options: core.dns_query: option 'type' must be A, AAAA, "
        .. "CNAME, MX, TXT, NS, SOA, SRV or CAA, got 'PTR'" },
      { { query = "x", type = 1 }, "options.type must be one of A, AAAA" },
      { { query = "x", server = "ns.example" }, "options: core.dns_query: option 'server' must "
        .. "be an IP address" },
      { { query = "x", timeout = -1 }, "option 'timeout' must be a number of seconds" },
      { { query = "x", check_every = 0 }, "options.check_every must be a number of seconds "
        .. "greater than 0, got 0" },
      { { query = "x", failure_threshold = 0 }, "options.failure_threshold must be an integer "
        .. "of at least 1, got 0" },
      { { query = "x", expect = { rcod = "NOERROR" } }, "options: unknown condition 'rcod' "
        .. "(did you mean 'rcode'?)" },
      { { query = "x", expect = { rcode = "NXDOMIAN" } }, 'options.expect.rcode: "NXDOMIAN" is '
        .. "not an rcode (use NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED, YXDOMAIN, "
        .. "YXRRSET, NXRRSET, NOTAUTH, NOTZONE) (did you mean 'NXDOMAIN'?)" },
      { { query = "x", expect = { min_answers = -1 } }, "options.expect.min_answers: must be "
        .. "a whole number of answers (0 or more), got -1" },
      { { query = "x", expect = { answer_matches = "(" } }, "options.expect.answer_matches: " },
      { { query = "x", expect = { answer_contains = {} } }, "options.expect.answer_contains: "
        .. "must be a string or a list of them, got an empty table" },
      { { query = "x", expect = { max_response_ms = 0 } }, "options.expect.max_response_ms: "
        .. "must be a number of milliseconds greater than 0, got 0" },
      { { query = "x", expect = { check = 1 } }, "options.expect.check: must be a "
        .. "function(response), got 1" },
    }
    for _, case in ipairs(cases) do
      it(case[2], function()
        local err = refusal(case[1])
        assert.truthy(tostring(err):find(case[2], 1, true), err)
      end)
    end
  end)

  it("runs under the dispatcher with a State", function()
    local state = mw.State{}
    local m = monitor{ name = "dns", query = "nx.probe.test", check_every = 0.05,
                       failure_threshold = 1 }
    local d = mw.Dispatcher{ monitors = { m }, consumers = { state } }
    local _ <close> = mw.log.capture()
    core.run(function()
      d:start()
      fixture.await("the monitor to go down", 5, function()
        local s = state:get("dns")
        return s and s.state == "DOWN"
      end)
      d:stop()
    end)
    assert.equals("rcode NXDOMAIN, expected NOERROR", state:get("dns").reason)
  end)
end)
