-- moonwatch.core: the dispatcher (fixed-rate scheduling of monitors).
local core = require("moonwatch.core")
local fixture = require("support.fixture")

-- Set of our ESTABLISHED TCP connections to port (from /proc/net/tcp).
local function established_to(port)
  local set = {}
  local f = assert(io.open("/proc/net/tcp"))
  for line in f:lines() do
    local l, r, rport, st = line:match("^%s*%d+:%s+(%x+:%x+)%s+(%x+:(%x+))%s+(%x+)")
    if l and tonumber(st, 16) == 1 and tonumber(rport, 16) == port then
      set[l .. "-" .. r] = true
    end
  end
  f:close()
  return set
end

-- Runs the dispatcher for `seconds`: a controller task starts it, sleeps and
-- stops it; core.run() must then return by itself. Returns what d:stop()
-- returned and how long core.run() took. (Started from a task, where the
-- loop's clock is fresh: see the failing spec about d:start() below.)
local function run_for(d, seconds)
  local stopped
  core.spawn(function()
    d:start()
    core.sleep(seconds)
    stopped = d:stop()
  end)
  local t0 = core.now()
  core.run()
  return stopped, core.now() - t0
end

-- Keeps the CPU busy (outside the loop or inside a task) for s seconds.
local function spin(s)
  local t = core.now()
  while core.now() - t < s do end
end

local function diffs(times)
  local out = {}
  for i = 2, #times do out[#out + 1] = times[i] - times[i - 1] end
  return out
end

local function assert_near_all(expected, values, tolerance, what)
  for i, v in ipairs(values) do
    assert.is_true(math.abs(v - expected) <= tolerance,
      ("%s #%d: %.4f, expected %.3f +- %.3f"):format(what, i, v, expected, tolerance))
  end
end

describe("core dispatcher", function()
  local srv

  lazy_setup(function() srv = fixture.start{ tls = false } end)
  lazy_teardown(function() if srv then srv:stop() end end)

  after_each(function()
    assert.same({ tasks = 0, handles = 0 }, core.stats())
  end)

  it("runs at a fixed rate: a 0.3 s check at interval 0.5 s starts every 0.5 s", function()
    local starts = {}
    local monitor = { check = function() starts[#starts + 1] = core.now(); core.sleep(0.3) end }
    local d = core.dispatcher{ spread = false }
    d:add(monitor, { interval = 0.5, name = "steady" })
    -- ticks at 0, 0.5, 1.0, 1.5, 2.0; the last check ends at 2.3
    local cancelled = run_for(d, 2.35)
    assert.equals(0, cancelled)
    assert.equals(5, #starts)
    assert_near_all(0.5, diffs(starts), 0.03, "interval")
    local st = d:stats()
    assert.equals(1, st.monitors)
    assert.equals(5, st.run)
    assert.equals(5, st.scheduled)
    assert.equals(0, st.skipped)
    assert.equals(0, st.failed)
    assert.equals(0, st.running)
    assert.is_true(st.lateness.p50 <= st.lateness.p99 and st.lateness.p99 < 20)
  end)

  it("reports lateness quantiles past 100 ms when the loop falls behind", function()
    -- one check holds the loop 0.25 s of every 0.3 s: the others fall
    -- behind (how far depends on the build's speed, so only the order of
    -- the quantiles is asserted)
    local d = core.dispatcher{ spread = false }
    d:add({ check = function() spin(0.25) end }, { interval = 0.3, name = "hog" })
    for i = 1, 20 do
      d:add({ check = function() end }, { interval = 0.3, name = "m" .. i })
    end
    run_for(d, 1.0)
    local late = d:stats().lateness
    assert.is_true(late.p50 > 100, "p50 " .. late.p50)
    assert.is_true(late.p50 <= late.p99 and late.p99 <= late.max)
  end)

  it("never overlaps a check with itself: a 0.7 s check at 0.5 s skips ticks", function()
    local starts, running, peak = {}, 0, 0
    local monitor = {
      check = function()
        starts[#starts + 1] = core.now()
        running = running + 1
        peak = math.max(peak, running)
        local _ <close> = setmetatable({}, { __close = function() running = running - 1 end })
        core.sleep(0.7)
      end,
    }
    local d = core.dispatcher{ spread = false }
    d:add(monitor, { interval = 0.5, name = "slow" })
    -- ticks at 0 (run), 0.5 (skip), 1.0 (run), 1.5 (skip), 2.0 (run, cancelled)
    local cancelled = run_for(d, 2.2)
    assert.equals(1, peak)
    assert.equals(3, #starts)
    assert_near_all(1.0, diffs(starts), 0.03, "start")
    local st = d:stats()
    assert.equals(5, st.scheduled)
    assert.equals(3, st.run)
    assert.equals(2, st.skipped)
    assert.equals(1, cancelled)
    assert.equals(1, st.cancelled)
    assert.equals(0, st.running)
    assert.equals(0, running)
  end)

  it("reports a check that raises to on_error, and every monitor keeps its schedule", function()
    local errors = {}
    local boom = { name = "boom" }
    function boom.check() error("check exploded") end
    local err_obj = { code = 42 }
    local tbl = { check = function() error(err_obj) end }
    local good_starts = {}
    local good = { check = function() good_starts[#good_starts + 1] = core.now() end }
    local d = core.dispatcher{
      spread = false,
      on_error = function(monitor, traceback, err)
        errors[#errors + 1] = { monitor = monitor, traceback = traceback, err = err }
      end,
    }
    d:add(boom, { interval = 0.1, name = "boom" })
    d:add(tbl, { interval = 0.1, name = "table error" })
    d:add(good, { interval = 0.1, name = "good" })
    run_for(d, 0.55)
    local st = d:stats()
    assert.equals(6, #good_starts)
    assert_near_all(0.1, diffs(good_starts), 0.03, "good interval")
    assert.equals(12, #errors)
    assert.equals(12, st.failed)
    assert.equals(18, st.run)
    local from_boom, from_tbl = 0, 0
    for _, e in ipairs(errors) do
      assert.is_string(e.traceback)
      if e.monitor == boom then
        from_boom = from_boom + 1
        assert.matches("check exploded", e.traceback, 1, true)
        assert.matches("stack traceback:", e.traceback, 1, true)
        assert.matches("check exploded", e.err, 1, true)
      else
        assert.equals(tbl, e.monitor)
        assert.equals(err_obj, e.err) -- table errors as they were raised
        from_tbl = from_tbl + 1
      end
    end
    assert.equals(6, from_boom)
    assert.equals(6, from_tbl)
  end)

  it("keeps running when on_error itself raises", function()
    local runs = 0
    local d = core.dispatcher{ spread = false, on_error = function() error("handler broke") end }
    d:add({ check = function() runs = runs + 1; error("x") end }, { interval = 0.1, name = "x" })
    run_for(d, 0.35)
    assert.equals(4, runs)
    assert.equals(4, d:stats().failed)
  end)

  it("stop() cancels running checks, aborts their transfers, and core.run() returns", function()
    local before = established_to(srv.port)
    local started, finished = 0, 0
    local monitor = {
      check = function()
        started = started + 1
        core.http_request{ url = srv:url("/hang"), timeout = 30, fresh_connection = true }
        finished = finished + 1
      end,
    }
    local d = core.dispatcher{ spread = false }
    d:add(monitor, { interval = 10, name = "hang" })
    local during
    core.spawn(function()
      core.sleep(0.3)
      during = established_to(srv.port)
    end)
    local cancelled, elapsed = run_for(d, 0.35)
    assert.equals(1, cancelled)
    assert.is_true(elapsed < 1, "core.run() returned after " .. elapsed .. " s")
    assert.equals(1, started)
    assert.equals(0, finished)
    local st = d:stats()
    assert.equals(1, st.cancelled)
    assert.equals(0, st.running)
    -- the /hang connection was open and is now closed
    local new = {}
    for k in pairs(during) do
      if not before[k] then new[#new + 1] = k end
    end
    assert.equals(1, #new)
    local still = true
    for _ = 1, 100 do
      still = established_to(srv.port)[new[1]] or false
      if not still then break end
      core.run(function() core.sleep(0.01) end)
    end
    assert.is_false(still)
  end)

  it("spreads first runs over the interval by a hash of the name, the same every time", function()
    local names = { "alpha", "bravo", "charlie", "delta", "echo", "foxtrot" }
    local function first_offsets(spread)
      local offsets = {}
      local t0
      local d = core.dispatcher{ spread = spread }
      for _, name in ipairs(names) do
        d:add({ check = function() offsets[name] = offsets[name] or core.now() - t0 end },
              { interval = 0.4, name = name })
      end
      core.spawn(function()
        t0 = core.now()
        d:start()
        core.sleep(0.39)
        d:stop()
      end)
      core.run()
      return offsets
    end
    local a, b = first_offsets(true), first_offsets(true)
    local distinct = {}
    for _, name in ipairs(names) do
      assert.is_number(a[name], name .. " did not run in its first interval")
      assert.is_true(a[name] >= 0 and a[name] < 0.4)
      assert.is_true(math.abs(a[name] - b[name]) < 0.015, name)
      distinct[("%.2f"):format(a[name])] = true
    end
    local n = 0
    for _ in pairs(distinct) do n = n + 1 end
    assert.is_true(n >= 4, "first runs are not spread")
    local c = first_offsets(false)
    for _, name in ipairs(names) do
      assert.is_true(c[name] < 0.02, name .. " with spread=false ran at " .. c[name])
    end
  end)

  it("looks monitor:check up at every tick, and accepts monitors added while running", function()
    local calls = {}
    local monitor = {}
    function monitor.check()
      calls[#calls + 1] = "old"
      monitor.check = function() calls[#calls + 1] = "new" end
    end
    local late = { check = function() calls[#calls + 1] = "late" end }
    local d = core.dispatcher{ spread = false }
    d:add(monitor, { interval = 0.1, name = "m" })
    core.spawn(function()
      core.sleep(0.15)
      d:add(late, { interval = 1, name = "late" })
    end)
    run_for(d, 0.25)
    assert.same({ "old", "new", "late", "new" }, calls)
    assert.equals(2, d:stats().monitors)
  end)

  it("keeps each monitor at its own interval; ticks due together run in the order added", function()
    local starts, order = {}, {}
    local d = core.dispatcher{ spread = false }
    local intervals = { 0.05, 0.07, 0.11, 0.13, 0.05, 0.07 }
    for i, interval in ipairs(intervals) do
      starts[i] = {}
      d:add({ check = function()
        starts[i][#starts[i] + 1] = core.now()
        if #order < #intervals then order[#order + 1] = i end
      end }, { interval = interval, name = "m" .. i })
    end
    run_for(d, 0.6)
    assert.same({ 1, 2, 3, 4, 5, 6 }, order) -- all due at the start instant
    for i, interval in ipairs(intervals) do
      -- ticks at 0, interval, ...; one may fall on the stop at 0.6 s
      local whole = math.floor(0.6 / interval + 1e-9)
      assert.is_true(#starts[i] == whole or #starts[i] == whole + 1,
        ("monitor %d: %d starts"):format(i, #starts[i]))
      assert_near_all(interval, diffs(starts[i]), 0.03, "monitor " .. i)
    end
    assert.equals(0, d:stats().skipped)
  end)

  it("a check that stops and restarts its dispatcher leaves one tick per monitor", function()
    local runs, restarted = { a = 0, b = 0 }, false
    local d = core.dispatcher{ spread = false }
    d:add({ check = function()
      runs.a = runs.a + 1
      if not restarted then
        restarted = true
        d:stop() -- cancels this check, b's too if it runs
        d:start()
      end
    end }, { interval = 0.1, name = "a" })
    d:add({ check = function() runs.b = runs.b + 1 end }, { interval = 0.1, name = "b" })
    run_for(d, 0.35)
    -- a: 0 (restarts), then 0+, 0.1, 0.2, 0.3; b: 0+, 0.1, 0.2, 0.3
    assert.equals(5, runs.a)
    assert.equals(4, runs.b)
    assert.equals(0, d:stats().skipped)
  end)

  it("d:add refuses a bad interval", function()
    local d = core.dispatcher{}
    local m = { check = function() end }
    for _, bad in ipairs({ 0, -1, "often", 0 / 0, false }) do
      local ok, msg = pcall(d.add, d, m, { interval = bad, name = "bad" })
      assert.is_false(ok, "accepted interval " .. tostring(bad))
      assert.matches("dispatcher:add: monitor 'bad': interval must be a number of seconds "
                     .. "greater than 0", msg, 1, true)
    end
    local ok = pcall(d.add, d, m, { name = "none" })
    assert.is_false(ok)
    assert.has_error(function() d:add(m) end)
    assert.has_error(function() core.dispatcher{ on_error = "log it" } end)
    assert.equals(0, d:stats().monitors)
  end)

  -- The schedule starts from the time of d:start(), not from the loop's
  -- cached time (the usual d:start(); core.run() after loading a config).
  it("schedules from the time of d:start(), even after time spent outside the loop", function()
    local starts = {}
    local d = core.dispatcher{ spread = false }
    d:add({ check = function() starts[#starts + 1] = core.now() end },
          { interval = 0.5, name = "x" })
    core.run(function() end) -- the loop's clock is fresh here
    spin(0.3) -- e.g. loading the configuration
    local t0 = core.now()
    d:start()
    core.spawn(function() core.sleep(0.65); d:stop() end)
    core.run()
    assert.equals(2, #starts)
    assert.is_true(starts[1] - t0 < 0.03, "first run after " .. (starts[1] - t0))
    assert_near_all(0.5, diffs(starts), 0.03, "interval")
    assert.equals(0, d:stats().skipped)
  end)

  -- stop() counts a running check as cancelled; its next wait ends it so.
  it("a check that stops its own dispatcher ends cancelled, not failed", function()
    local errors, after = {}, false
    local d
    d = core.dispatcher{
      spread = false,
      on_error = function(_, tb) errors[#errors + 1] = tb end,
    }
    local stopped
    d:add({ check = function() stopped = d:stop(); core.sleep(0.05); after = true end },
          { interval = 0.1, name = "self-stop" })
    d:start()
    core.run()
    assert.equals(1, stopped)
    assert.is_false(after)
    assert.same({}, errors)
    local st = d:stats()
    assert.equals(0, st.failed)
    assert.equals(1, st.cancelled)
  end)
  -- A reload: checks removed, added and replaced while the others run on.
  describe("while running", function()
    it("remove cancels the running check, drops its tick and keeps the others' phase",
    function()
      local starts, closed, after = { keep = {}, gone = {} }, 0, false
      local function monitor(name, hold)
        return { check = function()
          starts[name][#starts[name] + 1] = core.now()
          local _ <close> = setmetatable({}, { __close = function() closed = closed + 1 end })
          core.sleep(hold)
          if name == "gone" then after = true end
        end }
      end
      local d = core.dispatcher{ spread = false }
      d:add(monitor("keep", 0.01), { interval = 0.2, name = "keep" })
      local gone = d:add(monitor("gone", 5), { interval = 0.2, name = "gone" })
      local cancelled
      core.spawn(function()
        d:start()
        core.sleep(0.1) -- "gone" waits in its 5 s check
        cancelled = d:remove(gone)
        core.sleep(0.55)
        d:stop()
      end)
      core.run()
      assert.is_true(cancelled)
      assert.is_false(after)
      assert.equals(1, #starts.gone)
      assert.equals(4, #starts.keep) -- 0, 0.2, 0.4, 0.6: unmoved by the remove
      assert_near_all(0.2, diffs(starts.keep), 0.03, "interval")
      local st = d:stats()
      assert.equals(1, st.monitors)
      assert.equals(1, st.cancelled)
      assert.equals(0, st.failed)
      assert.has_error(function() d:remove(gone) end,
        "dispatcher:remove: no check with id " .. gone)
    end)

    it("add on a running dispatcher starts the check at once; a removed id is reused",
    function()
      local starts = {}
      local d = core.dispatcher{ spread = false }
      local first = d:add({ check = function() end }, { interval = 1, name = "first" })
      local added_at, id
      core.spawn(function()
        d:start()
        core.sleep(0.1)
        assert.is_false(d:remove(first)) -- idle: nothing to cancel
        added_at = core.now()
        id = d:add({ check = function() starts[#starts + 1] = core.now() end },
                   { interval = 0.2, name = "second" })
        core.sleep(0.35)
        d:stop()
      end)
      core.run()
      assert.equals(first, id)
      assert.equals(2, #starts) -- at once, then 0.2 s later
      assert.is_true(starts[1] - added_at < 0.03, "first run after " .. (starts[1] - added_at))
      assert_near_all(0.2, diffs(starts), 0.03, "interval")
      assert.equals(1, d:stats().monitors)
    end)

    it("a check cannot remove itself while its Lua runs", function()
      local d = core.dispatcher{ spread = false }
      local id, err
      id = d:add({ check = function()
        local ok, e = pcall(d.remove, d, id)
        err = not ok and e
        d:stop()
      end }, { interval = 0.1, name = "self" })
      d:start()
      core.run()
      assert.matches("check %d+ is running Lua right now", err)
    end)

    it("removing every check leaves the loop free to end", function()
      local d = core.dispatcher{ spread = false }
      local ids = {}
      for i = 1, 50 do
        ids[i] = d:add({ check = function() core.sleep(10) end }, { interval = 1, name = "m" .. i })
      end
      core.spawn(function()
        d:start()
        core.sleep(0.05)
        for i = 50, 1, -1 do d:remove(ids[i]) end
        d:stop()
      end)
      local t0 = core.now()
      core.run()
      assert.is_true(core.now() - t0 < 1)
      local st = d:stats()
      assert.equals(0, st.monitors)
      assert.equals(50, st.cancelled)
    end)
  end)
end)
