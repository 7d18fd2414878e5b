-- Maintenance windows: one-off and recurring, in a named zone, per monitor.
-- Every time is given explicitly (nothing reads a clock).
local maintenance = require("moonwatch.maintenance")

-- Unix time of a UTC wall-clock time "2026-01-03 22:00[:ss]", computed here
-- (days from the civil date) rather than by the code under test.
local function utc(s)
  local y, m, d, h, mi, sec = s:match("^(%d+)-(%d+)-(%d+) (%d+):(%d+):?(%d*)$")
  y, m, d = tonumber(y), tonumber(m), tonumber(d)
  y = m <= 2 and y - 1 or y
  local era = y // 400
  local yoe = y - era * 400
  local doy = (153 * (m > 2 and m - 3 or m + 9) + 2) // 5 + d - 1
  local days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
  return days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + (tonumber(sec) or 0)
end

local function window(spec) return assert(maintenance.compile(spec, "maintenance[1]")) end

local function err_of(spec, where)
  local w, err = maintenance.compile(spec, where or "maintenance[1]")
  assert.is_nil(w)
  return err
end

-- active(t) for each t, as { true, false, ... }
local function actives(w, times)
  local out = {}
  for i, t in ipairs(times) do out[i] = w:active(utc(t)) end
  return out
end

local function change(w, t)
  local c = w:next_change(utc(t))
  return c and os.date("!%Y-%m-%d %H:%M", c)
end

describe("maintenance", function()
  it("checks its own date helper", function()
    assert.equal(0, utc("1970-01-01 00:00"))
    assert.equal(1767225600, utc("2026-01-01 00:00"))
    assert.equal(1774747800, utc("2026-03-29 01:30"))
  end)

  describe("a one-off window", function()
    local w = window { name = "xmas", start = "2026-12-24T22:00:00+01:00", duration = "2h" }

    it("is active from its start (inclusive) to its end (exclusive)", function()
      assert.equal("xmas", w.name)
      assert.equal("once", w.kind)
      assert.same({ false, true, true, true, false, false },
        actives(w, { "2026-12-24 20:59:59", "2026-12-24 21:00", "2026-12-24 22:00",
                     "2026-12-24 22:59:59", "2026-12-24 23:00", "2026-12-25 12:00" }))
    end)

    it("changes at its start, then at its end, then never", function()
      assert.equal("2026-12-24 21:00", change(w, "2026-12-01 00:00"))
      assert.equal("2026-12-24 23:00", change(w, "2026-12-24 21:00"))
      assert.equal("2026-12-24 23:00", change(w, "2026-12-24 22:30"))
      assert.is_nil(change(w, "2026-12-24 23:00"))
    end)

    it("takes an end, Unix times, Z and fractions of a second", function()
      local e = window { start = "2026-12-24t21:00:00Z", ["end"] = "2026-12-24 23:30:00.5+00:00" }
      assert.same({ true, true, false }, actives(e, { "2026-12-24 21:00", "2026-12-24 23:30",
                                                      "2026-12-24 23:31" }))
      assert.equal(utc("2026-12-24 23:30") + 0.5, e:next_change(utc("2026-12-24 23:00")))
      local u = window { start = utc("2026-12-24 21:00"), duration = 90 }
      assert.same({ true, false }, actives(u, { "2026-12-24 21:01:29", "2026-12-24 21:01:30" }))
      local m = window { start = "2026-12-24T16:00:00-05:00", duration = "1h30m" }
      assert.same({ true, false }, actives(m, { "2026-12-24 22:29:59", "2026-12-24 22:30" }))
    end)

    it("is named after where it was given when it has no name", function()
      assert.equal("maintenance[1]", window({ start = 0, duration = "1d" }).name)
      assert.equal("maintenance", maintenance.compile({ start = 0, duration = 1 }).name)
    end)
  end)

  describe("a recurring window", function()
    it("recurs every day", function()
      local w = window { every = "day", at = "02:00", duration = "30m" }
      assert.equal("every", w.kind)
      assert.same({ false, true, true, false, true },
        actives(w, { "2026-01-05 01:59", "2026-01-05 02:00", "2026-01-05 02:29:59",
                     "2026-01-05 02:30", "2026-01-10 02:10" }))
      assert.equal("2026-01-05 02:30", change(w, "2026-01-05 02:10"))
      assert.equal("2026-01-06 02:00", change(w, "2026-01-05 02:30"))
      assert.equal("2026-01-05 02:00", change(w, "2026-01-05 00:00"))
    end)

    it("recurs on weekdays, Monday to Friday", function()
      -- 2026-01-05 is a Monday
      local w = window { every = "weekday", at = "09:00", duration = "1h" }
      assert.same({ true, true, false, false },
        actives(w, { "2026-01-05 09:30", "2026-01-09 09:30", "2026-01-10 09:30",
                     "2026-01-11 09:30" }))
      assert.equal("2026-01-12 09:00", change(w, "2026-01-09 10:00"))
    end)

    it("recurs at weekends, and days that touch are one span", function()
      local w = window { every = "weekend", at = "00:00", duration = "1d" }
      assert.same({ false, true, true, false },
        actives(w, { "2026-01-09 23:59", "2026-01-10 00:00", "2026-01-11 23:59",
                     "2026-01-12 00:00" }))
      assert.equal("2026-01-10 00:00", change(w, "2026-01-09 12:00"))
      assert.equal("2026-01-12 00:00", change(w, "2026-01-10 12:00")) -- not Sunday 00:00
    end)

    it("takes a list of days, full names and any case", function()
      local w = window { every = { "Tue", "thursday" }, at = "12:00", duration = "1h" }
      assert.same({ false, true, false, true },
        actives(w, { "2026-01-05 12:30", "2026-01-06 12:30", "2026-01-07 12:30",
                     "2026-01-08 12:30" }))
      assert.equal("2026-01-08 12:00", change(w, "2026-01-06 13:00"))
      local sat = window { every = "sat", at = "6:05:30", duration = 60 }
      assert.same({ true, false }, actives(sat, { "2026-01-10 06:06:29", "2026-01-10 06:06:30" }))
    end)

    it("crosses midnight: Saturday 22:00 for 4 h is active Sunday 01:00", function()
      local w = window { every = { "sat" }, at = "22:00", duration = "4h" }
      assert.same({ false, true, true, false, false },
        actives(w, { "2026-01-10 21:59", "2026-01-10 22:00", "2026-01-11 01:00",
                     "2026-01-11 02:00", "2026-01-12 01:00" }))
      assert.equal("2026-01-11 02:00", change(w, "2026-01-10 23:00"))
      assert.equal("2026-01-17 22:00", change(w, "2026-01-11 02:00"))
    end)

    it("reads at in its zone: 22:00 Berlin is 21:00 UTC in winter, 20:00 in summer", function()
      local w = window { every = "day", at = "22:00", duration = "1h", zone = "Europe/Berlin" }
      assert.same({ true, false }, actives(w, { "2026-01-15 21:30", "2026-01-15 20:30" }))
      assert.same({ true, false }, actives(w, { "2026-07-15 20:30", "2026-07-15 21:30" }))
      assert.equal("2026-01-15 21:00", change(w, "2026-01-15 12:00"))
      assert.equal("2026-07-15 20:00", change(w, "2026-07-15 12:00"))
      local kolkata = window { every = "day", at = "00:00", duration = "30m",
                               zone = "Asia/Kolkata" }
      assert.same({ true, false }, actives(kolkata, { "2026-01-14 18:30", "2026-01-14 19:00" }))
    end)

    it("follows Berlin's clock across the change to summer time (last Sunday of March)", function()
      local w = window { every = "day", at = "22:00", duration = "1h", zone = "Europe/Berlin" }
      assert.equal("2026-03-28 21:00", change(w, "2026-03-28 12:00"))
      assert.equal("2026-03-28 22:00", change(w, "2026-03-28 21:30"))
      assert.equal("2026-03-29 20:00", change(w, "2026-03-28 22:00")) -- 22:00 CEST
      assert.same({ true, false, true }, actives(w, { "2026-03-28 21:30", "2026-03-29 21:30",
                                                      "2026-03-29 20:30" }))
    end)

    it("starts a window at 02:30 on the spring-forward day at 03:30 CEST", function()
      -- 29 March 2026: 02:00 CET jumps to 03:00 CEST; 02:30 does not happen
      local w = window { every = "sun", at = "02:30", duration = "1h", zone = "Europe/Berlin" }
      assert.equal("2026-03-29 01:30", change(w, "2026-03-29 00:00")) -- 03:30 CEST
      assert.same({ false, true, true, false },
        actives(w, { "2026-03-29 01:29", "2026-03-29 01:30", "2026-03-29 02:29",
                     "2026-03-29 02:30" }))
      assert.equal("2026-03-29 02:30", change(w, "2026-03-29 01:45"))
      assert.equal("2026-04-05 00:30", change(w, "2026-03-29 02:30")) -- 02:30 CEST
      assert.equal("2026-03-22 01:30", change(w, "2026-03-22 00:00")) -- 02:30 CET
    end)

    it("runs once in the autumn overlap (last Sunday of October), from the first 02:30", function()
      -- 25 October 2026: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice
      local w = window { every = "sun", at = "02:30", duration = "1h", zone = "Europe/Berlin" }
      assert.equal("2026-10-25 00:30", change(w, "2026-10-25 00:00")) -- 02:30 CEST
      assert.same({ true, true, false },
        actives(w, { "2026-10-25 00:30", "2026-10-25 01:00", "2026-10-25 01:30" }))
      assert.equal("2026-10-25 01:30", change(w, "2026-10-25 00:45"))
      assert.equal("2026-11-01 01:30", change(w, "2026-10-25 01:30")) -- 02:30 CET
    end)

    it("lasts its duration in elapsed time across a change of offset", function()
      local w = window { every = "day", at = "01:00", duration = "3h", zone = "Europe/Berlin" }
      -- 01:00 CET is 00:00 UTC; three hours later the clock reads 05:00 CEST
      assert.same({ true, false }, actives(w, { "2026-03-29 02:59", "2026-03-29 03:00" }))
      assert.equal("2026-03-29 03:00", change(w, "2026-03-29 00:00"))
    end)

    it("joins occurrences that overlap into one span", function()
      -- 29 March is 23 h long in Berlin, so 23h30m from midnight runs into Monday's
      local w = window { every = "day", at = "00:00", duration = "23h30m",
                         zone = "Europe/Berlin" }
      assert.equal("2026-03-30 21:30", change(w, "2026-03-29 12:00"))
      assert.is_true(w:active(utc("2026-03-29 22:15")))
      assert.equal("2026-03-27 22:30", change(w, "2026-03-27 12:00")) -- an ordinary day
    end)

    it("answers for any time, in any order", function()
      local w = window { every = "sat", at = "22:00", duration = "4h" }
      assert.is_true(w:active(utc("2026-01-11 01:00")))
      assert.is_false(w:active(utc("2026-01-10 12:00")))
      assert.is_true(w:active(utc("2026-01-10 23:00")))
      assert.equal("2026-01-10 22:00", change(w, "2026-01-09 00:00"))
      assert.is_false(w:active(utc("2026-01-11 03:00")))
      assert.is_true(w:active(utc("2025-06-01 01:00")))
    end)
  end)

  describe("per monitor", function()
    it("applies to the monitors it names, or to all when it names none", function()
      local some = window { start = 0, duration = "1h", monitors = { "api", "db" } }
      assert.is_true(some:applies("api"))
      assert.is_true(some:applies("db"))
      assert.is_false(some:applies("web"))
      assert.same({ "api", "db" }, some.monitors)
      local one = window { start = 0, duration = "1h", monitors = "api" }
      assert.same({ true, false }, { one:applies("api"), one:applies("db") })
      local all = window { start = 0, duration = "1h" }
      assert.is_nil(all.monitors)
      assert.is_true(all:applies("anything"))
    end)
  end)

  describe("a set of windows", function()
    local set = assert(maintenance.Set({
      { name = "api upgrade", start = "2026-01-10T10:00:00Z", duration = "1h",
        monitors = { "api" } },
      { name = "nightly", every = "day", at = "03:00", duration = "15m" },
    }, "maintenance", { "api", "db" }))

    it("says which window holds a monitor's alerts", function()
      assert.equal("api upgrade", set:in_maintenance("api", utc("2026-01-10 10:30")).name)
      assert.is_nil(set:in_maintenance("db", utc("2026-01-10 10:30")))
      assert.equal("nightly", set:in_maintenance("db", utc("2026-01-10 03:10")).name)
      assert.equal("nightly", set:in_maintenance("api", utc("2026-01-10 03:10")).name)
      assert.is_nil(set:in_maintenance("api", utc("2026-01-10 11:00")))
    end)

    it("says when the next window opens or closes, for all or for one monitor", function()
      local t = utc("2026-01-10 04:00")
      assert.equal(utc("2026-01-10 10:00"), set:next_change(t))
      assert.equal(utc("2026-01-10 10:00"), set:next_change(t, "api"))
      assert.equal(utc("2026-01-11 03:00"), set:next_change(t, "db"))
      assert.equal(utc("2026-01-10 11:00"), set:next_change(utc("2026-01-10 10:00")))
      local once = assert(maintenance.Set({ { start = 0, duration = 1 } }))
      assert.is_nil(once:next_change(5))
      assert.is_nil(assert(maintenance.Set()):next_change(5))
    end)

    it("takes windows by name", function()
      local named = assert(maintenance.Set({
        backup = { every = "day", at = "01:00", duration = "1h" },
        xmas = { start = "2026-12-24T00:00:00Z", duration = "1d", name = "Christmas" },
      }, "maintenance"))
      assert.same({ "backup", "Christmas" }, { named.windows[1].name, named.windows[2].name })
      assert.equal("backup", named:in_maintenance("x", utc("2026-01-01 01:30")).name)
    end)

    it("refuses a window of an unknown monitor, a name given twice, and other lists", function()
      assert.same({ nil, "maintenance[1].monitors[2]: no monitor is named \"dbb\" "
        .. "(did you mean 'db'?)" }, { maintenance.Set({ { start = 0, duration = 1,
        monitors = { "api", "dbb" } } }, "maintenance", { "api", "db" }) })
      assert.same({ nil, "maintenance[2]: the name \"a\" is taken by maintenance[1]" },
        { maintenance.Set({ { start = 0, duration = 1, name = "a" },
                            { start = 0, duration = 1, name = "a" } }) })
      assert.same({ nil, "maintenance: expected a list of windows, got \"x\" (a string)" },
        { maintenance.Set("x") })
      assert.same({ nil, "maintenance: expected a list of windows or windows by name, got the "
        .. "key 5 (a number)" }, { maintenance.Set({ [5] = { start = 0, duration = 1 } }) })
      assert.same({ nil, "maintenance[2].duration: must be more than 0 seconds, got 0 (a number)" },
        { maintenance.Set({ { start = 0, duration = 1 }, { start = 0, duration = 0 } }) })
    end)
  end)

  describe("refuses, naming the window and the field,", function()
    local function bad(spec, message) assert.equal(message, err_of(spec)) end

    it("a spec that is not a table, or is neither kind", function()
      bad("x", 'maintenance[1]: expected a table, got "x" (a string)')
      bad({ name = "n" },
        "maintenance[1]: needs start (a one-off window) or every and at (a recurring one)")
    end)

    it("an unknown key, naming the closest known one", function()
      bad({ start = 0, durration = "1h" },
        "maintenance[1]: unknown option \"durration\" (did you mean 'duration'?)")
      bad({ every = "day", at = "22:00", duration = "1h", zome = "UTC" },
        "maintenance[1]: unknown option \"zome\" (did you mean 'zone'?)")
      bad({ start = 0, duration = 1, colour = "red" },
        "maintenance[1]: unknown option \"colour\" (options: name, monitors, start, end, "
          .. "duration, every, at, zone)")
      bad({ start = 0, duration = 1, [1] = "x" },
        "maintenance[1]: options are named (start = ..., every = ...), got the key 1 (a number)")
    end)

    it("a bad time", function()
      local shape = "an RFC 3339 time such as \"2026-12-24T22:00:00+01:00\" or a Unix time"
      bad({ start = "tomorrow", duration = "1h" },
        "maintenance[1].start: expected " .. shape .. ", got \"tomorrow\" (a string)")
      bad({ start = "2026-12-24T22:00:00", duration = "1h" },
        "maintenance[1].start: expected " .. shape .. ", got \"2026-12-24T22:00:00\" (a string)")
      bad({ start = "2026-12-24T22:00:00.Z", duration = "1h" },
        "maintenance[1].start: expected " .. shape .. ", got \"2026-12-24T22:00:00.Z\" (a string)")
      bad({ start = true, duration = "1h" },
        "maintenance[1].start: expected " .. shape .. ", got true (a boolean)")
      bad({ start = 0 / 0, duration = "1h" },
        "maintenance[1].start: expected " .. shape .. ", got " .. tostring(0 / 0) .. " (a number)")
      bad({ start = "2026-02-29T10:00:00Z", duration = "1h" },
        "maintenance[1].start: \"2026-02-29T10:00:00Z\" is not a time (no day 29 in 2026-02)")
      bad({ start = "2026-13-01T10:00:00Z", duration = "1h" },
        "maintenance[1].start: \"2026-13-01T10:00:00Z\" is not a time (no month 13)")
      bad({ start = "2026-01-01T24:00:00Z", duration = "1h" },
        "maintenance[1].start: \"2026-01-01T24:00:00Z\" is not a time (no hour 24)")
      bad({ start = "2026-01-01T10:00:00+25:00", duration = "1h" },
        "maintenance[1].start: the offset +25:00 is out of range, in "
          .. "\"2026-01-01T10:00:00+25:00\"")
      bad({ start = 0, ["end"] = "never" },
        "maintenance[1].end: expected " .. shape .. ", got \"never\" (a string)")
      assert.is_not_nil(maintenance.compile { start = "2028-02-29T10:00:00Z", duration = 1 })
    end)

    it("an end not after its start, both end and duration, or neither", function()
      bad({ start = "2026-12-24T22:00:00+01:00", ["end"] = "2026-12-24T21:00:00Z" },
        "maintenance[1].end: \"2026-12-24T21:00:00Z\" is not after start "
          .. "\"2026-12-24T22:00:00+01:00\"")
      bad({ start = 100, ["end"] = 100 }, "maintenance[1].end: 100 is not after start 100")
      bad({ start = 0, ["end"] = 10, duration = "1h" },
        "maintenance[1]: give end or duration, not both")
      bad({ start = 0 }, "maintenance[1]: a one-off window needs end or duration")
    end)

    it("a bad duration", function()
      bad({ start = 0, duration = "2 hours" }, "maintenance[1].duration: expected a duration "
        .. "such as 5s, 250ms or 1m30s, got \"2 hours\"")
      bad({ start = 0, duration = {} }, "maintenance[1].duration: expected a duration "
        .. "such as 5s, 250ms or 1m30s, got a table")
      bad({ start = 0, duration = "0s" },
        "maintenance[1].duration: must be more than 0 seconds, got \"0s\" (a string)")
      bad({ every = "day", at = "22:00", duration = "1d" },
        "maintenance[1].duration: must be shorter than 1d, the longest gap between its days, "
          .. "or the window never ends, got \"1d\" (a string)")
      bad({ every = "weekday", at = "22:00", duration = "3d" },
        "maintenance[1].duration: must be shorter than 3d, the longest gap between its days, "
          .. "or the window never ends, got \"3d\" (a string)")
      assert.is_not_nil(maintenance.compile { every = "weekday", at = "22:00", duration = "2d" })
    end)

    it("a bad zone", function()
      bad({ every = "day", at = "22:00", duration = "1h", zone = "Europe/Berln" },
        "maintenance[1].zone: unknown time zone \"Europe/Berln\" (did you mean 'Europe/Berlin'?)")
      bad({ every = "day", at = "22:00", duration = "1h", zone = "europe/berlin" },
        "maintenance[1].zone: unknown time zone \"europe/berlin\" (did you mean 'Europe/Berlin'?)")
      bad({ every = "day", at = "22:00", duration = "1h", zone = "../etc/passwd" },
        "maintenance[1].zone: unknown time zone \"../etc/passwd\"")
      bad({ every = "day", at = "22:00", duration = "1h", zone = 1 },
        "maintenance[1].zone: expected a time zone name such as \"Europe/Berlin\" or \"UTC\", "
          .. "got 1 (a number)")
      bad({ start = 0, duration = "1h", zone = "UTC" },
        "maintenance[1]: zone is for recurring windows (every, at); a one-off window's start "
          .. "and end carry their offset, as in \"2026-12-24T22:00:00+01:00\"")
    end)

    it("a bad or empty every", function()
      bad({ every = {}, at = "22:00", duration = "1h" },
        "maintenance[1].every: the list of days is empty (name at least one, such as "
          .. "{ \"sat\", \"sun\" }, or use \"day\", \"weekday\" or \"weekend\")")
      bad({ every = "wekend", at = "22:00", duration = "1h" },
        "maintenance[1].every: unknown day or set of days \"wekend\" (did you mean 'weekend'?); "
          .. "use \"day\", \"weekday\", \"weekend\", a day such as \"sat\" or a list of days")
      bad({ every = { "sat", "sonday" }, at = "22:00", duration = "1h" },
        "maintenance[1].every[2]: unknown day \"sonday\" (did you mean 'sunday'?); "
          .. "use sun, mon, tue, wed, thu, fri, sat")
      bad({ every = { "sat", 7 }, at = "22:00", duration = "1h" },
        "maintenance[1].every[2]: expected a day such as \"sat\", got 7 (a number)")
      bad({ every = { first = "sat" }, at = "22:00", duration = "1h" },
        "maintenance[1].every: expected a list of days such as { \"sat\", \"sun\" }, got the key "
          .. "\"first\" (a string)")
      bad({ every = 1, at = "22:00", duration = "1h" },
        "maintenance[1].every: expected \"day\", \"weekday\", \"weekend\" or a list of days "
          .. "such as { \"sat\", \"sun\" }, got 1 (a number)")
    end)

    it("a bad at, a missing field, a field of the other kind", function()
      bad({ every = "day", at = "10pm", duration = "1h" }, "maintenance[1].at: expected a time "
        .. "of day such as \"22:00\" or \"06:30:00\", got \"10pm\" (a string)")
      bad({ every = "day", at = "24:00", duration = "1h" },
        "maintenance[1].at: \"24:00\" is not a time of day (00:00 to 23:59:59)")
      bad({ every = "day", at = 22, duration = "1h" }, "maintenance[1].at: expected a time "
        .. "of day such as \"22:00\" or \"06:30:00\", got 22 (a number)")
      bad({ every = "day", duration = "1h" },
        "maintenance[1].at: missing (a recurring window needs every, at and duration)")
      bad({ at = "22:00", duration = "1h" },
        "maintenance[1].every: missing (a recurring window needs every, at and duration)")
      bad({ every = "day", at = "22:00" },
        "maintenance[1].duration: missing (a recurring window needs every, at and duration)")
      bad({ every = "day", at = "22:00", duration = "1h", start = 0 },
        "maintenance[1]: start is for one-off windows; a recurring one has every, at and duration")
    end)

    it("bad monitors or name", function()
      bad({ start = 0, duration = 1, monitors = {} }, "maintenance[1].monitors: the list is "
        .. "empty (leave monitors out for a window on every monitor)")
      bad({ start = 0, duration = 1, monitors = { "api", 2 } },
        "maintenance[1].monitors[2]: expected a monitor's name, got 2 (a number)")
      bad({ start = 0, duration = 1, monitors = { api = true } }, "maintenance[1].monitors: "
        .. "expected a list of monitor names such as { \"api\", \"db\" }, got the key \"api\" "
        .. "(a string)")
      bad({ start = 0, duration = 1, monitors = 5 }, "maintenance[1].monitors: expected a list "
        .. "of monitor names such as { \"api\", \"db\" }, got 5 (a number)")
      bad({ start = 0, duration = 1, name = "" },
        "maintenance[1].name: expected a non-empty string, got \"\" (a string)")
    end)
  end)
end)
