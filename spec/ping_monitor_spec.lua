-- mw.PingMonitor: real pings of 127.0.0.1 and ::1, and a stand-in for
-- core.ping where a loopback cannot lose a packet (loss, no reply).
local mw = require("moonwatch")
local core = require("moonwatch.core")

local function check(m)
  local cap <close> = mw.log.capture()
  local r = core.run(function() return m:check() end)
  return r, cap
end

-- A stand-in for core.ping: rtts in ms, false for a lost request.
local function fake(rtts_ms)
  return function(opts)
    local rtts, sum, min, max, got = {}, 0, math.huge, 0, 0
    for i, ms in ipairs(rtts_ms) do
      rtts[i] = ms and ms / 1000
      if ms then
        got, sum = got + 1, sum + ms / 1000
        min, max = math.min(min, ms / 1000), math.max(max, ms / 1000)
      end
    end
    local r = { address = opts.host, sent = #rtts_ms, received = got, rtts = rtts,
                loss = 100 * (#rtts_ms - got) / #rtts_ms, time = { total = 0.01 } }
    if got > 0 then r.rtt = { min = min, avg = sum / got, max = max } end
    return r
  end
end

describe("PingMonitor", function()
  lazy_setup(function() mw.log.setup{ level = "INFO" } end)
  after_each(function() assert.same({ tasks = 0, handles = 0 }, core.stats()) end)

  it("pings 127.0.0.1: up, with sent, received, loss, RTTs and an INFO record", function()
    local r, cap = check(mw.PingMonitor{ name = "lo", host = "127.0.0.1", count = 3,
                                          interval = 0.02, expect = { max_loss = 0 } })
    assert.is_true(r.up, r.reason)
    assert.equals("lo", r.monitor)
    assert.equals("127.0.0.1", r.address)
    assert.equals(3, r.sent)
    assert.equals(3, r.received)
    assert.equals(0, r.loss)
    assert.is_true(r.rtt.min <= r.rtt.avg and r.rtt.avg <= r.rtt.max)
    assert.equals(3, #r.rtts)
    assert.equals(1, #cap)
    assert.equals("INFO", cap[1].level)
    assert.equals("PingMonitor", cap[1].name)
    assert.equals("127.0.0.1", cap[1].fields.host)
    assert.equals(3, cap[1].fields.received)
    assert.truthy(cap[1].message:find("PING 127.0.0.1 (127.0.0.1)\n    received: 3 of 3", 1,
      true), cap[1].message)
  end)

  it("pings ::1", function()
    local r = check(mw.PingMonitor{ host = "::1", count = 2, interval = 0.02 })
    assert.is_true(r.up, r.reason)
    assert.equals("::1", r.address)
  end)

  it("defaults: count 3, interval 1 s, timeout 1 s, check_every 60 s, named by its host",
    function()
      local m = mw.PingMonitor{ host = "127.0.0.1" }
      assert.same({ host = "127.0.0.1", count = 3, interval = 1, timeout = 1 }, m.options)
      assert.equals(60, m.interval)
      assert.equals("127.0.0.1", m.name)
    end)

  it("max_rtt_ms: the slowest reply must come within it", function()
    assert.is_true(check(mw.PingMonitor{ host = "127.0.0.1", count = 1,
                                         expect = { max_rtt_ms = 500 } }).up)
    local r = check(mw.PingMonitor{ host = "x", ping = fake{ 1, 30, 2 },
                                    expect = { max_rtt_ms = 20 } })
    assert.is_false(r.up)
    assert.equals("the slowest reply took 30.0 ms, expected below 20 ms", r.reason)
    assert.equals("condition", r.kind)
  end)

  it("without max_loss, up while one reply comes; down with kind timeout when none", function()
    assert.is_true(check(mw.PingMonitor{ host = "x", ping = fake{ false, false, 3 } }).up)
    local r, cap = check(mw.PingMonitor{ host = "x", ping = fake{ false, false, false } })
    assert.is_false(r.up)
    assert.equals("timeout", r.kind)
    assert.equals("no reply to 3 echo requests", r.reason)
    assert.equals(100, r.loss)
    assert.is_nil(r.rtt)
    assert.equals("WARNING", cap[1].level)
  end)

  it("max_loss is a percentage of the requests sent: above it, kind loss", function()
    local m = mw.PingMonitor{ host = "x", ping = fake{ 1, false, 1 }, expect = { max_loss = 20 } }
    local r = check(m)
    assert.is_false(r.up)
    assert.equals("loss", r.kind)
    assert.equals("loss 33.3% (1 of 3 lost), expected at most 20%", r.reason)
    assert.is_true(check(mw.PingMonitor{ host = "x", ping = fake{ 1, false, 1 },
                                         expect = { max_loss = 50 } }).up)
    -- max_loss = 100 still needs one reply
    r = check(mw.PingMonitor{ host = "x", ping = fake{ false }, expect = { max_loss = 100 } })
    assert.equals("timeout", r.kind)
  end)

  it("check: any function of the ping's result", function()
    local r = check(mw.PingMonitor{ host = "x", ping = fake{ 1, 2 }, expect = {
      check = function(p) return p.received == 3, "expected three replies" end } })
    assert.equals("expected three replies", r.reason)
    assert.equals("condition", r.kind)
  end)

  it("a failed ping is down with its kind (dns)", function()
    local r, cap = check(mw.PingMonitor{ host = "nothing.invalid", count = 1 })
    assert.is_false(r.up)
    assert.equals("dns", r.kind)
    assert.equals("dns: could not resolve host 'nothing.invalid': not found", r.reason)
    assert.truthy(cap[1].message:find("PING nothing.invalid\n    error: dns: ", 1, true))
  end)

  it("a permission failure is down with kind permission", function()
    local r = check(mw.PingMonitor{ host = "127.0.0.1", ping = function()
      return nil, "permission: cannot open an ICMP socket: ...", "permission"
    end })
    assert.is_false(r.up)
    assert.equals("permission", r.kind)
  end)

  describe("bad options fail when the monitor is built", function()
    local cases = {
      { { host = "x", cout = 3 }, "options: unknown option 'cout' (did you mean 'count'?)" },
      { {}, "options.host must be a host name or an IP address, got nil" },
      { { host = "x", count = 0 }, "options: core.ping: option 'count' must be an integer from "
        .. "1 to 100" },
      { { host = "x", interval = 0.001 }, "options: core.ping: option 'interval' must be a "
        .. "number of seconds from 0.01 to 60" },
      { { host = "x", timeout = 0 }, "option 'timeout' must be a number of seconds" },
      { { host = "x", expect = { max_los = 1 } }, "options: unknown condition 'max_los' (did you "
        .. "mean 'max_loss'?)" },
      { { host = "x", expect = { max_loss = 101 } }, "options.expect.max_loss: must be a "
        .. "percentage from 0 to 100 (of the echo requests sent), got 101" },
      { { host = "x", expect = { max_rtt_ms = "5" } }, "options.expect.max_rtt_ms: must be a "
        .. 'number of milliseconds greater than 0, got "5"' },
      { { host = "x", check_every = -1 }, "options.check_every must be a number of seconds "
        .. "greater than 0, got -1" },
    }
    for _, case in ipairs(cases) do
      it(case[2], function()
        local ok, err = pcall(mw.PingMonitor, case[1])
        assert.is_false(ok)
        assert.truthy(tostring(err):find(case[2], 1, true), err)
      end)
    end
  end)

  it("takes its options from settings, and errors name their path", function()
    local config = mw.providers.Configuration{ monitors = { gw = { host = "127.0.0.1",
                                                                   count = "3" } } }
    local ok, err = pcall(mw.PingMonitor, { options = config.monitors.gw() })
    assert.is_false(ok)
    assert.truthy(tostring(err):find("monitors.gw: core.ping: option 'count'", 1, true), err)
  end)
end)
