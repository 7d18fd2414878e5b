-- Results, the state of each monitor, and how the Dispatcher hands results
-- to its consumers.
local mw = require("moonwatch")
local core = require("moonwatch.core")
local result = require("moonwatch.result")
local State = require("moonwatch.state")

local function up(at) return { up = true, monitor = "example", at = at } end
local function down(at, reason)
  return { up = false, monitor = "example", at = at, reason = reason or "status 500" }
end

-- The messages of the records a function logs.
local function logged(fn)
  local cap <close> = mw.log.capture()
  fn()
  local out = {}
  for i, rec in ipairs(cap) do out[i] = rec.level .. " " .. rec.message end
  return out
end

describe("result", function()
  it("takes what a check returns: a result, true, nil and a reason, or nothing", function()
    local r = { up = false, reason = "x" }
    assert.equal(r, result.of(r))
    assert.same({ up = true }, result.of(true))
    assert.same({ up = true }, result.of({ token = "t" })) -- data: the check worked
    assert.same({ up = true }, result.of())                  -- the tutorial's checks
    assert.same({ up = false, reason = "no token", kind = "auth" },
      result.of(nil, "no token", "auth"))
    assert.same({ up = false, reason = "the check returned false without a reason" },
      result.of(false))
    assert.same({ up = false, reason = "error: x.lua:3: boom", kind = "error" },
      result.of_error("x.lua:3: boom\nstack traceback:\n..."))
  end)
end)

describe("State", function()
  local monitor = { name = "example" }

  it("is PENDING until the first result, then UP without a record", function()
    local s = State{ clock = function() return 100 end }
    s:on_monitor(monitor, "example")
    assert.equal("PENDING", s:get("example").state)
    assert.same({}, logged(function() s:on_result(monitor, up(101)) end))
    local e = s:get("example")
    assert.equal("UP", e.state)
    assert.equal(101, e.since)
    assert.equal(1, e.consecutive)
  end)

  it("at failure threshold 3: two failures stay UP, the third makes DOWN, logged once",
    function()
      local s = State{ failure_threshold = 3 }
      s:on_result(monitor, up(0))
      assert.same({}, logged(function()
        s:on_result(monitor, down(1))
        s:on_result(monitor, down(2))
      end))
      assert.equal("UP", s:get("example").state)
      assert.equal(2, s:get("example").consecutive)
      assert.same({ "WARNING example is DOWN after 3 failed checks: status 500" },
        logged(function() s:on_result(monitor, down(3)) end))
      assert.equal("DOWN", s:get("example").state)
      assert.equal(3, s:get("example").since)
      assert.equal("status 500", s:get("example").reason)
      assert.same({}, logged(function() s:on_result(monitor, down(4, "timeout")) end))
      assert.equal("timeout", s:get("example").reason)
      assert.equal(3, s:get("example").since) -- the change, not the last result
    end)

  it("at success threshold 2: one success stays DOWN, the second is UP again", function()
    local s = State{ success_threshold = 2 }
    logged(function() s:on_result(monitor, down(10)) end)
    assert.equal("DOWN", s:get("example").state)
    assert.same({}, logged(function() s:on_result(monitor, up(60)) end))
    assert.equal("DOWN", s:get("example").state)
    assert.same({ "INFO example is UP again after 2m13s down" },
      logged(function() s:on_result(monitor, up(143)) end))
    assert.equal("UP", s:get("example").state)
    assert.equal(143, s:get("example").since)
  end)

  it("takes a monitor's own thresholds over its defaults", function()
    local s = State{ failure_threshold = 5 }
    local strict = { name = "strict", failure_threshold = 1 }
    s:on_result(strict, { up = true, monitor = "strict", at = 0 })
    assert.same({ "WARNING strict is DOWN after 1 failed check: r" }, logged(function()
      s:on_result(strict, { up = false, monitor = "strict", at = 1, reason = "r" })
    end))
    assert.equal("DOWN", s:get("strict").state)
  end)

  it("gives each change's facts as record fields", function()
    local s = State()
    local cap <close> = mw.log.capture()
    s:on_result(monitor, up(0))
    s:on_result(monitor, down(10, "status 503, expected 200-299"))
    s:on_result(monitor, up(143))
    assert.equal(2, #cap)
    assert.same({ monitor = "example", state = "DOWN", consecutive = 1,
                  reason = "status 503, expected 200-299" }, cap[1].fields)
    assert.same({ monitor = "example", state = "UP", down_for = 133 }, cap[2].fields)
  end)

  it("refuses a threshold that is not a positive integer", function()
    assert.has_error(function() State{ failure_threshold = 0 } end,
      "failure_threshold must be an integer of at least 1, got 0")
    assert.has_error(function() State{ success_threshold = 1.5 } end,
      "success_threshold must be an integer of at least 1, got 1.5")
  end)

  it("says how long in words a user reads", function()
    assert.equal("2.5s", State.duration(2.5))
    assert.equal("45s", State.duration(45))
    assert.equal("2m13s", State.duration(133))
    assert.equal("3h05m", State.duration(3 * 3600 + 5 * 60))
    assert.equal("2d04h", State.duration(2 * 86400 + 4 * 3600))
  end)

  it("lists every monitor in the order they were seen", function()
    local s = State()
    s:on_result({}, { up = true, monitor = "b" })
    logged(function() s:on_result({}, { up = false, monitor = "a", reason = "x" }) end)
    local names = {}
    for i, e in ipairs(s:all()) do names[i] = e.name .. "=" .. e.state end
    assert.same({ "b=UP", "a=DOWN" }, names)
  end)
end)

describe("Dispatcher and its result consumers", function()
  after_each(function()
    core.cancel_all()
    assert.same({ tasks = 0, handles = 0 }, core.stats())
  end)

  -- Runs the dispatcher until the recorder has n results, then stops it.
  local function run_until(d, recorder, n)
    recorder.stop_after, recorder.dispatcher = n, d
    d:start()
    core.run() -- until the stop leaves nothing to do
  end

  local function recorder()
    local r = { results = {} }
    function r:on_result(monitor, res)
      self.results[#self.results + 1] = { monitor = monitor, result = res }
      if #self.results == self.stop_after then self.dispatcher:stop() end
    end
    return r
  end

  it("hands every check's result to each consumer, in order, with its monitor", function()
    local rec, seen = recorder(), {}
    local other = { on_result = function(_, _, res) seen[#seen + 1] = res end }
    local m = { name = "m", interval = 0.01, check = function() return nil, "nope", "x" end }
    local d = mw.Dispatcher{ monitors = { m }, consumers = { rec, other } }
    local _ <close> = mw.log.capture()
    run_until(d, rec, 3)
    assert.equal(3, #rec.results)
    local first = rec.results[1]
    assert.equal(m, first.monitor)
    assert.is_false(first.result.up)
    assert.equal("nope", first.result.reason)
    assert.equal("x", first.result.kind)
    assert.equal("m", first.result.monitor)
    assert.is_number(first.result.at)
    assert.is_number(first.result.duration)
    assert.equal(first.result, seen[1]) -- the same table to every consumer
  end)

  it("makes a check that raises a down result 'error: ...' and logs its traceback", function()
    local rec = recorder()
    local m = { name = "bad", interval = 0.01, check = function() error("kaput", 0) end }
    local d = mw.Dispatcher{ monitors = { m }, consumers = { rec } }
    local cap <close> = mw.log.capture()
    run_until(d, rec, 1)
    assert.same({ up = false, reason = "error: kaput", kind = "error" },
      { up = rec.results[1].result.up, reason = rec.results[1].result.reason,
        kind = rec.results[1].result.kind })
    assert.matches("^Error executing monitor check %(bad%)\n", cap[2].message)
    assert.same({ monitor = "bad" }, cap[2].fields)
  end)

  it("logs a consumer that raises, and the others still get the result", function()
    local rec = recorder()
    local broken = { on_result = function() error("consumer bug", 0) end }
    local m = { name = "m", interval = 0.01, check = function() return true end }
    local d = mw.Dispatcher{ monitors = { m }, consumers = { broken, rec } }
    local cap <close> = mw.log.capture()
    run_until(d, rec, 1)
    assert.equal(1, #rec.results)
    assert.truthy(cap:text():find("result consumer 1 failed on a result of m: consumer bug",
      1, true))
  end)

  it("keeps a State of its own without consumers; monitors start PENDING", function()
    local m = { name = "m", interval = 5, check = function() return true end }
    local d = mw.Dispatcher{ monitors = { m } }
    assert.is_true(State.is_state(d.state))
    assert.equal("PENDING", d.state:get("m").state)
    local _ <close> = mw.log.capture()
    local results = d:check_once()
    assert.is_true(results[1].up)
    assert.equal("UP", d.state:get("m").state)
    assert.same({ 1, 1, 0, 0 }, { d:stats().scheduled, d:stats().run, d:stats().down,
                                  d:stats().failed })
  end)

  it("refuses a monitor without a check method, and a consumer without on_result", function()
    assert.has_error(function() mw.Dispatcher{ monitors = { { interval = 1, name = "x" } } } end,
      "monitors[1] (x) has no check method")
    assert.has_error(function()
      mw.Dispatcher{ monitors = {}, consumers = { {} } }
    end, "consumers[1] has no on_result method (a result consumer is an object with "
      .. "on_result(self, monitor, result))")
  end)
end)
