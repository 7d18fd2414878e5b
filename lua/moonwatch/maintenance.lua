--- Maintenance windows: spans of time in which a monitor's checks, results
--- and state go on but its alerts are held.
---
---     local maintenance = require("moonwatch.maintenance")
---     local set = assert(maintenance.Set({
---       { name = "xmas", start = "2026-12-24T22:00:00+01:00", duration = "2h" },
---       { every = "weekend", at = "22:00", duration = "3h", zone = "Europe/Berlin",
---         monitors = { "api", "db" } },
---     }, "maintenance"))
---     set:in_maintenance("api", now) --> the window holding api's alerts, or nil
---     set:next_change(now)           --> when some window next opens or closes
---
--- A window is one-off (`start` and `end` or `duration`) or recurring (`every`
--- day(s) `at` a wall-clock time in `zone`, for `duration`, which may cross
--- midnight). Times are Unix seconds; nothing here reads a clock, so callers
--- (and specs) pass the time in. Windows are active from their start
--- (inclusive) to their end (exclusive); a recurring window's occurrences
--- that touch or overlap are one span.
local core = require("moonwatch.core")
local convert = require("moonwatch.config.convert")
local suggest = require("moonwatch.suggest")

local M = {}

local DAY = 86400
local format = string.format
local describe, quote = suggest.describe, suggest.quote
local function shown(v) return type(v) == "string" and quote(v) or tostring(v) end

M.ONCE_KEYS = { "name", "monitors", "start", "end", "duration" }
M.EVERY_KEYS = { "name", "monitors", "every", "at", "duration", "zone" }
M.KEYS = { "name", "monitors", "start", "end", "duration", "every", "at", "zone" }
local KNOWN = {}
for _, k in ipairs(M.KEYS) do KNOWN[k] = true end

M.DAYS = { "sun", "mon", "tue", "wed", "thu", "fri", "sat" } -- by os.date's wday
local FULL_DAYS = { "sunday", "monday", "tuesday", "wednesday", "thursday", "friday",
                    "saturday" }
local WDAY = {}
for i, d in ipairs(M.DAYS) do WDAY[d], WDAY[FULL_DAYS[i]] = i, i end
M.DAY_SETS = {
  day = { 1, 2, 3, 4, 5, 6, 7 },
  weekday = { 2, 3, 4, 5, 6 },
  weekend = { 7, 1 },
}
local EVERY_WORDS = { "day", "weekday", "weekend", table.unpack(FULL_DAYS) }

local ZONE_LIST = "/usr/share/zoneinfo/tzdata.zi"

-- Raised by the checks below and caught by compile, which returns it.
local Bad = {}
local function bad(fmt, ...) error(setmetatable({ msg = format(fmt, ...) }, Bad), 0) end

--- The zone names tzdata knows (zones and their links), for suggestions.
local function zone_names()
  local names = { "UTC" }
  local f = io.open(ZONE_LIST, "r")
  if not f then return names end
  for line in f:lines() do
    local name = line:match("^Z (%S+)") or line:match("^L %S+ (%S+)")
    if name then names[#names + 1] = name end
  end
  f:close()
  return names
end

---@return integer
local function days_in_month(year, month)
  if month == 2 then
    local leap = (year % 4 == 0 and year % 100 ~= 0) or year % 400 == 0
    return leap and 29 or 28
  end
  return (month == 4 or month == 6 or month == 9 or month == 11) and 30 or 31
end

local RFC3339 = "an RFC 3339 time such as \"2026-12-24T22:00:00+01:00\" or a Unix time"

--- An RFC 3339 date-time (the offset required: "Z" or "+01:00") or Unix
--- seconds, as Unix seconds.
local function parse_time(v, what)
  if type(v) == "number" then
    if v ~= v or v == math.huge or v == -math.huge then
      bad("%s: expected %s, got %s", what, RFC3339, describe(v))
    end
    return v
  end
  if type(v) ~= "string" then bad("%s: expected %s, got %s", what, RFC3339, describe(v)) end
  local y, mo, d, h, mi, s, rest =
    v:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)[Tt ](%d%d):(%d%d):(%d%d)(.*)$")
  local frac, offset = "", nil
  if rest then
    frac = rest:match("^%.%d+") or ""
    rest = rest:sub(#frac + 1)
  end
  if rest == "Z" or rest == "z" then
    offset = 0
  elseif rest then
    local sign, oh, om = rest:match("^([+-])(%d%d):(%d%d)$")
    if sign then
      if tonumber(oh) > 23 or tonumber(om) > 59 then
        bad("%s: the offset %s is out of range, in %s", what, rest, quote(v))
      end
      offset = (tonumber(oh) * 3600 + tonumber(om) * 60) * (sign == "-" and -1 or 1)
    end
  end
  if not offset then bad("%s: expected %s, got %s", what, RFC3339, describe(v)) end
  y, mo, d, h, mi, s = tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi),
    tonumber(s)
  local why = (mo < 1 or mo > 12) and format("no month %d", mo)
    or (d < 1 or d > days_in_month(y, mo)) and format("no day %d in %04d-%02d", d, y, mo)
    or h > 23 and format("no hour %d", h)
    or mi > 59 and format("no minute %d", mi)
    or s > 59 and format("no second %d", s)
  if why then bad("%s: %s is not a time (%s)", what, quote(v), why) end
  local t = core.tz_mktime({ year = y, month = mo, day = d, hour = h, min = mi, sec = s }, "UTC")
  if frac ~= "" then t = t + tonumber("0" .. frac) end
  return t - offset
end

local function parse_duration(v, what)
  local secs, why = convert.duration(v)
  if not secs then bad("%s: %s", what, why) end
  if secs <= 0 then bad("%s: must be more than 0 seconds, got %s", what, describe(v)) end
  return secs
end

--- "22:00" or "06:30:15" -> hour, minute, second.
local function parse_at(v, what)
  local shape = "expected a time of day such as \"22:00\" or \"06:30:00\""
  if type(v) ~= "string" then bad("%s: %s, got %s", what, shape, describe(v)) end
  local h, m, s = v:match("^(%d%d?):(%d%d)$")
  if not h then h, m, s = v:match("^(%d%d?):(%d%d):(%d%d)$") end
  if not h then bad("%s: %s, got %s", what, shape, describe(v)) end
  h, m, s = tonumber(h), tonumber(m), tonumber(s or 0)
  if h > 23 or m > 59 or s > 59 then
    bad("%s: %s is not a time of day (00:00 to 23:59:59)", what, quote(v))
  end
  return h, m, s
end

local function parse_day(v, what)
  local wday = type(v) == "string" and WDAY[v:lower()]
  if wday then return wday end
  if type(v) ~= "string" then
    bad("%s: expected a day such as \"sat\", got %s", what, describe(v))
  end
  bad("%s: unknown day %s%s; use %s", what, quote(v), suggest.hint(v, FULL_DAYS),
    table.concat(M.DAYS, ", "))
end

--- every -> set of wdays (1 = Sunday), and the longest gap in days from one
--- of them to the next (7 for a single day).
local function parse_every(v, what)
  local wdays = {}
  if type(v) == "string" then
    local set = M.DAY_SETS[v:lower()]
    if set then
      wdays = set
    elseif WDAY[v:lower()] then
      wdays = { WDAY[v:lower()] }
    else
      bad("%s: unknown day or set of days %s%s; use \"day\", \"weekday\", \"weekend\", "
        .. "a day such as \"sat\" or a list of days", what, quote(v),
        suggest.hint(v, EVERY_WORDS))
    end
  elseif type(v) == "table" then
    if next(v) == nil then
      bad("%s: the list of days is empty (name at least one, such as { \"sat\", \"sun\" }, "
        .. "or use \"day\", \"weekday\" or \"weekend\")", what)
    end
    for k in pairs(v) do
      if math.type(k) ~= "integer" or k < 1 or k > #v then
        bad("%s: expected a list of days such as { \"sat\", \"sun\" }, got the key %s", what,
          describe(k))
      end
    end
    for i, d in ipairs(v) do wdays[#wdays + 1] = parse_day(d, format("%s[%d]", what, i)) end
  else
    bad("%s: expected \"day\", \"weekday\", \"weekend\" or a list of days such as "
      .. "{ \"sat\", \"sun\" }, got %s", what, describe(v))
  end
  local set = {}
  for _, w in ipairs(wdays) do set[w] = true end
  local gap, first, prev = 0, nil, nil
  for w = 1, 7 do
    if set[w] then
      if prev then gap = math.max(gap, w - prev) end
      first, prev = first or w, w
    end
  end
  gap = math.max(gap, first + 7 - prev)
  return set, gap
end

local function parse_zone(v, what)
  if type(v) ~= "string" then
    bad("%s: expected a time zone name such as \"Europe/Berlin\" or \"UTC\", got %s", what,
      describe(v))
  end
  if not core.tz_localtime(0, v) then
    bad("%s: unknown time zone %s%s", what, quote(v), suggest.hint(v, zone_names()))
  end
  return v
end

local function parse_monitors(v, what)
  if type(v) == "string" then v = { v } end
  if type(v) ~= "table" then
    bad("%s: expected a list of monitor names such as { \"api\", \"db\" }, got %s", what,
      describe(v))
  end
  if next(v) == nil then
    bad("%s: the list is empty (leave monitors out for a window on every monitor)", what)
  end
  for k in pairs(v) do
    if math.type(k) ~= "integer" or k < 1 or k > #v then
      bad("%s: expected a list of monitor names such as { \"api\", \"db\" }, got the key %s",
        what, describe(k))
    end
  end
  local list, set = {}, {}
  for i, name in ipairs(v) do
    if type(name) ~= "string" or name == "" then
      bad("%s[%d]: expected a monitor's name, got %s", what, i, describe(name))
    end
    list[i], set[name] = name, true
  end
  return list, set
end

---@class moonwatch.MaintenanceWindow
---@field name string
---@field kind "once"|"every"
---@field monitors string[]? nil: every monitor
local Window = {}
Window.__index = Window

--- Whether the window holds this monitor's alerts (when active).
---@param monitor string
---@return boolean
function Window:applies(monitor)
  return self.for_monitors == nil or self.for_monitors[monitor] == true
end

local Once = setmetatable({}, { __index = Window })
Once.__index = Once

---@param t number Unix time
---@return boolean
function Once:active(t) return self.start <= t and t < self.finish end

--- The first time after t at which active changes, or nil when it never does.
---@param t number
---@return number?
function Once:next_change(t)
  if t < self.start then return self.start end
  if t < self.finish then return self.finish end
  return nil
end

local Every = setmetatable({}, { __index = Window })
Every.__index = Every

-- Spans joined into one are at most a few occurrences long (compile keeps the
-- duration below the longest gap); this only bounds the loop.
local MAX_JOINED = 64

--- The starts of the occurrences on the local days `from` to `to` (relative
--- to t's local date), in order.
function Every:starts(t, from, to)
  local zone = self.zone
  local lt = core.tz_localtime(t, zone) or error("time zone " .. zone .. " is gone", 2)
  local starts = {}
  for k = from, to do
    if self.days[(lt.wday - 1 + k) % 7 + 1] then
      starts[#starts + 1] = core.tz_mktime({ year = lt.year, month = lt.month,
        day = lt.day + k, hour = self.hour, min = self.min, sec = self.sec }, zone)
    end
  end
  return starts
end

--- Whether t is in an occurrence, and the next time that changes.
function Every:span(t)
  local dur = self.duration
  local back = math.floor(dur / DAY) + 2 -- far enough for any occurrence still running
  local finish, opens
  for _, s in ipairs(self:starts(t, -back, 7)) do
    if s <= t and t < s + dur then
      finish = math.max(finish or s + dur, s + dur)
    elseif s > t and not opens then
      opens = s
    end
  end
  if not finish then return false, opens end
  -- an occurrence starting at or before the end keeps the window active
  for _ = 1, MAX_JOINED do
    local later = finish
    for _, s in ipairs(self:starts(finish, -back, 0)) do
      if s <= finish and s + dur > later then later = s + dur end
    end
    if later == finish then break end
    finish = later
  end
  return true, finish
end

-- Checks arrive in time order, so the last span answers almost every call
-- without a time-zone conversion.
function Every:at_time(t)
  if self.lo and self.lo <= t and t < self.hi then return self.on, self.hi end
  local on, change = self:span(t)
  self.lo, self.hi, self.on = t, change, on
  return on, change
end

---@param t number Unix time
---@return boolean
function Every:active(t) return (self:at_time(t)) end

--- The first time after t at which active changes.
---@param t number
---@return number
function Every:next_change(t)
  local _, change = self:at_time(t)
  return change
end

local function check_keys(spec, where)
  local unknown = {}
  for k in pairs(spec) do
    if not KNOWN[k] then unknown[#unknown + 1] = k end
  end
  if #unknown == 0 then return end
  table.sort(unknown, function(a, b) return tostring(a) < tostring(b) end)
  local k = unknown[1]
  if type(k) ~= "string" then
    bad("%s: options are named (start = ..., every = ...), got the key %s", where, describe(k))
  end
  local hint = suggest.hint(k, M.KEYS)
  if hint == "" then hint = " (options: " .. table.concat(M.KEYS, ", ") .. ")" end
  bad("%s: unknown option %s%s", where, quote(k), hint)
end

local function compile_once(spec, where)
  if spec.zone ~= nil then
    bad("%s: zone is for recurring windows (every, at); a one-off window's start and end "
      .. "carry their offset, as in \"2026-12-24T22:00:00+01:00\"", where)
  end
  local w = setmetatable({ kind = "once" }, Once)
  w.start = parse_time(spec.start, where .. ".start")
  if spec["end"] ~= nil and spec.duration ~= nil then
    bad("%s: give end or duration, not both", where)
  elseif spec["end"] ~= nil then
    w.finish = parse_time(spec["end"], where .. ".end")
    if w.finish <= w.start then
      bad("%s.end: %s is not after start %s", where, shown(spec["end"]), shown(spec.start))
    end
  elseif spec.duration ~= nil then
    w.finish = w.start + parse_duration(spec.duration, where .. ".duration")
  else
    bad("%s: a one-off window needs end or duration", where)
  end
  return w
end

local function compile_every(spec, where)
  for _, k in ipairs{ "start", "end" } do
    if spec[k] ~= nil then
      bad("%s: %s is for one-off windows; a recurring one has every, at and duration", where, k)
    end
  end
  for _, k in ipairs{ "every", "at", "duration" } do
    if spec[k] == nil then
      bad("%s.%s: missing (a recurring window needs every, at and duration)", where, k)
    end
  end
  local w = setmetatable({ kind = "every" }, Every)
  local gap
  w.days, gap = parse_every(spec.every, where .. ".every")
  w.hour, w.min, w.sec = parse_at(spec.at, where .. ".at")
  w.duration = parse_duration(spec.duration, where .. ".duration")
  if w.duration >= gap * DAY then
    bad("%s.duration: must be shorter than %dd, the longest gap between its days, or the "
      .. "window never ends, got %s", where, gap, describe(spec.duration))
  end
  w.zone = spec.zone == nil and "UTC" or parse_zone(spec.zone, where .. ".zone")
  return w
end

--- Compiles one window spec; `where` (default "maintenance") names it in
--- messages and is its name when it has none.
---@param spec table
---@param where string?
---@return moonwatch.MaintenanceWindow|nil, string?
function M.compile(spec, where)
  where = where or "maintenance"
  local ok, w = pcall(function()
    if type(spec) ~= "table" then bad("%s: expected a table, got %s", where, describe(spec)) end
    check_keys(spec, where)
    local w
    if spec.every ~= nil or spec.at ~= nil then
      w = compile_every(spec, where)
    elseif spec.start ~= nil then
      w = compile_once(spec, where)
    else
      bad("%s: needs start (a one-off window) or every and at (a recurring one)", where)
    end
    if spec.name ~= nil and (type(spec.name) ~= "string" or spec.name == "") then
      bad("%s.name: expected a non-empty string, got %s", where, describe(spec.name))
    end
    w.name = spec.name or where
    if spec.monitors ~= nil then
      w.monitors, w.for_monitors = parse_monitors(spec.monitors, where .. ".monitors")
    end
    return w
  end)
  if ok then return w end
  if getmetatable(w) == Bad then return nil, w.msg end
  error(w, 0)
end

---@class moonwatch.MaintenanceSet
---@field windows moonwatch.MaintenanceWindow[]
local Set = {}
Set.__index = Set

--- The first window, in the order given, holding `monitor`'s alerts at t.
---@param monitor string
---@param t number
---@return moonwatch.MaintenanceWindow?
function Set:in_maintenance(monitor, t)
  for _, w in ipairs(self.windows) do
    if w:applies(monitor) and w:active(t) then return w end
  end
  return nil
end

--- The first time after t at which some window (of `monitor` when given)
--- opens or closes, or nil when none ever does again.
---@param t number
---@param monitor string?
---@return number?
function Set:next_change(t, monitor)
  local first
  for _, w in ipairs(self.windows) do
    if monitor == nil or w:applies(monitor) then
      local c = w:next_change(t)
      if c and (not first or c < first) then first = c end
    end
  end
  return first
end

--- Compiles a list of window specs (`where[1]`, ...) or a table of them by
--- name (`where.xmas`; the key is the name unless the spec has one).
--- `known_monitors`, a list of names, when given, makes a window naming
--- another monitor an error.
---@param specs table?
---@param where string?
---@param known_monitors string[]?
---@return moonwatch.MaintenanceSet|nil, string?
function M.Set(specs, where, known_monitors)
  where = where or "maintenance"
  if specs == nil then specs = {} end
  if type(specs) ~= "table" then
    return nil, format("%s: expected a list of windows, got %s", where, describe(specs))
  end
  local entries, named = {}, {}
  for k in pairs(specs) do
    if type(k) == "string" then
      named[#named + 1] = k
    elseif math.type(k) ~= "integer" or k < 1 or k > #specs then
      return nil, format("%s: expected a list of windows or windows by name, got the key %s",
        where, describe(k))
    end
  end
  table.sort(named)
  for i, spec in ipairs(specs) do entries[#entries + 1] = { spec, format("%s[%d]", where, i) } end
  for _, k in ipairs(named) do entries[#entries + 1] = { specs[k], where .. "." .. k, k } end
  local known
  if known_monitors then
    known = {}
    for _, name in ipairs(known_monitors) do known[name] = true end
  end
  local windows, by_name = {}, {}
  for _, e in ipairs(entries) do
    local spec, at, key = e[1], e[2], e[3]
    local w, err = M.compile(spec, at)
    if not w then return nil, err end
    if key and spec.name == nil then w.name = key end
    if by_name[w.name] then
      return nil, format("%s: the name %s is taken by %s", at, quote(w.name), by_name[w.name])
    end
    by_name[w.name] = at
    for i, m in ipairs(w.monitors or {}) do
      if known and not known[m] then
        return nil, format("%s.monitors[%d]: no monitor is named %s%s", at, i, quote(m),
          suggest.hint(m, known_monitors))
      end
    end
    windows[#windows + 1] = w
  end
  return setmetatable({ windows = windows }, Set)
end

return M
