--- The Dispatcher of monitors.lua: runs every monitor at its interval until
--- SIGTERM or SIGINT, on the core's fixed-rate scheduler, and hands each
--- check's result to the result consumers.
---
---     c.state = providers.Singleton(mw.State)
---     c.dispatcher = providers.Factory(mw.Dispatcher, {
---       monitors = providers.List(c.example_monitor, c.httpbin_monitor),
---       consumers = providers.List(c.state),
---     })
---     container.dispatcher():run()
---
--- A consumer is any object with `on_result(self, monitor, result)` (see
--- moonwatch.result for results) and optionally `on_monitor(self, monitor,
--- name)`, called once per monitor here (and for each one a reload adds or
--- changes), `on_dispatcher(self, dispatcher)`, called once after them
--- (metrics read the schedule), `on_remove(self, monitor, name, why)`, called
--- when a reload removes a monitor (why "removed") or replaces it by one of
--- another class (why "replaced", then on_monitor for the new one),
--- `on_start(self, dispatcher)`, called when the schedule starts (the
--- daemon runs, not `--once`: an HTTP endpoint listens then; an error in it
--- stops the start), and `on_stop(self)`, called when the Dispatcher stops.
--- One without on_result (alerts, which hear the State's changes) is not
--- called per result. Consumers run in the
--- order given, right after each check; one that raises is logged and the
--- others still run.
--- Without `consumers`, the Dispatcher keeps a State of its own.
local core = require("moonwatch.core")
local log = require("moonwatch.log")
local result = require("moonwatch.result")
local State = require("moonwatch.state")

---@class moonwatch.Dispatcher
---@field monitors moonwatch.Monitor[]
---@field consumers table[]
---@field state moonwatch.State? the first consumer that is a State
---@field logger moonwatch.Logger
local Dispatcher = {}
Dispatcher.__index = Dispatcher

local now, time = core.now, core.time

--- Completes a result (monitor, duration, at) and hands it to every consumer.
local function complete(self, monitor, name, r, started)
  if r.monitor == nil then r.monitor = name end
  if r.duration == nil then r.duration = now() - started end
  if r.at == nil then r.at = time() end
  local consumers = self.consumers
  for i = 1, #consumers do
    local c = consumers[i]
    local ok, err = pcall(c.on_result, c, monitor, r)
    if not ok then
      self.logger:error("result consumer %d failed on a result of %s: %s", i,
        tostring(r.monitor), tostring(err))
    end
  end
  return r
end

--- What the core's scheduler runs for one monitor: its check, then the
--- consumers. `monitor:check` is looked up at each tick, so a spy or stub
--- put in place later is the one called. A check that raises reaches the
--- core's on_error (below), which makes its down result.
local Check = {}
Check.__index = Check

-- A check's returns as a result; a result (the common case) as it is.
local function result_of(...)
  local r = ...
  if type(r) == "table" and type(r.up) == "boolean" then return r end
  return result.of(...) -- nothing returned stays nothing: up
end

function Check:check()
  local m, started = self.monitor, now()
  local r = complete(self.dispatcher, m, self.name, result_of(m:check()), started)
  return r.up
end

local function is_callable(f)
  if type(f) == "function" then return true end
  local mt = getmetatable(f)
  return mt ~= nil and type(mt) == "table" and mt.__call ~= nil
end

-- The name of monitors[i] (its own, else "monitors[i]"), or nil, what is
-- wrong with it.
local function validate(m, i)
  if type(m) ~= "table" and type(m) ~= "userdata" then
    return nil, string.format("monitors[%d] is a %s, not a monitor", i, type(m))
  end
  local name = m.name ~= nil and tostring(m.name) or string.format("monitors[%d]", i)
  local interval = m.interval
  if type(interval) ~= "number" or interval ~= interval or interval <= 0 then
    return nil, string.format("monitors[%d] (%s) has no interval greater than 0", i, name)
  end
  if not is_callable(m.check) then
    return nil, string.format("monitors[%d] (%s) has no check method", i, name)
  end
  return name
end

-- Puts a check on the core's schedule; its id is the core's.
local function schedule(self, check)
  local m = check.monitor
  check.id = self.core:add(check, { interval = m.interval, name = check.name,
                                    cpu_budget = m.cpu_budget or self.cpu_budget })
end

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
  local consumers = kwargs.consumers
  if consumers ~= nil and type(consumers) ~= "table" then
    error("consumers must be a list of result consumers, got " .. type(consumers), 0)
  end
  if consumers == nil then consumers = { State.new() } end
  local per_result = {}
  for i, c in ipairs(consumers) do
    local object = type(c) == "table" or type(c) == "userdata"
    if not object or not (is_callable(c.on_result) or is_callable(c.on_monitor)
                          or is_callable(c.on_stop) or is_callable(c.on_start)) then
      error(string.format("consumers[%d] has no on_result method (a result consumer "
        .. "is an object with on_result(self, monitor, result))", i), 0)
    end
    if is_callable(c.on_result) then per_result[#per_result + 1] = c end
  end
  local self = setmetatable({
    monitors = kwargs.monitors,
    consumers = per_result,
    all_consumers = consumers,
    logger = log.get("Dispatcher"),
    stopping = false,
    checks = {},
  }, Dispatcher)
  for _, c in ipairs(consumers) do
    if State.is_state(c) then
      self.state = c
      break
    end
  end
  self.core = core.dispatcher{
    spread = kwargs.spread == true,
    on_error = function(check, traceback, err)
      self:raised(check.monitor, check.name, traceback, err)
    end,
  }
  self.cpu_budget = budget
  for i, m in ipairs(self.monitors) do
    local name, err = validate(m, i)
    if not name then error(err, 0) end
    local check = setmetatable({ monitor = m, dispatcher = self, name = name }, Check)
    self.checks[i] = check
    schedule(self, check)
  end
  for _, c in ipairs(consumers) do
    if is_callable(c.on_monitor) then
      for _, check in ipairs(self.checks) do c:on_monitor(check.monitor, check.name) end
    end
    if is_callable(c.on_dispatcher) then c:on_dispatcher(self) end
  end
  return self
end

--- Adds a result consumer once the Dispatcher is built (an HTTP endpoint
--- that needs the Dispatcher itself): the same as listing it in
--- `consumers`, its on_monitor called for every monitor now.
---@param consumer table
function Dispatcher:add_consumer(consumer)
  local object = type(consumer) == "table" or type(consumer) == "userdata"
  if not object or not (is_callable(consumer.on_result) or is_callable(consumer.on_monitor)
                        or is_callable(consumer.on_stop)) then
    error("add_consumer: a result consumer is an object with on_result(self, monitor, "
      .. "result)", 2)
  end
  if is_callable(consumer.on_result) then self.consumers[#self.consumers + 1] = consumer end
  self.all_consumers[#self.all_consumers + 1] = consumer
  if is_callable(consumer.on_monitor) then
    for _, check in ipairs(self.checks) do consumer:on_monitor(check.monitor, check.name) end
  end
end

--- Whether the schedule runs: started, and not stopping.
---@return boolean
function Dispatcher:running()
  return self.started_at ~= nil and not self.stopping
end

--- Each monitor's name, interval and the Unix time of its next check (nil
--- when none is scheduled: stopped, or its check runs past its tick), in
--- monitor order.
---@return {name: string, interval: number, next_check: number?}[]
function Dispatcher:schedule()
  local out, wall = {}, time()
  for i, check in ipairs(self.checks) do
    local left = self.started_at and not self.stopping and self.core:next_due(check.id)
    out[i] = { name = check.name, interval = check.monitor.interval,
               next_check = left and wall + left or nil }
  end
  return out
end

-- Calls consumers' method (on_monitor, on_remove) with the arguments; one
-- that raises is logged and the others still run.
local function tell(self, method, ...)
  for i, c in ipairs(self.all_consumers) do
    local f = c[method]
    if is_callable(f) then
      local ok, err = pcall(f, c, ...)
      if not ok then
        self.logger:error("%s of consumer %d failed: %s", method, i, tostring(err))
      end
    end
  end
end

-- Whether two monitors are checks of one kind: the same class, or classes
-- of one name (a class declared in monitors.lua is a new table each time
-- the file is evaluated).
local function same_kind(a, b)
  local ma, mb = getmetatable(a), getmetatable(b)
  if ma == mb then return true end
  local na = type(ma) == "table" and rawget(ma, "__name")
  return type(na) == "string" and type(mb) == "table" and rawget(mb, "__name") == na
end

-- Whether a reload may keep old running in new's place: the same class, and
-- a same_config (that class's) finding them alike. A monitor without one
-- cannot be compared: it restarts.
local function unchanged(old, new)
  if old == new then return true end
  local mt = getmetatable(old)
  if mt == nil or mt ~= getmetatable(new) or not is_callable(old.same_config) then
    return false
  end
  local ok, same = pcall(old.same_config, old, new)
  return ok and same == true
end

--- Runs `monitors` from now on in place of the current ones, matched by
--- name (a reload): a monitor whose same_config finds its new one alike
--- keeps running as it is (its object, schedule and connections; the new
--- object is dropped); a changed one is replaced, its running check
--- cancelled and its schedule restarted (at once, or at its spread offset),
--- with its state kept when the new one is of the same class, or one of the
--- same name (consumers
--- hear on_monitor), forgotten otherwise (on_remove "replaced", then
--- on_monitor); a removed one stops, its running check cancelled, no result
--- of it after (on_remove "removed"); a new one starts as a changed one
--- does (on_monitor). Nothing changes when the new list is wrong (empty, not
--- a monitor, no interval, no check, two of one name): returns nil, message.
--- Otherwise returns counts { added, changed, removed, unchanged }.
---@param monitors moonwatch.Monitor[]
---@return {added: integer, changed: integer, removed: integer, unchanged: integer}?, string?
function Dispatcher:reload(monitors)
  if type(monitors) ~= "table" then
    return nil, "monitors must be a list of monitors, got " .. type(monitors)
  end
  if #monitors == 0 then
    -- the loop would end with nothing to run: the daemon would exit
    return nil, "no monitors to run (the running ones are kept; stop the daemon to run none)"
  end
  local plan, index_of = {}, {}
  for i, m in ipairs(monitors) do
    local name, err = validate(m, i)
    if not name then return nil, err end
    if index_of[name] then
      return nil, string.format("monitors[%d] and monitors[%d] are both named '%s' (a reload "
        .. "matches monitors by name: give each its own)", index_of[name], i, name)
    end
    index_of[name] = i
    plan[i] = { monitor = m, name = name }
  end
  local old = {}
  for _, check in ipairs(self.checks) do
    if old[check.name] == nil then old[check.name] = check end
  end
  local kept, counts = {}, { added = 0, changed = 0, removed = 0, unchanged = 0 }
  for _, p in ipairs(plan) do
    local o = old[p.name]
    if o and unchanged(o.monitor, p.monitor) then
      p.check, kept[o] = o, true
      counts.unchanged = counts.unchanged + 1
    else
      p.old = o
      p.check = setmetatable({ monitor = p.monitor, dispatcher = self, name = p.name }, Check)
    end
  end
  -- New checks first: one the core refuses (a bad cpu_budget) undoes the
  -- others, and the running set is as it was.
  local added = {}
  for _, p in ipairs(plan) do
    if not p.check.id then
      local ok, err = pcall(schedule, self, p.check)
      if not ok then
        for _, check in ipairs(added) do self.core:remove(check.id) end
        return nil, tostring(err)
      end
      added[#added + 1] = p.check
    end
  end
  local replaced = {}
  for _, p in ipairs(plan) do
    if p.old then replaced[p.old] = p end
  end
  for _, check in ipairs(self.checks) do
    if not kept[check] then
      self.core:remove(check.id)
      local p = replaced[check]
      if not p then
        counts.removed = counts.removed + 1
        tell(self, "on_remove", check.monitor, check.name, "removed")
      elseif not same_kind(check.monitor, p.monitor) then
        tell(self, "on_remove", check.monitor, check.name, "replaced")
      end
    end
  end
  local checks, list = {}, {}
  for i, p in ipairs(plan) do
    checks[i], list[i] = p.check, p.check.monitor
    if not kept[p.check] then
      if p.old then counts.changed = counts.changed + 1 else counts.added = counts.added + 1 end
      tell(self, "on_monitor", p.check.monitor, p.name)
    end
  end
  self.checks, self.monitors = checks, list
  return counts
end

--- A check raised (or ran out of CPU): logged with its traceback, and a
--- down result "error: <message>" goes to the consumers.
---@return table result
function Dispatcher:raised(monitor, name, traceback, err)
  self.logger:error_with({ monitor = name }, "Error executing monitor check (%s)\n%s", name,
    log.lines(traceback))
  local msg = err
  if type(msg) ~= "string" then msg = traceback end
  return complete(self, monitor, name, result.of_error(msg), now())
end

--- Runs every monitor's check once, at once, and waits for them all (the
--- `--once` of the command). Returns their results, in monitor order.
---@return table[]
function Dispatcher:check_once()
  local tasks, started = {}, now()
  for i, check in ipairs(self.checks) do
    local m = check.monitor
    tasks[i] = core.spawn(function() return result.of(m:check()) end)
  end
  core.run()
  local results = {}
  local counts = { run = #tasks, down = 0, failed = 0 }
  for i, t in ipairs(tasks) do
    local m, name = self.checks[i].monitor, self.checks[i].name
    local ok, r, err = t:result()
    if ok then
      r = complete(self, m, name, r, started)
      if not r.up then counts.down = counts.down + 1 end
    else
      counts.failed = counts.failed + 1
      r = self:raised(m, name, r, err)
    end
    results[i] = r
  end
  self.once_counts = counts
  return results
end

--- Starts the schedule on the loop; returns at once.
function Dispatcher:start()
  self.logger:info("Starting up")
  self.stopping = false
  for _, c in ipairs(self.all_consumers) do
    if is_callable(c.on_start) then c:on_start(self) end
  end
  self.core:start()
  self.started_at = core.now()
end

--- Cancels every running check and stops the schedule; the loop then ends.
function Dispatcher:stop()
  if self.stopping then return end
  self.stopping = true
  self.logger:info("Shutting down")
  self.core:stop()
  for _, c in ipairs(self.all_consumers) do
    if is_callable(c.on_stop) then
      local ok, err = pcall(c.on_stop, c)
      if not ok then self.logger:error("on_stop of a consumer failed: %s", tostring(err)) end
    end
  end
  self.logger:info("Shutdown finished successfully")
end

--- Counters of the schedule (scheduled, run, skipped, failed, lateness...);
--- after check_once, its checks' counts.
function Dispatcher:stats()
  local st = self.core:stats()
  local once = self.once_counts
  if once then
    st.scheduled, st.run, st.down, st.failed = once.run, once.run, once.down, once.failed
  end
  return st
end

--- What the daemon does on a signal: SIGTERM and SIGINT stop it (a second
--- one exits at once, in C); SIGUSR1 reopens the log file (logrotate);
--- SIGHUP calls `self.on_hup` (the daemon's reload, moonwatch.daemon), and is
--- logged and ignored when there is none.
function Dispatcher:on_signal(name)
  if name == "SIGUSR1" then
    local ok, err = log.reopen()
    if ok then
      self.logger:info("SIGUSR1: log file reopened")
    else
      self.logger:warning("SIGUSR1: log file not reopened: %s", tostring(err))
    end
  elseif name == "SIGHUP" and self.on_hup then
    self.on_hup()
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

Dispatcher.Check = Check

return setmetatable(Dispatcher, { __call = function(_, kwargs) return Dispatcher.new(kwargs) end })
