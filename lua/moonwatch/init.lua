--- moonwatch: monitors scripted in Lua on a C event loop.
---
---     local mw = require("moonwatch")
---     mw.providers, mw.container      -- the dependency-injection part
---     mw.log, mw.http, mw.monitors    -- logging, the HTTP client, monitors
---     mw.mail                         -- e-mail messages (for core.smtp_send)
---     mw.DnsMonitor, mw.PingMonitor    -- DNS queries and ICMP echo as monitors
---     mw.Dispatcher                   -- runs monitors at their interval
---     mw.State, mw.result             -- each monitor's state, check results
---     mw.maintenance                  -- maintenance windows
---     mw.Alerts                       -- notifications on changes of the state
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
  result = "moonwatch.result",
  maintenance = "moonwatch.maintenance",
  core = "moonwatch.core",
  cli = "moonwatch.cli",
  testing = "moonwatch.testing",
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
---@field result table
---@field maintenance table
---@field core table
---@field testing moonwatch.testing
local M = { version = "0.1.0" }

return setmetatable(M, {
  __index = function(t, key)
    local name = lazy[key]
    if not name then error("moonwatch has no field '" .. tostring(key) .. "'", 2) end
    local mod = require(name)
    rawset(t, key, mod)
    return mod
  end,
})
