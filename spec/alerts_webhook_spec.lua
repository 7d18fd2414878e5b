-- A webhook to the local fixture that hangs, refuses, answers 500 and then
-- recovers, while a monitor keeps its schedule: the loop is real, the
-- waits are bounded polls of the fixture (an external process).
local core = require("moonwatch.core")
local cjson = require("cjson")
local mw = require("moonwatch")
local fixture = require("support.fixture")

local function get(url)
  local resp = assert(core.http_request{ url = url, timeout = 2 })
  return resp
end

local await = fixture.await

describe("alerts over a webhook", function()
  local srv
  before_each(function() srv = fixture.start() end)
  after_each(function()
    core.cancel_all()
    srv:stop()
  end)

  it("checks keep their schedule while the receiver hangs and fails; it then gets the "
    .. "alert exactly once", function()
    local records <close> = mw.log.capture()
    local ticks = {}
    local monitor = { name = "app", interval = 0.05, check = function()
      ticks[#ticks + 1] = core.now()
      return nil, "down on purpose"
    end }
    local state = mw.State()
    local hook = mw.Alerts.notifiers.Webhook{ name = "ops", url = srv:url("/hook/w"),
                                              timeout = 0.3 }
    local alerts = mw.Alerts{ state = state, notifiers = { hook },
      outbox = { backoff_base = 0.05, backoff_max = 0.1 } }
    local d = mw.Dispatcher{ monitors = { monitor }, consumers = { state, alerts } }
    local received
    core.spawn(function()
      get(srv:url("/hook/w/mode?set=hang"))
      d:start()
      await("the first attempt", 5, function()
        return cjson.decode(get(srv:url("/hook/w/received")).body).attempts >= 1
      end)
      -- over 1 s of a hanging receiver, the monitor ticks every 50 ms
      local before = #ticks
      local t0 = core.now()
      core.sleep(1)
      local n, span = #ticks - before, core.now() - t0
      assert.is_true(n >= span / 0.05 - 3, n .. " checks in " .. span .. " s")
      get(srv:url("/hook/w/mode?set=drop"))
      await("a refused attempt", 5, function()
        return alerts:counters().ops.retried >= 3
      end)
      get(srv:url("/hook/w/mode?set=fail&n=2"))
      received = await("the alert", 10, function()
        local r = cjson.decode(get(srv:url("/hook/w/received")).body)
        return #r.bodies > 0 and r
      end)
      -- nothing else waits in the outbox: "exactly once" holds from here on
      await("an empty outbox", 5, function() return alerts:counters().ops.queued == 0 end)
      d:stop()
    end)
    core.run()
    local r = cjson.decode(core.run(function() return get(srv:url("/hook/w/received")) end).body)
    assert.equal(1, #r.bodies)
    assert.is_true(r.attempts >= 4, "attempts: " .. r.attempts)
    local doc = cjson.decode(received.bodies[1])
    assert.equal("app", doc.monitor)
    assert.equal("down", doc.state)
    assert.equal("down on purpose", doc.reason)
    local c = alerts:counters().ops
    assert.same({ 1, 0 }, { c.sent, c.dropped })
    assert.not_matches("/hook/w", records:text(), 1, true) -- the URL is never logged
    assert.matches("notifier ops failed to deliver the down event of app", records:text())
  end)

  it("a refusing receiver: retried, then dropped at max_age, and its URL never logged",
    function()
      local records <close> = mw.log.capture()
      local s = require("socket").bind("127.0.0.1", 0)
      local _, port = s:getsockname()
      s:close() -- nothing listens there now: connections are refused
      local state = mw.State()
      local url = "http://127.0.0.1:" .. port .. "/services/T0K3N"
      local alerts
      local hook = mw.Alerts.notifiers.Webhook{ name = "ops", url = url, timeout = 1 }
      alerts = mw.Alerts{ state = state, notifiers = { hook },
        outbox = { backoff_base = 0.02, backoff_max = 0.05, max_age = 0.3 } }
      state:on_result({}, { monitor = "app", up = false, reason = "x" })
      core.run() -- ends once the outbox gives up: nothing else waits
      alerts:stop()
      local c = alerts:counters().ops
      assert.same({ 0, 1, 1 }, { c.sent, c.dropped, c.dropped_max_age })
      assert.is_true(c.retried >= 1)
      local text = records:text()
      assert.matches("notifier ops dropped the down event of app: not delivered", text)
      assert.not_matches("T0K3N", text, 1, true)
    end)
end)
