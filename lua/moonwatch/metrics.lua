--- Metrics (`mw.Metrics`): the monitors' results as Prometheus metrics, in
--- the core's registry (core.metrics; the exposition is built in C).
---
---     c.metrics = providers.Singleton(mw.Metrics, { alerts = c.alerts })
---     c.dispatcher = providers.Factory(mw.Dispatcher, { monitors = ...,
---       consumers = providers.List(c.state, c.alerts, c.metrics) })
---     c.metrics():render()  --> the text a scrape of /metrics gets
---
--- A result consumer: each result sets the monitor's probe_* gauges and
--- counts it in moonwatch_checks_total (one C call, positional numbers);
--- HttpMonitor results give every probe_http_* figure, other monitors'
--- probe_success and probe_duration_seconds. It listens to the State's
--- changes (the `state` given, else the Dispatcher's) for
--- moonwatch_monitor_state; with `alerts` whose windows hold a monitor, the
--- state reads "maintenance" from its next result on, and the notifiers'
--- counters are read at each render. The Dispatcher hands it its schedule
--- (skipped ticks, lateness) through on_dispatcher.
local core = require("moonwatch.core")
local monitors = require("moonwatch.monitors")

local M = {}

---@class moonwatch.Metrics
---@field registry userdata  the core's registry (core.metrics())
local Metrics = {}
Metrics.__index = Metrics

local KWARGS = { registry = true, state = true, alerts = true }
local OUTCOMES = { "sent", "retried", "dropped_overflow", "dropped_max_age" }

local function is_http(monitor)
  local mt = getmetatable(monitor)
  while type(mt) == "table" do
    if mt == monitors.HttpMonitor then return true end
    local parent = getmetatable(mt)
    mt = parent and rawget(parent, "__index")
  end
  return false
end

--- kwargs: registry (a core.metrics(); a new one when not given), state (a
--- State whose changes set moonwatch_monitor_state; the Dispatcher's when
--- not given), alerts (an Alerts: notification counters, maintenance).
---@param kwargs {registry?: userdata, state?: moonwatch.State, alerts?: table}?
---@return moonwatch.Metrics
function M.new(kwargs)
  kwargs = kwargs or {}
  if type(kwargs) ~= "table" then error("Metrics: expected a table of options", 0) end
  for k in pairs(kwargs) do
    if not KWARGS[k] then
      error(string.format("Metrics: unknown option '%s' (registry, state, alerts)", tostring(k)),
        0)
    end
  end
  local alerts = kwargs.alerts
  if alerts ~= nil and (type(alerts) ~= "table" or type(alerts.counters) ~= "function") then
    error("Metrics: alerts must be an Alerts (mw.Alerts)", 0)
  end
  local self = setmetatable({
    registry = kwargs.registry or core.metrics(),
    alerts = alerts,
    windows = alerts and alerts.windows,
    series = {},  -- name -> the registry's series
    owner = {},   -- name -> the monitor it was made for
    http = {},    -- name -> whether its monitor is an HttpMonitor
    current = {}, -- name -> the state last set
    gone = setmetatable({}, { __mode = "k" }), -- removed monitors: late results are dropped
  }, Metrics)
  if kwargs.state ~= nil then self:listen(kwargs.state) end
  if alerts then
    local sent = self.registry:family("moonwatch_notifications_total")
    local queued = self.registry:family("moonwatch_notifications_queued")
    self.registry:on_collect(function()
      for name, c in pairs(alerts:counters()) do
        for _, outcome in ipairs(OUTCOMES) do sent:set(c[outcome] or 0, name, outcome) end
        queued:set(c.queued or 0, name)
      end
    end)
  end
  return self
end

--- Hears `state`'s changes (once; a second State replaces the first).
---@param state moonwatch.State
function Metrics:listen(state)
  if type(state) ~= "table" or type(state.on_change) ~= "function" then
    error("Metrics: state must be a State (mw.State)", 0)
  end
  if self.state == state then return end
  if self.state then self.state:off_change(self) end
  self.state = state
  state:on_change(self)
  for name in pairs(self.series) do
    local e = state:get(name)
    if e then self:set_state(name, e.state:lower()) end
  end
end

function Metrics:set_state(name, st)
  local s = self.series[name]
  if s and self.current[name] ~= st then
    s:state(st)
    self.current[name] = st
  end
end

local function series_for(self, monitor, name)
  local s = self.series[name]
  if not s then
    s = self.registry:monitor(name)
    self.series[name] = s
    self.current[name] = "pending"
  end
  self.owner[name] = monitor
  self.http[name] = is_http(monitor)
  return s
end

--- A monitor of the Dispatcher: its series, pending until its first result.
--- A monitor of a name seen before (a reload) keeps that name's series.
function Metrics:on_monitor(monitor, name)
  name = tostring(name or monitor.name)
  series_for(self, monitor, name)
  self.gone[monitor] = nil
  local e = self.state and self.state:get(name)
  if e then self:set_state(name, e.state:lower()) end
end

--- A monitor is gone (a reload removed it): its series leaves the
--- exposition, unless a new monitor of the same name took it over.
function Metrics:on_remove(monitor, name)
  name = tostring(name or monitor.name)
  self.gone[monitor] = true
  if self.owner[name] ~= monitor then return end
  self.series[name]:remove()
  self.series[name], self.owner[name], self.http[name], self.current[name] = nil, nil, nil, nil
end

--- One result: probe_* and the checks counter.
function Metrics:on_result(monitor, r)
  local name = r.monitor
  if type(name) ~= "string" then name = tostring(name) end
  local s = self.series[name]
  if not s then
    if self.gone[monitor] then return end
    s = series_for(self, monitor, name)
  end
  if self.http[name] then
    local t = r.timings
    if t then
      local dns, connect, tls, first = t.dns, t.connect, t.tls, t.first_byte
      s:observe(r.up, r.duration, r.status or 0, r.size or 0, r.redirects or 0,
        dns - (t.redirect or 0), connect - dns, tls - connect, first - tls, t.total - first,
        r.cert_expiry)
    else -- no response: blackbox's zeros
      s:observe(r.up, r.duration, 0, 0, 0, 0, 0, 0, 0, 0, nil)
    end
  else
    s:observe(r.up, r.duration)
  end
  if self.windows then
    local held = self.windows:in_maintenance(name, r.at or core.time())
    local e = self.state and self.state:get(name)
    self:set_state(name, held and "maintenance" or (e and e.state:lower()) or "pending")
  end
end

--- A State change (State:on_change).
function Metrics:on_change(entry, _, to)
  if self.windows and self.current[entry.name] == "maintenance"
    and self.windows:in_maintenance(entry.name, core.time()) then
    return
  end
  self:set_state(entry.name, to:lower())
end

--- The Dispatcher this consumer serves: its schedule's figures, and its
--- State when none was given.
function Metrics:on_dispatcher(dispatcher)
  dispatcher.core:metrics(self.registry)
  if not self.state and dispatcher.state then self:listen(dispatcher.state) end
end

--- A configuration reload was tried: moonwatch_config_last_reload_successful
--- and, on success, its timestamp.
---@param ok boolean
---@param time number?
function Metrics:reloaded(ok, time) self.registry:reloaded(ok, time) end

--- The whole exposition (Prometheus text format 0.0.4).
---@return string
function Metrics:render() return self.registry:render() end

--- Serves the exposition at GET path of an http server (core.http_server),
--- streamed in pieces over loop turns (mw.Endpoint calls it).
---@param server userdata
---@param path string
function Metrics:mount(server, path) core.metrics_serve(server, self.registry, path) end

M.Metrics = Metrics

return setmetatable(M, { __call = function(_, kwargs) return M.new(kwargs) end })
