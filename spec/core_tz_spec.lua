-- core.tz_localtime, core.tz_mktime: wall-clock time in a named IANA zone
-- (tzdata's files), with the process's own zone left as it was.
local core = require("moonwatch.core")

local JAN_1_2026 = 1767225600 -- 00:00 UTC, a Thursday
local JUL_1_2026 = 1782864000

local function wall(t) return { t.year, t.month, t.day, t.hour, t.min, t.sec } end

describe("core.tz_localtime", function()
  it("gives os.date's fields, and the offset east of UTC", function()
    assert.same({ year = 2026, month = 1, day = 1, hour = 0, min = 0, sec = 0, wday = 5,
                  yday = 1, isdst = false, offset = 0 }, core.tz_localtime(JAN_1_2026, "UTC"))
    local t = os.date("!*t", JUL_1_2026 + 3661)
    local z = core.tz_localtime(JUL_1_2026 + 3661, "UTC")
    for _, k in ipairs{ "year", "month", "day", "hour", "min", "sec", "wday", "yday" } do
      assert.equal(t[k], z[k], k)
    end
  end)

  it("knows Europe/Berlin in winter and summer", function()
    local winter = core.tz_localtime(JAN_1_2026, "Europe/Berlin")
    assert.same({ 2026, 1, 1, 1, 0, 0 }, wall(winter))
    assert.same({ 3600, false }, { winter.offset, winter.isdst })
    local summer = core.tz_localtime(JUL_1_2026, "Europe/Berlin")
    assert.same({ 2026, 7, 1, 2, 0, 0 }, wall(summer))
    assert.same({ 7200, true }, { summer.offset, summer.isdst })
  end)

  it("knows America/New_York (a day earlier) and Asia/Kolkata (+05:30)", function()
    local ny = core.tz_localtime(JAN_1_2026, "America/New_York")
    assert.same({ 2025, 12, 31, 19, 0, 0 }, wall(ny))
    assert.same({ -18000, 4, 365 }, { ny.offset, ny.wday, ny.yday })
    local kolkata = core.tz_localtime(JAN_1_2026, "Asia/Kolkata")
    assert.same({ 2026, 1, 1, 5, 30, 0 }, wall(kolkata))
    assert.equal(5 * 3600 + 1800, kolkata.offset)
  end)

  it("takes a fractional time as its second", function()
    assert.equal(59, core.tz_localtime(JAN_1_2026 - 0.5, "UTC").sec)
  end)

  it("says an unknown zone is unknown", function()
    assert.same({ nil, "unknown time zone 'Mars/Olympus'" },
      { core.tz_localtime(0, "Mars/Olympus") })
    assert.same({ nil, "unknown time zone 'Europe'" }, { core.tz_localtime(0, "Europe") })
    assert.same({ nil, "unknown time zone 'zone.tab'" }, { core.tz_localtime(0, "zone.tab") })
    local long = string.rep("x", 300)
    assert.same({ nil, "unknown time zone '" .. long:sub(1, 100) .. "…'" },
      { core.tz_localtime(0, long) })
  end)

  it("refuses names that leave the zone directory", function()
    for _, zone in ipairs{ "../etc/passwd", "/etc/localtime", "Europe/../../etc/passwd",
                           "./UTC", "Europe//Berlin", "" } do
      assert.same({ nil, "unknown time zone '" .. zone .. "'" },
        { core.tz_localtime(0, zone) }, zone)
    end
  end)

  it("raises on a malformed argument", function()
    assert.has_error(function() core.tz_localtime("soon", "UTC") end)
    assert.has_error(function() core.tz_localtime(0) end)
    assert.has_error(function() core.tz_localtime(0 / 0, "UTC") end)
  end)
end)

describe("core.tz_mktime", function()
  it("is tz_localtime's inverse", function()
    for _, zone in ipairs{ "UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata" } do
      for _, t in ipairs{ JAN_1_2026, JUL_1_2026, JUL_1_2026 + 12345 } do
        assert.equal(t, core.tz_mktime(core.tz_localtime(t, zone), zone), zone)
      end
    end
  end)

  it("defaults hour, min and sec to 0 and normalises fields as os.time does", function()
    assert.equal(JAN_1_2026, core.tz_mktime({ year = 2026, month = 1, day = 1 }, "UTC"))
    assert.equal(JAN_1_2026, core.tz_mktime({ year = 2025, month = 12, day = 32 }, "UTC"))
    assert.equal(JAN_1_2026 + 86400,
      core.tz_mktime({ year = 2025, month = 12, day = 31, hour = 19 + 24 }, "America/New_York"))
  end)

  it("moves a time in the spring-forward gap on by the gap", function()
    -- 29 March 2026, Berlin: 02:00 CET is 03:00 CEST (01:00 UTC)
    local day = { year = 2026, month = 3, day = 29, hour = 2, min = 30 }
    local t = core.tz_mktime(day, "Europe/Berlin")
    assert.equal(1774747800, t) -- 01:30 UTC
    assert.same({ 3, 30, true }, { core.tz_localtime(t, "Europe/Berlin").hour,
      core.tz_localtime(t, "Europe/Berlin").min, core.tz_localtime(t, "Europe/Berlin").isdst })
    day.hour, day.min = 1, 59
    assert.equal(1774745940, core.tz_mktime(day, "Europe/Berlin")) -- 00:59 UTC
  end)

  it("takes the first of a time that happens twice in the autumn overlap", function()
    -- 25 October 2026, Berlin: 03:00 CEST goes back to 02:00 CET
    local t = core.tz_mktime({ year = 2026, month = 10, day = 25, hour = 2, min = 30 },
      "Europe/Berlin")
    assert.equal(1792888200, t) -- 00:30 UTC, CEST
    assert.is_true(core.tz_localtime(t, "Europe/Berlin").isdst)
    assert.equal(1792895400, core.tz_mktime({ year = 2026, month = 10, day = 25, hour = 3,
      min = 30 }, "Europe/Berlin"))
  end)

  it("says an unknown zone is unknown, and raises on malformed fields", function()
    assert.same({ nil, "unknown time zone '../etc/passwd'" },
      { core.tz_mktime({ year = 2026, month = 1, day = 1 }, "../etc/passwd") })
    assert.has_error(function() core.tz_mktime({ year = 2026, month = 1 }, "UTC") end,
      "field 'day' missing in date table")
    assert.has_error(function() core.tz_mktime({ year = 2026, month = 1, day = 1.5 }, "UTC") end,
      "field 'day' is not an integer")
    assert.has_error(function() core.tz_mktime({ year = 1e9, month = 1, day = 1 }, "UTC") end,
      "field 'year' is out of range")
    assert.has_error(function() core.tz_mktime("2026-01-01", "UTC") end)
  end)
end)

describe("the process's zone", function()
  it("is left as it was: os.date reads the same before and after", function()
    local before = os.date("%Y-%m-%d %H:%M:%S %z", JUL_1_2026)
    local tz = os.getenv("TZ")
    core.tz_localtime(JUL_1_2026, "Asia/Kolkata")
    core.tz_mktime({ year = 2026, month = 3, day = 29, hour = 2, min = 30 }, "Europe/Berlin")
    core.tz_localtime(0, "Mars/Olympus")
    assert.equal(before, os.date("%Y-%m-%d %H:%M:%S %z", JUL_1_2026))
    assert.equal(tz, os.getenv("TZ"))
  end)

  it("is left as TZ names it, in a process whose TZ is set", function()
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write("local core = require('moonwatch.core')\n",
      "core.tz_localtime(0, 'Asia/Kolkata')\n",
      "io.write(os.getenv('TZ'), ' ', os.date('%z', ", JUL_1_2026, "))\n")
    f:close()
    -- the executable, so that the sanitizer build runs its own core
    local bin = os.getenv("MOONWATCH_BIN") or "build/moonwatch"
    local p = assert(io.popen("TZ=America/New_York " .. bin .. " -l " .. path))
    local out = p:read("a")
    p:close()
    os.remove(path)
    assert.equal("America/New_York -0400", out)
  end)
end)
