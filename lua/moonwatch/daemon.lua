--- The running daemon: its Dispatcher, and the reload of its configuration
--- (SIGHUP, or `daemon:reload()` from elsewhere, e.g. an HTTP endpoint).
---
--- A reload evaluates the monitors file again, as at start-up (the same
--- path and --set arguments; the environment and the files the config reads
--- are read again), and hands the dispatcher's new monitors to
--- Dispatcher:reload, which matches them by name with the running ones. Only
--- the monitors are taken from the new file: the consumers (State, alerts,
--- their notifiers and store), the log settings and the other resources
--- stay the ones from start-up. A Resource of the new file that a start-up
--- resource of the same name exists for is that one (not initialised again).
--- A file that fails to load, or monitors that fail to build, change
--- nothing: the error is logged and returned.
---
---     local d = Daemon.new{ path = "monitors.lua", sets = {}, container = c,
---                           dispatcher = c.dispatcher() }
---     d:on_reload(function(status) ... end)
---     d:run()                       -- until SIGTERM; SIGHUP reloads
---     local ok, err = d:reload()    -- true, counts | nil, message
local core = require("moonwatch.core")
local log = require("moonwatch.log")
local providers = require("moonwatch.providers")
local provider_core = require("moonwatch.providers.core")

local M = {}

---@class moonwatch.ReloadStatus
---@field ok boolean          whether the last attempt (or the start-up) succeeded
---@field success_at number   Unix time of the last success (the start-up at first)
---@field attempt_at number?  Unix time of the last attempt (nil before the first)
---@field error string?       the last attempt's message when it failed
---@field reloads integer     attempts that succeeded
---@field failures integer    attempts that failed
---@field counts table?       the last success's {added, changed, removed, unchanged}

---@class moonwatch.Daemon
---@field dispatcher moonwatch.Dispatcher
local Daemon = {}
Daemon.__index = Daemon

local current

--- The daemon that runs now (between run's start and its end), or nil: for
--- an HTTP endpoint or a metric to find the reload and its status.
---@return moonwatch.Daemon?
function M.current() return current end

--- kwargs: path (the monitors file), sets (the --set strings), container
--- (the start-up instance, resources initialised), dispatcher (built from
--- it: a moonwatch.Dispatcher).
---@param kwargs {path: string, sets?: string[], container: table, dispatcher: moonwatch.Dispatcher}
---@return moonwatch.Daemon
function M.new(kwargs)
  if type(kwargs) ~= "table" or type(kwargs.path) ~= "string" then
    error("Daemon: path must be the monitors file's path", 2)
  end
  local d = kwargs.dispatcher
  if type(d) ~= "table" or type(d.reload) ~= "function" then
    error("Daemon: dispatcher must be a moonwatch.Dispatcher (with reload)", 2)
  end
  return setmetatable({
    path = kwargs.path,
    sets = kwargs.sets or {},
    container = kwargs.container,
    dispatcher = d,
    logger = log.get("Daemon"),
    listeners = {},
    reloaded = {}, -- instances from reloads that initialised resources of their own
    reloading = false,
    status = { ok = true, success_at = core.time(), reloads = 0, failures = 0 },
  }, Daemon)
end

--- Adds a listener of reloads: fn(status), called after every attempt,
--- successful or not, with a copy of the status (see `status`).
---@param fn fun(status: moonwatch.ReloadStatus)
function Daemon:on_reload(fn)
  if type(fn) ~= "function" then
    error("on_reload: expected a function, got " .. type(fn), 2)
  end
  self.listeners[#self.listeners + 1] = fn
end

--- A copy of the reload status.
---@return moonwatch.ReloadStatus
function Daemon:reload_status()
  local out = {}
  for k, v in pairs(self.status) do out[k] = v end
  return out
end

-- The `monitors` keyword argument the dispatcher's provider injects.
local function monitors_provider(c, path)
  local p = c.dispatcher
  local st = provider_core.is_provider(p) and provider_core.state(p)
  local kwargs = type(st) == "table" and st.kwargs
  if type(kwargs) ~= "table" or kwargs.monitors == nil then
    return nil, path .. ": the provider 'dispatcher' must be a Factory or Singleton of "
      .. "mw.Dispatcher with a 'monitors' argument to be reloaded"
  end
  return kwargs.monitors
end

-- Uses the start-up instance's resources in the new one, by name.
local function share_resources(old, c)
  local has = {}
  for _, name in ipairs(old:provider_names()) do has[name] = true end
  for _, name in ipairs(c:provider_names()) do
    if has[name] and providers.kind_of(c[name]) == "Resource"
      and providers.kind_of(old[name]) == "Resource" and old[name]:is_initialized() then
      local r = old[name]()
      c[name]:override(r == nil and providers.Object(nil) or r)
    end
  end
end

local function owns_resources(c)
  for _, name in ipairs(c:provider_names()) do
    local p = c[name]
    if providers.kind_of(p) == "Resource" and not p:is_overridden() and p:is_initialized() then
      return true
    end
  end
  return false
end

-- One attempt: counts, or nil, message.
local function attempt(self)
  local cli = require("moonwatch.cli") -- it requires this module
  local path = self.path
  local def, err = cli.load(path)
  if not def then return nil, err end
  local c, has = cli.instantiate(def, path, self.sets)
  if not c then
    -- an error raised in the file names it already: "f.lua: f.lua:4: x" is "f.lua:4: x"
    local again = path .. ": " .. path .. ":"
    if has:sub(1, #again) == again then has = has:sub(#path + 3) end
    return nil, has
  end
  if not has.dispatcher then return nil, path .. ": no provider named 'dispatcher' to run" end
  local p
  p, err = monitors_provider(c, path)
  if not p then return nil, err end
  if self.container then share_resources(self.container, c) end
  local ok, monitors = pcall(cli.bounded, provider_core.resolve_at, p,
    "dispatcher → monitors") -- the chain start-up errors show
  local counts
  if ok then
    counts, err = self.dispatcher:reload(monitors)
    if not counts then err = path .. ": " .. err end
  else
    err = path .. ": " .. tostring(monitors)
  end
  if not counts or not owns_resources(c) then
    -- what the failed attempt (or the monitors) initialised of its own
    local closed, why = pcall(c.shutdown_resources, c)
    if not closed then self.logger:error("%s: shutting down resources: %s", path, tostring(why)) end
    if not counts then return nil, err end
  else
    self.reloaded[#self.reloaded + 1] = c
  end
  return counts
end

--- Evaluates the monitors file again and applies its monitors (see the
--- module's comment); `trigger` names the cause in the log ("SIGHUP").
--- Returns true and the counts { added, changed, removed, unchanged }, or
--- nil and the message logged (the file and line, or the setting, and what
--- is wrong). A reload asked for while one runs (from the config itself) is
--- refused: reloads never nest. Signals wait for the reload to end (it runs
--- in one loop callback), so a second SIGHUP is a second reload, after.
---@param trigger string?
---@return boolean?, table|string
function Daemon:reload(trigger)
  if self.reloading then return nil, "a reload is already running" end
  self.reloading = true
  self.logger:info("Reloading the configuration from %s%s", self.path,
    trigger and (" (" .. trigger .. ")") or "")
  local ok, counts, err = xpcall(attempt, debug.traceback, self)
  self.reloading = false
  if not ok then counts, err = nil, tostring(counts) end
  local st, now = self.status, core.time()
  st.attempt_at = now
  if counts then
    st.ok, st.success_at, st.error, st.counts = true, now, nil, counts
    st.reloads = st.reloads + 1
    self.logger:info_with(counts,
      "Configuration reloaded: %d added, %d changed, %d removed, %d unchanged",
      counts.added, counts.changed, counts.removed, counts.unchanged)
  else
    st.ok, st.error = false, err
    st.failures = st.failures + 1
    self.logger:error_with({ error = err },
      "Configuration not reloaded, the running one is kept: %s", err)
  end
  for i, fn in ipairs(self.listeners) do
    local fine, why = pcall(fn, self:reload_status())
    if not fine then self.logger:error("reload listener %d failed: %s", i, tostring(why)) end
  end
  if counts then return true, counts end
  return nil, err
end

--- Runs the dispatcher until SIGTERM or SIGINT; SIGHUP reloads.
function Daemon:run()
  local before = current
  current = self
  self.dispatcher.on_hup = function() self:reload("SIGHUP") end
  local ok, err = pcall(self.dispatcher.run, self.dispatcher)
  self.dispatcher.on_hup = nil
  current = before
  if not ok then error(err, 0) end
end

--- Shuts down what reloads initialised (newest first); the start-up
--- instance's resources are the caller's. Returns true, or nil and the
--- first error.
---@return boolean?, string?
function Daemon:shutdown_resources()
  local first
  for i = #self.reloaded, 1, -1 do
    local ok, err = pcall(self.reloaded[i].shutdown_resources, self.reloaded[i])
    if not ok and not first then first = tostring(err) end
  end
  self.reloaded = {}
  if first then return nil, first end
  return true
end

return setmetatable(M, { __call = function(_, kwargs) return M.new(kwargs) end })
