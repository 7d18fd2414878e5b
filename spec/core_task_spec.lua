-- moonwatch.core: tasks, core.run, sleep, clocks and stats.
local core = require("moonwatch.core")

-- From a task: lets the loop run until t waits (a bounded poll, no sleep).
local function until_waiting(t)
  for _ = 1, 1000 do
    if t:status() == "waiting" then return end
    core.sleep(0)
  end
  error("the task never waited: " .. t:status())
end

describe("core tasks", function()
  after_each(function()
    assert.same({ tasks = 0, handles = 0 }, core.stats())
  end)

  it("spawns a task that starts on the next loop turn with its arguments", function()
    local seen
    local t = core.spawn(function(a, b) seen = { a, b }; return a + b, "sum" end, 2, 3)
    assert.equals("ready", t:status())
    assert.is_nil(seen)
    core.run()
    assert.same({ 2, 3 }, seen)
    assert.equals("done", t:status())
    assert.same({ true, 5, "sum" }, { t:result() })
  end)

  it("core.run(fn, ...) returns the task's results", function()
    assert.same({ "a", 1, true }, { core.run(function(x) return x, 1, true end, "a") })
    assert.same({}, { core.run(function() end) })
  end)

  it("core.run(task) waits for that task and returns its results", function()
    local t = core.spawn(function() core.sleep(0.02); return "late" end)
    assert.equals("late", core.run(t))
    assert.equals("done", t:status())
  end)

  it("core.current() is the running task inside a task and nil outside", function()
    assert.is_nil(core.current())
    local t
    t = core.spawn(function()
      assert.equals(t, core.current())
      assert.equals("running", core.current():status())
    end)
    core.run()
    assert.equals("done", t:status())
  end)

  it("core.sleep suspends only its task, and tasks wake in deadline order", function()
    local order = {}
    local function sleeper(name, s)
      return function() core.sleep(s); order[#order + 1] = name end
    end
    core.spawn(sleeper("c", 0.06))
    core.spawn(sleeper("a", 0.02))
    core.spawn(sleeper("b", 0.04))
    core.spawn(function() order[#order + 1] = "no wait" end)
    local t0 = core.now()
    core.run()
    local elapsed = core.now() - t0
    assert.same({ "no wait", "a", "b", "c" }, order)
    assert.is_true(elapsed >= 0.059 and elapsed < 0.5, "elapsed " .. elapsed)
  end)

  it("a sleep lasts its time (to libuv's 1 ms clock)", function()
    core.run(function()
      for _, s in ipairs({ 0, 0.001, 0.013, 0.05 }) do
        local t0 = core.now()
        core.sleep(s)
        local dt = core.now() - t0
        -- the loop's clock counts whole milliseconds, so up to 1 ms early
        assert.is_true(dt >= s - 0.001, ("slept %.4f for %.4f"):format(dt, s))
        assert.is_true(dt < s + 0.05, ("slept %.4f for %.4f"):format(dt, s))
      end
    end)
  end)

  -- The timer starts from the time now, not from the loop's time cached at
  -- the start of its turn.
  it("a sleep never ends early, even after the task computed for a while", function()
    local dt = core.run(function()
      local t = core.now()
      while core.now() - t < 0.3 do end
      local t0 = core.now()
      core.sleep(0.1)
      return core.now() - t0
    end)
    assert.is_true(dt >= 0.0995, ("core.sleep(0.1) returned after %.4f s"):format(dt))
  end)

  it("a plain coroutine.yield() lets the other tasks run", function()
    local trace = {}
    local function worker(name)
      return function()
        for i = 1, 3 do
          trace[#trace + 1] = name .. i
          coroutine.yield()
        end
      end
    end
    core.spawn(worker("a"))
    core.spawn(worker("b"))
    core.run()
    assert.same({ "a1", "b1", "a2", "b2", "a3", "b3" }, trace)
  end)

  it("a failing task returns false, a traceback and the error object", function()
    local t = core.spawn(function() error("kaboom") end)
    local err = { code = 7 }
    local t2 = core.spawn(function() error(err) end)
    core.run()
    assert.equals("failed", t:status())
    local ok, tb, e = t:result()
    assert.is_false(ok)
    assert.matches("kaboom", tb, 1, true)
    assert.matches("stack traceback:", tb, 1, true)
    assert.matches("kaboom", e, 1, true)
    local ok2, _, e2 = t2:result()
    assert.is_false(ok2)
    assert.equals(err, e2)
  end)

  it("core.run(fn) re-raises string errors with a traceback and table errors as-is", function()
    local ok, msg = pcall(core.run, function() error("bad thing") end)
    assert.is_false(ok)
    assert.matches("bad thing", msg, 1, true)
    assert.matches("stack traceback:", msg, 1, true)
    local err = { reason = "table" }
    local ok2, e2 = pcall(core.run, function() error(err) end)
    assert.is_false(ok2)
    assert.equals(err, e2)
  end)

  it("cancels a sleeping task: true, status cancelled, nothing left behind", function()
    local reached = false
    local t = core.spawn(function() core.sleep(5); reached = true end)
    core.run(function()
      until_waiting(t)
      assert.is_true(t:cancel())
      assert.equals("cancelled", t:status())
      assert.same({ false, "cancelled" }, { t:result() })
      assert.is_false(t:cancel()) -- already final
    end)
    assert.is_false(reached)
    assert.same({ tasks = 0, handles = 0 }, core.stats())
  end)

  it("cancels a task that has not started yet", function()
    local started = false
    local t = core.spawn(function() started = true end)
    assert.is_true(t:cancel())
    core.run()
    assert.is_false(started)
    assert.equals("cancelled", t:status())
  end)

  it("leaves nothing active after cancelling, from a task, one that has not started", function()
    local started = false
    core.run(function()
      core.sleep(0) -- resumed from a timer, not from the ready queue
      local t = core.spawn(function() started = true end)
      assert.is_true(t:cancel())
    end)
    assert.is_false(started)
    assert.same({ tasks = 0, handles = 0 }, core.stats())
  end)

  it("closes the to-be-closed variables of a cancelled task", function()
    local closed = false
    local t = core.spawn(function()
      local guard <close> = setmetatable({}, { __close = function() closed = true end })
      core.sleep(5)
      return guard
    end)
    core.run(function()
      until_waiting(t)
      t:cancel()
    end)
    assert.is_true(closed)
  end)

  -- task_cancel on the running task marks it; its next wait ends it.
  it("a task that cancels itself ends cancelled at its next wait", function()
    local after = false
    local t = core.spawn(function()
      assert.is_true(core.current():cancel())
      core.sleep(0.01)
      after = true
    end)
    core.run()
    assert.is_false(after)
    assert.equals("cancelled", t:status())
    assert.same({ false, "cancelled" }, { t:result() })
  end)

  it("result() of a task that has not ended raises", function()
    local t = core.spawn(function() end)
    assert.has_error(function() t:result() end,
      "task:result(): the task has not ended (it is ready)")
    core.run()
  end)

  it("refuses core.sleep outside a task", function()
    local ok, msg = pcall(core.sleep, 0.01)
    assert.is_false(ok)
    assert.matches("core.sleep must be called from a task", msg, 1, true)
    -- nor from a coroutine of one's own inside a task
    core.run(function()
      local co = coroutine.create(function() core.sleep(0.01) end)
      local ok2, msg2 = coroutine.resume(co)
      assert.is_false(ok2)
      assert.matches("core.sleep must be called from a task", msg2, 1, true)
    end)
  end)

  it("refuses bad sleep durations", function()
    core.run(function()
      assert.has_error(function() core.sleep(-1) end)
      assert.has_error(function() core.sleep(0 / 0) end)
      assert.has_error(function() core.sleep("soon") end)
    end)
  end)

  it("refuses a nested core.run", function()
    local msg = core.run(function()
      local ok, m = pcall(core.run, function() end)
      assert.is_false(ok)
      return m
    end)
    assert.matches("core.run: the loop is already running", msg, 1, true)
    -- the loop still works afterwards
    assert.equals(1, core.run(function() return 1 end))
  end)

  it("core.spawn needs a function", function()
    assert.has_error(function() core.spawn("nope") end)
  end)

  it("core.now is monotonic seconds and core.time is the wall clock", function()
    local a = core.now()
    local b = core.now()
    assert.is_number(a)
    assert.is_true(b >= a)
    assert.is_true(math.abs(core.time() - os.time()) < 2)
    local t0 = core.now()
    core.run(function() core.sleep(0.05) end)
    local dt = core.now() - t0
    assert.is_true(dt >= 0.049 and dt < 0.5, "dt " .. dt)
  end)

  it("core.stats counts alive tasks and active handles", function()
    local inside
    local t = core.spawn(function() core.sleep(0.01) end)
    assert.equals(1, core.stats().tasks)
    core.run(function()
      core.sleep(0.001)
      inside = core.stats()
    end)
    assert.equals("waiting", t:status()) -- core.run(fn) returned when fn ended
    core.run()
    assert.equals("done", t:status())
    assert.equals(2, inside.tasks) -- this one and the sleeper
    assert.is_true(inside.handles >= 1)
  end)
end)

describe("the CPU budget of a task", function()
  local saved
  before_each(function() saved = core.cpu_budget(); core.cpu_budget(0.05) end)
  after_each(function()
    core.cpu_budget(saved)
    assert.same({ tasks = 0, handles = 0 }, core.stats())
  end)

  -- Runs Lua for up to limit seconds of CPU (a bounded spin, so that a
  -- budget that does not work fails the spec instead of hanging it).
  local function spin(limit)
    local t0 = os.clock()
    while os.clock() - t0 < limit do end
    return "spun"
  end

  local MESSAGE = "CPU budget exceeded: ran Lua for 0.05 s of CPU without yielding (cpu_budget)"

  local function assert_overran(t)
    local ok, err = t:result()
    assert.is_false(ok)
    assert.matches(MESSAGE, err, 1, true)
  end

  it("ends a task that runs past it; the others go on", function()
    local spinner = core.spawn(spin, 2)
    local ticks = 0
    local ticker = core.spawn(function()
      for _ = 1, 5 do core.sleep(0.01); ticks = ticks + 1 end
    end)
    local t0 = os.clock()
    core.run()
    assert.is_true(os.clock() - t0 < 1, "the spin was not stopped")
    assert_overran(spinner)
    assert.equals(5, ticks)
    assert.is_true((ticker:result()))
  end)

  it("cannot be caught by pcall in the task", function()
    local caught = false
    local t = core.spawn(function()
      caught = not pcall(spin, 2)
      return "went on"
    end)
    core.run()
    assert_overran(t)
    assert.is_false(caught)
  end)

  it("follows the task into coroutines it makes (wrap and resume)", function()
    local wrapped = core.spawn(function() return coroutine.wrap(spin)(2) end)
    local resumed = core.spawn(function()
      local co = coroutine.create(function() return coroutine.wrap(spin)(2) end)
      return coroutine.resume(co)
    end)
    local t0 = os.clock()
    core.run()
    assert.is_true(os.clock() - t0 < 1, "a spin was not stopped")
    assert_overran(wrapped)
    assert_overran(resumed)
    -- coroutines still work as the standard ones do
    local gen = coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i) end end)
    assert.same({ 1, 2, 3 }, { gen(), gen(), gen() })
    local ok, err = pcall(coroutine.wrap(function() error("inner", 0) end))
    assert.same({ false, "inner" }, { ok, err })
    ok, err = pcall(coroutine.resume, 42)
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'coroutine.resume' (thread expected, got number)", err,
      1, true)
    assert.same({ true, 1, 2 }, { coroutine.resume(coroutine.create(function(...) return ... end),
      1, 2) })
  end)

  it("counts each stretch between two waits on its own", function()
    local t = core.spawn(function()
      for _ = 1, 4 do spin(0.03); core.sleep(0) end -- 0.12 s in all, 0.03 s at a time
      return "done"
    end)
    core.run()
    assert.same({ true, "done" }, { t:result() })
  end)

  it("is off at 0", function()
    core.cpu_budget(0)
    assert.same({ "spun" }, { core.run(spin, 0.1) })
  end)

  it("refuses a budget below 10 ms or a negative one", function()
    assert.has_error(function() core.cpu_budget(0.001) end)
    assert.has_error(function() core.cpu_budget(-1) end)
    assert.equals(0.05, core.cpu_budget())
  end)

  it("core.cpu_limit raises outside a task, and pcall inside cannot hold it", function()
    local ok, err = pcall(core.cpu_limit, 0.05, function() pcall(spin, 2); return spin(2) end)
    assert.is_false(ok)
    assert.matches("CPU limit exceeded", err, 1, true)
    assert.same({ "spun" }, { core.cpu_limit(1, spin, 0.01) })
  end)
end)
