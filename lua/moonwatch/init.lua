--- moonwatch: monitors scripted in Lua on a C event loop.
---
---     local mw = require("moonwatch")
---     mw.providers, mw.container      -- the dependency-injection part
---     mw.log, mw.http, mw.monitors    -- logging, the HTTP client, monitors
---     mw.mail                         -- e-mail messages (for core.smtp_send)
---     mw.DnsMonitor, mw.PingMonitor    -- DNS queries and ICMP echo as monitors
---     mw.Dispatcher                   -- runs monitors at their interval
---     mw.TcpMonitor, mw.TlsMonitor    -- a TCP port (and its reply), a TLS certificate
---     mw.State, mw.result             -- each monitor's state, check results
---     mw.maintenance                  -- maintenance windows
---     mw.Alerts                       -- notifications on changes of the state
---     mw.Endpoint                     -- the HTTP endpoint (health, JSON API, reload)
---     mw.Metrics                      -- Prometheus metrics of the results
---     mw.core                         -- the C core (tasks, sleep, run...)
---     mw.testing                      -- for specs: testing.load("monitors.lua")
---
--- Modules load on first use, so the container works without the C core.
local lazy = {
  providers = "moonwatch.providers",
  container = "moonwatch.container",
  log = "moonwatch.log",
  http = "moonwatch.http",
  mail = "moonwatch.mail",
  monitors = "moonwatch.monitors",
  DnsMonitor = "moonwatch.probes.dns",
  PingMonitor = "moonwatch.probes.ping",
  Dispatcher = "moonwatch.dispatcher",
  State = "moonwatch.state",
  Alerts = "moonwatch.alerts",
  Endpoint = "moonwatch.endpoint",
  Metrics = "moonwatch.metrics",
  result = "moonwatch.result",
  maintenance = "moonwatch.maintenance",
  core = "moonwatch.core",
  cli = "moonwatch.cli",
  testing = "moonwatch.testing",
}
-- Classes that live in a module of their own: field -> module, name in it.
local lazy_member = {
  TcpMonitor = { "moonwatch.probes.tcp", "TcpMonitor" },
  TlsMonitor = { "moonwatch.probes.tcp", "TlsMonitor" },
}

---@class moonwatch
---@field providers moonwatch.providers
---@field container fun(builder: fun(c: moonwatch.Container, ...)): moonwatch.ContainerDefinition
---@field log table
---@field http table
---@field mail table
---@field monitors table
---@field DnsMonitor table
---@field PingMonitor table
---@field Dispatcher moonwatch.Dispatcher
---@field State table
---@field Alerts table
---@field Endpoint table
---@field Metrics table
---@field result table
---@field maintenance table
---@field core table
---@field testing moonwatch.testing
---@field TcpMonitor moonwatch.TcpMonitor
---@field TlsMonitor moonwatch.TlsMonitor
local M = { version = "0.1.0" }

return setmetatable(M, {
  __index = function(t, key)
    local member = lazy_member[key]
    if member then
      local value = require(member[1])[member[2]]
      rawset(t, key, value)
      return value
    end
    local name = lazy[key]
    if not name then error("moonwatch has no field '" .. tostring(key) .. "'", 2) end
    local mod = require(name)
    rawset(t, key, mod)
    return mod
  end,
})
