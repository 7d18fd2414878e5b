--- The Dispatcher of monitors.lua: runs every monitor at its interval until
--- SIGTERM or SIGINT, on the core's fixed-rate scheduler.
---
---     c.dispatcher = providers.Factory(mw.Dispatcher,
---       { monitors = providers.List(c.example_monitor, c.httpbin_monitor) })
---     container.dispatcher():run()
local core = require("moonwatch.core")
local log = require("moonwatch.log")

---@class moonwatch.Dispatcher
---@field monitors moonwatch.Monitor[]
---@field logger moonwatch.Logger
local Dispatcher = {}
Dispatcher.__index = Dispatcher

--- kwargs: monitors, and optionally spread (spread the first checks over
--- the interval) and cpu_budget (seconds of CPU a check may run Lua without
--- waiting, for monitors that set none; default core.cpu_budget(), 1 s).
---@param kwargs {monitors: moonwatch.Monitor[], spread?: boolean, cpu_budget?: number}
---@return moonwatch.Dispatcher
function Dispatcher.new(kwargs)
  if type(kwargs) ~= "table" or type(kwargs.monitors) ~= "table" then
    error("monitors must be a list of monitors", 0)
  end
  local budget = kwargs.cpu_budget
  if budget ~= nil and (type(budget) ~= "number" or budget < 0) then
    error("cpu_budget must be a number of seconds, got " .. tostring(budget), 0)
  end
  local self = setmetatable({
    monitors = kwargs.monitors,
    logger = log.get("Dispatcher"),
    stopping = false,
  }, Dispatcher)
  self.core = core.dispatcher{
    spread = kwargs.spread == true,
    on_error = function(monitor, traceback)
      self.logger:error("Error executing monitor check (%s)\n%s",
        tostring(monitor.name or "?"), log.lines(traceback))
    end,
  }
  for i, m in ipairs(self.monitors) do
    if type(m) ~= "table" and type(m) ~= "userdata" then
      error(string.format("monitors[%d] is a %s, not a monitor", i, type(m)), 0)
    end
    local interval = m.interval
    if type(interval) ~= "number" or interval ~= interval or interval <= 0 then
      error(string.format("monitors[%d] (%s) has no interval greater than 0",
        i, tostring(m.name)), 0)
    end
    self.core:add(m, { interval = interval, name = m.name and tostring(m.name) or nil,
                       cpu_budget = m.cpu_budget or budget })
  end
  return self
end

--- Starts the schedule on the loop; returns at once.
function Dispatcher:start()
  self.logger:info("Starting up")
  self.stopping = false
  self.core:start()
  self.started_at = core.now()
end

--- Cancels every running check and stops the schedule; the loop then ends.
function Dispatcher:stop()
  if self.stopping then return end
  self.stopping = true
  self.logger:info("Shutting down")
  self.core:stop()
  self.logger:info("Shutdown finished successfully")
end

--- Counters of the schedule (scheduled, run, skipped, failed, lateness...).
function Dispatcher:stats() return self.core:stats() end

--- What the daemon does on a signal: SIGTERM and SIGINT stop it (a second
--- one exits at once, in C); SIGUSR1 reopens the log file (logrotate);
--- SIGHUP is logged and ignored until reload exists.
function Dispatcher:on_signal(name)
  if name == "SIGUSR1" then
    local ok, err = log.reopen()
    if ok then
      self.logger:info("SIGUSR1: log file reopened")
    else
      self.logger:warning("SIGUSR1: log file not reopened: %s", tostring(err))
    end
  elseif name == "SIGHUP" then
    self.logger:warning("SIGHUP received and ignored: reloading the configuration is not "
      .. "supported yet (restart to apply changes)")
  elseif name == "SIGUSR2" then
    self.logger:warning("SIGUSR2 received and ignored: it has no meaning for moonwatch")
  else
    self:stop()
  end
end

--- Runs until SIGTERM or SIGINT (or until `stop`); with no monitors it
--- stops at once.
function Dispatcher:run()
  self:start()
  if #self.monitors == 0 then
    self:stop()
    return
  end
  core.on_signal(function(name) self:on_signal(name) end)
  core.run()
  core.on_signal(nil)
end

return setmetatable(Dispatcher, { __call = function(_, kwargs) return Dispatcher.new(kwargs) end })
