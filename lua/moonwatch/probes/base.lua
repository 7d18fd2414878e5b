--- What the probe monitors (DnsMonitor, PingMonitor) share: reading their
--- options, flat (`mw.DnsMonitor{ query = ..., expect = ... }`) or as
--- HttpMonitor's (`{ options = config.monitors.dns }`), with errors naming
--- the settings path and the closest known option; the monitor's fields.
local config = require("moonwatch.config")
local monitors = require("moonwatch.monitors")
local suggest = require("moonwatch.suggest")

local M = {}

--- The options every probe monitor knows, besides its own.
M.COMMON = { "name", "check_every", "cpu_budget", "expect", "failure_threshold",
             "success_threshold", "timeout" }

local function fail(fmt, ...) error(string.format(fmt, ...), 0) end

--- Reads kwargs for class cls: returns o (the options), where (the settings
--- path or "options") and got(key) (a value shown for a message). `own`
--- lists the class's options; `inject` the kwargs keys that are not
--- options (a spec's stand-in for the core call).
---@return table o, string where, fun(key: string): string got
function M.options(cls, kwargs, own, inject)
  if type(kwargs) ~= "table" then fail("%s: expected a table of options", cls.__name) end
  local o = kwargs
  if type(kwargs.options) == "table" then o = kwargs.options end
  local path = config.where and config.where(o)
  local where = path or "options"
  local known, names = {}, {}
  for _, list in ipairs{ M.COMMON, own } do
    for _, k in ipairs(list) do known[k], names[#names + 1] = true, k end
  end
  local skip = { options = o ~= kwargs }
  for _, k in ipairs(inject or {}) do skip[k] = o == kwargs end
  local unknown = {}
  for k in pairs(o) do
    if type(k) ~= "string" or not (known[k] or skip[k]) then unknown[#unknown + 1] = tostring(k) end
  end
  if #unknown > 0 then
    table.sort(unknown)
    fail("%s: unknown option '%s'%s", where, unknown[1],
      suggest.hint(unknown[1], names))
  end
  local function got(key)
    return monitors.shown(o[key], config.source and config.source(o, key))
  end
  return o, where, got, path
end

--- The Monitor fields (name, interval, logger, thresholds): check_every
--- defaults to `every`; log_fields are the static fields of its records.
function M.monitor(cls, kwargs, o, where, got, path, default_name, every, log_fields)
  local check_every = o.check_every
  if check_every == nil then check_every = every end
  if not monitors.positive(check_every) then
    fail("%s.check_every must be a number of seconds greater than 0, got %s", where,
      got("check_every"))
  end
  local name = kwargs.name or o.name or (path and path:match("[^.]+$")) or default_name
  log_fields.monitor = name
  local self = monitors.Monitor.new(cls, { check_every = check_every, name = name,
                                           cpu_budget = o.cpu_budget, log_fields = log_fields })
  for _, key in ipairs{ "failure_threshold", "success_threshold" } do
    local v = o[key]
    if v ~= nil and (math.type(v) ~= "integer" or v < 1) then
      fail("%s.%s must be an integer of at least 1, got %s", where, key, got(key))
    end
    self[key] = v
  end
  return self
end

--- Runs check(options) (core.dns_check, core.ping_check), so that a bad
--- option fails when the monitor is built, with where in front.
function M.checked(check, options, where)
  local ok, why = pcall(check, options)
  if not ok then fail("%s: %s", where, tostring(why)) end
end

return M
