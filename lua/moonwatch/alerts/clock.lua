--- The clock of the alerts: the time, timers and sleeping, in one object so
--- a spec replaces all three and runs an incident of hours in no time.
---
---     clock:now()              --> Unix time (seconds, fractional)
---     clock:sleep(s)           -- from a task: waits s seconds
---     local t = clock:after(s, fn)   -- runs fn (in a task of its own) in s seconds
---     t:cancel()
---
--- `real()` is the loop's (core.time, core.sleep, a task per timer);
--- `manual(t0)` moves only when told: `advance(s)` runs the timers that
--- come due, in time order, and `sleep(s)` advances (a delivery's backoff in
--- a spec takes no time).
local M = {}

local Real = {}
Real.__index = Real

local Timer = {}
Timer.__index = Timer
function Timer:cancel()
  if self.task and not self.fired then self.task:cancel() end
  self.cancelled = true
end

--- The loop's clock.
function M.real()
  return setmetatable({ core = require("moonwatch.core") }, Real)
end

function Real:now() return self.core.time() end
function Real:sleep(s) self.core.sleep(s) end
function Real:after(s, fn)
  local t = setmetatable({}, Timer)
  local core = self.core
  t.task = core.spawn(function()
    core.sleep(math.max(s, 0))
    t.fired = true
    fn()
  end)
  return t
end

local Manual = {}
Manual.__index = Manual

local ManualTimer = {}
ManualTimer.__index = ManualTimer
function ManualTimer:cancel() self.cancelled = true end

--- A clock that moves only when told, from t0 (default 1e9, a Unix time).
---@param t0 number?
function M.manual(t0)
  return setmetatable({ t = t0 or 1000000000, timers = {}, slept = {} }, Manual)
end

function Manual:now() return self.t end

function Manual:after(s, fn)
  local t = setmetatable({ at = self.t + math.max(s, 0), fn = fn }, ManualTimer)
  self.timers[#self.timers + 1] = t
  return t
end

--- Moves the time on by s seconds, running the timers that come due on
--- the way, each at its own time.
function Manual:advance(s)
  local target = self.t + s
  while true do
    local best, bi
    for i, t in ipairs(self.timers) do
      if not t.cancelled and t.at <= target and (not best or t.at < best.at) then
        best, bi = t, i
      end
    end
    if not best then break end
    table.remove(self.timers, bi)
    if best.at > self.t then self.t = best.at end
    best.fn()
  end
  self.t = target
end

--- In a spec, a sleep (a backoff) is recorded and takes no time; from a
--- task, the others run first (a plain yield), as they would meanwhile.
function Manual:sleep(s)
  self.slept[#self.slept + 1] = s
  if coroutine.isyieldable() then coroutine.yield() end
  self:advance(s)
end

--- Whether x looks like a clock.
function M.is_clock(x)
  return type(x) == "table" and type(x.now) == "function" and type(x.after) == "function"
    and type(x.sleep) == "function"
end

return M
