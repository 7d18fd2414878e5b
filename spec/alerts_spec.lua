-- The alert engine with a recorder notifier and a manual clock: no sleeps,
-- no network. Deliveries run when the loop runs (drain()).
local core = require("moonwatch.core")
local mw = require("moonwatch")
local Clock = require("moonwatch.alerts.clock")
local notifiers = require("moonwatch.alerts.notifiers")

local function drain() core.run() end

local function setup(opts)
  opts = opts or {}
  local clock = Clock.manual()
  local state = mw.State{ failure_threshold = opts.failure_threshold,
                          clock = function() return clock:now() end }
  local rec = notifiers.Recorder{ name = "rec", fail = opts.fail }
  local kwargs = { state = state, notifiers = { rec }, clock = clock }
  for k, v in pairs(opts.alerts or {}) do kwargs[k] = v end
  local alerts = mw.Alerts(kwargs)
  local monitors = {}
  local function feed(name, up, reason)
    local m = monitors[name]
    if not m then
      m = { name = name, url = "http://127.0.0.1/" .. name }
      monitors[name] = m
      alerts:on_monitor(m, name)
    end
    state:on_result(m, { monitor = name, up = up, reason = reason, at = clock:now() })
  end
  return { clock = clock, state = state, rec = rec, alerts = alerts, feed = feed }
end

describe("alerts", function()
  local quiet -- the State's and the outboxes' records, kept from the output
  before_each(function() quiet = mw.log.capture() end)
  after_each(function()
    core.cancel_all()
    quiet:close()
  end)

  it("sends one down once the failure threshold is reached, with the event's facts", function()
    local t = setup{ failure_threshold = 3 }
    t.feed("app", true)
    t.feed("app", false, "status 500")
    t.feed("app", false, "status 500")
    drain()
    assert.same({}, t.rec:summary())
    t.clock:advance(5)
    t.feed("app", false, "status 503")
    t.feed("app", false, "status 503")
    drain()
    assert.same({ "app down" }, t.rec:summary())
    local e = t.rec.events[1]
    assert.equal("status 503", e.reason)
    assert.equal("http://127.0.0.1/app", e.url)
    assert.equal(notifiers.rfc3339(t.clock:now()), e.since)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", e.at)
    assert.is_nil(e.down_for_s)
  end)

  it("resolves with how long it was down; the first up after PENDING is no news", function()
    local t = setup()
    t.feed("app", true)
    t.feed("app", false, "timeout")
    t.clock:advance(133)
    t.feed("app", true)
    drain()
    assert.same({ "app down", "app up" }, t.rec:summary())
    assert.equal(133, t.rec.events[2].down_for_s)
    assert.equal("app is UP again after 2m13s down", notifiers.summary(t.rec.events[2]))
  end)

  it("reminds while DOWN at the reminder interval, and stops on recovery", function()
    local t = setup{ alerts = { rules = { app = { reminder = 600 } } } }
    t.feed("app", false, "refused")
    t.clock:advance(600)
    t.clock:advance(600)
    t.feed("app", true)
    t.clock:advance(3600)
    drain()
    assert.same({ "app down", "app down reminder", "app down reminder", "app up" },
      t.rec:summary())
    -- each event has its own id, which a receiver uses to drop a repeat
    local since = t.rec.events[1].since
    assert.equal("down " .. since .. " app", t.rec.events[1].id)
    assert.equal("reminder " .. t.rec.events[2].at .. " app", t.rec.events[2].id)
    assert.are_not.equal(t.rec.events[2].id, t.rec.events[3].id)
    assert.equal("up " .. since .. " app", t.rec.events[4].id)
  end)

  it("send_on_resolved = false sends no up", function()
    local t = setup{ alerts = { send_on_resolved = false } }
    t.feed("app", false, "x")
    t.feed("app", true)
    drain()
    assert.same({ "app down" }, t.rec:summary())
  end)

  it("holds a child's alert while its parent is DOWN and sends it when the parent recovers",
    function()
      local t = setup{ alerts = { rules = { app = { depends_on = { "gateway" } } } } }
      t.feed("gateway", false, "timeout")
      t.feed("app", false, "timeout")
      drain()
      assert.same({ "gateway down" }, t.rec:summary())
      assert.equal("down (gateway is down)", t.alerts:status("app"))
      t.feed("gateway", true)
      drain()
      assert.same({ "gateway down", "gateway up", "app down" }, t.rec:summary())
      assert.equal("down", t.alerts:status("app"))
    end)

  it("takes parents as monitors too (by the object, or by its name)", function()
    local t = setup{ alerts = { rules = { app = { depends_on = { { name = "gateway" } } } } } }
    t.feed("gateway", false, "timeout")
    t.feed("app", false, "timeout")
    drain()
    assert.same({ "gateway down" }, t.rec:summary())
    assert.equal("down (gateway is down)", t.alerts:status("app"))
  end)

  it("is a consumer the Dispatcher calls on each monitor and on stop, never per result",
    function()
      local t = setup()
      local monitor = { name = "app", interval = 60, check = function() end,
                        request = { url = "http://127.0.0.1/app" } }
      local stopped = 0
      t.alerts.on_stop = function() stopped = stopped + 1 end
      local d = mw.Dispatcher{ monitors = { monitor }, consumers = { t.state, t.alerts } }
      assert.equal(1, #d.consumers) -- the State alone hears each result
      assert.equal("http://127.0.0.1/app", t.alerts.monitors.app.url) -- from on_monitor
      d:start()
      d:stop()
      assert.equal(1, stopped)
    end)

  it("never holds the resolve of an alert already sent", function()
    local t = setup{ alerts = { rules = { app = { depends_on = { "gateway" } } } } }
    t.feed("app", false, "x")
    t.feed("gateway", false, "y")
    t.feed("app", true)
    drain()
    assert.same({ "app down", "gateway down", "app up" }, t.rec:summary())
  end)

  it("sends nothing in maintenance, and alerts when the window ends with the monitor down",
    function()
      local clock_start
      local windows = {
        in_maintenance = function(_, _, t)
          if t < clock_start + 100 then return { name = "upgrade" } end
        end,
        next_change = function(_, t) if t < clock_start + 100 then return clock_start + 100 end end,
      }
      local t = setup{ alerts = { windows = windows } }
      clock_start = t.clock:now()
      t.feed("app", false, "x")
      t.feed("db", false, "y")
      t.clock:advance(10)
      t.feed("db", true)       -- recovered inside the window: never alerted
      drain()
      assert.same({}, t.rec:summary())
      assert.equal("maintenance", t.alerts:status("app"))
      t.clock:advance(90)
      drain()
      assert.same({ "app down" }, t.rec:summary())
      assert.equal("down", t.alerts:status("app"))
    end)

  it("keeps a monitor's order while its down is retried", function()
    local t = setup{ fail = function(e, n) return e.state == "down" and n <= 2 and "boom" end,
                     alerts = { outbox = { random = function() return 0 end } } }
    t.feed("app", false, "x")
    t.feed("app", true)
    drain()
    assert.same({ "app down", "app up" }, t.rec:summary())
    local c = t.alerts:counters().rec
    assert.same({ 2, 2, 0, 0 }, { c.sent, c.retried, c.dropped, c.queued })
  end)

  it("delivers other monitors' events while one monitor's is retried", function()
    local t = setup{ fail = function(e, n) return e.monitor == "a" and n <= 3 and "boom" end,
                     alerts = { outbox = { random = function() return 1 end } } }
    t.feed("a", false, "x")
    t.feed("a", true)
    t.feed("b", false, "y")
    drain()
    assert.same({ "b down", "a down", "a up" }, t.rec:summary())
  end)

  it("backs off exponentially with full jitter, capped", function()
    local t = setup{
      fail = function(_, n) if n <= 5 then return "status 500" end end,
      alerts = { outbox = { random = function() return 0.5 end, backoff_base = 1,
                            backoff_max = 8 } },
    }
    t.feed("app", false, "x")
    drain()
    assert.same({ 0.5, 1, 2, 4, 4 }, t.clock.slept)
    assert.same({ "app down" }, t.rec:summary())
  end)

  it("drops an event older than max_age, logged and counted", function()
    local records <close> = mw.log.capture()
    local t = setup{
      fail = function() return "status 500" end,
      alerts = { outbox = { random = function() return 1 end, max_age = 10 } },
    }
    t.feed("app", false, "x")
    drain()
    local c = t.alerts:counters().rec
    assert.same({ 0, 1, 1, 0 }, { c.sent, c.dropped, c.dropped_max_age, c.queued })
    assert.matches("notifier rec dropped the down event of app: not delivered in %d+ "
      .. "attempts within max_age 10s %(status 500%)", records:text())
  end)

  it("bounds the outbox: the oldest waiting event is dropped", function()
    local records <close> = mw.log.capture()
    local t = setup{ alerts = { outbox = { size = 2 } } }
    for _, name in ipairs{ "a", "b", "c", "d" } do t.feed(name, false, "x") end
    drain()
    assert.same({ "c down", "d down" }, t.rec:summary())
    local c = t.alerts:counters().rec
    assert.same({ 2, 2 }, { c.dropped, c.dropped_overflow })
    assert.matches("notifier rec dropped the down event of a: the outbox is full %(size 2%)",
      records:text())
  end)

  it("after a restart with the store, sends no second down and still the resolve", function()
    local store = mw.Alerts.MemoryStore.new()
    local t = setup{ alerts = { store = store } }
    t.feed("app", false, "x")
    drain()
    local t2 = setup{ alerts = { store = store } }
    t2.feed("app", false, "x")
    t2.feed("app", true)
    drain()
    assert.same({ "app up" }, t2.rec:summary())
  end)

  it("after a restart, what the outbox held is delivered, in order", function()
    local store = mw.Alerts.MemoryStore.new()
    local t = setup{ alerts = { store = store }, fail = function() return "status 500" end }
    t.feed("app", false, "x")
    t.feed("app", true)
    t.alerts:stop() -- before the loop runs: nothing was delivered
    local t2 = setup{ alerts = { store = store } }
    drain()
    assert.same({ "app down", "app up" }, t2.rec:summary())
    assert.same({}, store:outbox_load("rec"))
  end)

  it("after a restart, Alertmanager keeps re-sending the alert sent before it", function()
    local store = mw.Alerts.MemoryStore.new()
    local t = setup{ alerts = { store = store } }
    t.feed("app", false, "x")
    drain()
    local clock = Clock.manual()
    local state = mw.State{ clock = function() return clock:now() end }
    local posts = {}
    local am = notifiers.Alertmanager{ url = "http://am:9093", http_client = {
      request = function(_, opts) posts[#posts + 1] = opts.body; return { status = 200 } end } }
    mw.Alerts{ state = state, clock = clock, store = store, notifiers = { am } }
    state:on_result({}, { monitor = "app", up = false, reason = "x", at = clock:now() })
    drain()
    assert.equal(0, #posts) -- no second "down"
    clock:advance(60)
    drain()
    assert.equal(1, #posts)
    assert.matches('"monitor":"app"', posts[1], 1, true)
  end)

  it("sends each monitor's events to its notifiers, else to the default", function()
    local clock = Clock.manual()
    local state = mw.State{ clock = function() return clock:now() end }
    local a, b = notifiers.Recorder{ name = "a" }, notifiers.Recorder{ name = "b" }
    mw.Alerts{ state = state, clock = clock, notifiers = { a, b }, default = { "a" },
               rules = { db = { notifiers = { "a", "b" } } } }
    state:on_result({}, { monitor = "app", up = false, at = clock:now() })
    state:on_result({}, { monitor = "db", up = false, at = clock:now() })
    drain()
    assert.same({ "app down", "db down" }, a:summary())
    assert.same({ "db down" }, b:summary())
  end)

  it("with no notifier sends nothing and raises nothing", function()
    local state = mw.State()
    local alerts = mw.Alerts{ state = state, clock = Clock.manual() }
    state:on_result({}, { monitor = "app", up = false })
    assert.same({}, alerts:counters())
  end)

  it("a new Alerts on the same State replaces the one before", function()
    local t = setup()
    local rec2 = notifiers.Recorder{ name = "rec2" }
    mw.Alerts{ state = t.state, clock = t.clock, notifiers = { rec2 } }
    t.feed("app", false, "x")
    drain()
    assert.same({}, t.rec:summary())
    assert.same({ "app down" }, rec2:summary())
  end)

  it("a State without changes calls no listener", function()
    local state = mw.State()
    local calls = 0
    state:on_change(function() calls = calls + 1 end)
    for _ = 1, 5 do state:on_result({}, { monitor = "app", up = true }) end
    assert.equal(1, calls) -- PENDING to UP, then nothing
  end)

  describe("bad options", function()
    local state = mw.State()
    local cases = {
      { { state = {} }, "Alerts: state must be the State whose changes raise alerts" },
      { { state = state, resnd = 3 }, "Alerts: unknown option resnd (did you mean 'resend'?)" },
      { { state = state, rules = { app = { reminder = -1 } } },
        "Alerts: rules.app.reminder must be a number of seconds greater than 0, got -1" },
      { { state = state, rules = { app = { notifiers = { "ops" } } } },
        "Alerts: rules.app.notifiers: no notifier is named ops" },
      { { state = state, notifiers = { {} } },
        "Alerts: notifiers[1] is not a notifier (an object with a name and send(self, event))" },
      { { state = state, outbox = { size = 0 } },
        "outbox size must be a number of at least 1, got 0" },
      { { state = state, windows = {} }, "Alerts: windows must have in_maintenance(name, t)" },
      { { state = state, clock = {} }, "Alerts: clock must have now(), after(s, fn) and sleep(s)" },
    }
    for i, case in ipairs(cases) do
      it(string.format("%d: %s", i, case[2]), function()
        local ok, err = pcall(mw.Alerts, case[1])
        assert.is_false(ok)
        assert.matches(case[2], err, 1, true)
      end)
    end
    it("a listener that is neither a function nor has on_change", function()
      assert.has_error(function() state:on_change(42) end,
        "on_change: expected a function or an object with on_change, got number")
    end)
  end)
end)
