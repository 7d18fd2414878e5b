--- The state of each monitor, judged from its results: PENDING (no
--- judgement yet), UP or DOWN, with the time of the last change, the number
--- of consecutive results alike, and the last reason.
---
---     c.state = providers.Singleton(mw.State)
---     c.dispatcher = providers.Factory(mw.Dispatcher,
---       { monitors = ..., consumers = providers.List(c.state) })
---     c.state():get("example").state  --> "UP"
---
--- A monitor goes DOWN after `failure_threshold` down results in a row and
--- UP again after `success_threshold` up results in a row (the monitor's own
--- settings, checked when the monitor is built, else the State's, else 1
--- and 1). From PENDING the first up
--- result makes it UP; down results count towards DOWN as they would from
--- UP. Each change to DOWN, and back to UP, is logged once, by the logger
--- "State"; the first UP after PENDING is not.
---
--- It is a result consumer: anything with `on_result(self, monitor, result)`
--- (and optionally `on_monitor(self, monitor, name)`, called once per monitor when
--- the Dispatcher is built or a reload adds it, and `on_remove(self, monitor,
--- name, why)` when a reload removes it) can be listed in the Dispatcher's `consumers`
--- instead, or beside it (a spec's recorder, later alerts and metrics).
---
--- Listeners of changes (`state:on_change(listener)`) hear each change once:
--- PENDING to UP or DOWN, UP to DOWN, DOWN to UP, as
--- `listener:on_change(entry, from, to, result, monitor)` (or a function
--- called with those). A result that changes nothing calls none of them.
local core = require("moonwatch.core")
local log = require("moonwatch.log")

local M = {}

M.FAILURE_THRESHOLD = 1
M.SUCCESS_THRESHOLD = 1

---@class moonwatch.MonitorState
---@field name string
---@field state "PENDING"|"UP"|"DOWN"
---@field since number   Unix time of the last change (of the first result while PENDING)
---@field consecutive integer  results in a row alike (up or down), the last included
---@field reason string? the last down result's reason
---@field up boolean?     whether the last result was up (nil before the first)
---@field at number?      Unix time of the last result
---@field checks integer results so far

---@class moonwatch.State
local State = {}
State.__index = State

local function threshold(value, default, what)
  if value == nil then return default end
  if math.type(value) ~= "integer" or value < 1 then
    error(string.format("%s must be an integer of at least 1, got %s", what, tostring(value)), 0)
  end
  return value
end

--- kwargs: failure_threshold, success_threshold (defaults for every
--- monitor), clock (a function returning Unix time; core.time).
---@param kwargs {failure_threshold?: integer, success_threshold?: integer, clock?: fun(): number}?
---@return moonwatch.State
function M.new(kwargs)
  kwargs = kwargs or {}
  if type(kwargs) ~= "table" then error("State: expected a table of options", 0) end
  return setmetatable({
    failure_threshold = threshold(kwargs.failure_threshold, M.FAILURE_THRESHOLD,
      "failure_threshold"),
    success_threshold = threshold(kwargs.success_threshold, M.SUCCESS_THRESHOLD,
      "success_threshold"),
    clock = kwargs.clock or core.time,
    logger = log.get("State"),
    by_name = {},
    order = {},
    listeners = {},
  }, State)
end

--- "45s", "2m13s", "3h05m", "2d04h".
---@param s number seconds
---@return string
function M.duration(s)
  if s < 10 then return string.format("%.1fs", s) end
  s = math.floor(s + 0.5)
  if s < 60 then return s .. "s" end
  if s < 3600 then return string.format("%dm%02ds", s // 60, s % 60) end
  if s < 86400 then return string.format("%dh%02dm", s // 3600, s % 3600 // 60) end
  return string.format("%dd%02dh", s // 86400, s % 86400 // 3600)
end

local function name_of(monitor, result)
  return tostring(result.monitor or monitor.name or "?")
end

-- An entry has 8 fields (reason, up and at come with the first result):
-- Lua gives such a table 8 slots, and there is one per monitor.
local function entry_for(self, name, now)
  local e = self.by_name[name]
  if not e then
    e = { name = name, state = "PENDING", since = now, consecutive = 0, checks = 0 }
    self.by_name[name] = e
    self.order[#self.order + 1] = name
  end
  return e
end

local function plural(n, one, many) return n == 1 and one or many end

--- Whether x is a State.
function M.is_state(x) return getmetatable(x) == State end

--- Adds a listener of changes: a function or an object with
--- `on_change(self, entry, from, to, result, monitor)`.
---@param listener table|function
function State:on_change(listener)
  local t = type(listener)
  if t ~= "function" and not ((t == "table" or t == "userdata") and listener.on_change) then
    error("on_change: expected a function or an object with on_change, got " .. t, 2)
  end
  self.listeners[#self.listeners + 1] = listener
end

--- Removes a listener added by on_change; true when it was there.
---@param listener table|function
---@return boolean
function State:off_change(listener)
  for i, l in ipairs(self.listeners) do
    if l == listener then
      table.remove(self.listeners, i)
      return true
    end
  end
  return false
end

-- Runs only on a change, so a result that changes nothing pays nothing; a
-- listener that raises is logged and the others still run.
local function changed(self, e, from, to, result, monitor)
  local listeners = self.listeners
  for i = 1, #listeners do
    local l = listeners[i]
    local ok, err
    if type(l) == "function" then
      ok, err = pcall(l, e, from, to, result, monitor)
    else
      ok, err = pcall(l.on_change, l, e, from, to, result, monitor)
    end
    if not ok then
      self.logger:error("change listener %d failed on %s going %s: %s", i, e.name, to,
        tostring(err))
    end
  end
end

--- Registers a monitor before its first result: it is PENDING.
---@param monitor table
function State:on_monitor(monitor, name)
  entry_for(self, tostring(name or monitor.name or "?"), self.clock())
end

--- A monitor left the configuration (a reload): its state is forgotten. A
--- monitor of the same name added later starts PENDING.
---@param monitor table
---@param name string?
function State:on_remove(monitor, name)
  name = tostring(name or monitor.name or "?")
  if not self.by_name[name] then return end
  self.by_name[name] = nil
  for i, n in ipairs(self.order) do
    if n == name then
      table.remove(self.order, i)
      break
    end
  end
end

--- Takes one result of `monitor`; returns its state entry.
---@param monitor table
---@param result table
---@return moonwatch.MonitorState
function State:on_result(monitor, result)
  local now = result.at or self.clock()
  local name = result.monitor
  local e = type(name) == "string" and self.by_name[name]
    or entry_for(self, name_of(monitor, result), now)
  local up = result.up == true
  if e.up == up then
    e.consecutive = e.consecutive + 1
  else
    e.consecutive = 1
  end
  e.checks = e.checks + 1
  -- Facts, not the result: a result kept for a whole interval outlives the
  -- young generation, and 10,000 of them made every collection a major one.
  e.up, e.at = up, now
  -- The thresholds are looked up only when the state may change.
  local state = e.state
  if up then
    if state == "PENDING" then -- a monitor that starts well is no news
      e.state, e.since, e.reason = "UP", now, nil
      if self.listeners[1] then changed(self, e, "PENDING", "UP", result, monitor) end
    elseif state == "DOWN"
      and e.consecutive >= (monitor.success_threshold or self.success_threshold) then
      local was = now - e.since
      e.state, e.since = "UP", now
      self.logger:info_with({ monitor = e.name, state = "UP", down_for = was },
        "%s is UP again after %s down", e.name, M.duration(was))
      changed(self, e, "DOWN", "UP", result, monitor)
    end
  else
    e.reason = result.reason
    if state ~= "DOWN"
      and e.consecutive >= (monitor.failure_threshold or self.failure_threshold) then
      e.state, e.since = "DOWN", now
      local reason = tostring(result.reason)
      self.logger:warning_with({ monitor = e.name, state = "DOWN", reason = reason,
                                 consecutive = e.consecutive },
        "%s is DOWN after %d failed %s: %s", e.name, e.consecutive,
        plural(e.consecutive, "check", "checks"), reason)
      changed(self, e, state, "DOWN", result, monitor)
    end
  end
  return e
end

--- The state of one monitor, or nil before its first result.
---@param name string
---@return moonwatch.MonitorState?
function State:get(name) return self.by_name[name] end

--- Every monitor's state, in the order of their first results.
---@return moonwatch.MonitorState[]
function State:all()
  local out = {}
  for i, name in ipairs(self.order) do out[i] = self.by_name[name] end
  return out
end

return setmetatable(M, { __call = function(_, kwargs) return M.new(kwargs) end })
