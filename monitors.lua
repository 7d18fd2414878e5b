-- The monitors moonwatch runs: settings, providers and their wiring.
-- Run it with `scripts/run` (or `moonwatch monitors.lua`); override any
-- setting with `--set monitors.example.timeout=2` or MOONWATCH_LOG__LEVEL=DEBUG.
local mw = require("moonwatch")
local providers = mw.providers

local config = providers.Configuration {
  log = {
    level = "INFO",
    format = "[%(asctime)s] [%(levelname)s] [%(name)s]: %(message)s",
  },
  monitors = {
    example = { method = "GET", url = "http://example.com", timeout = 5, check_every = 5 },
    httpbin = { method = "GET", url = "https://httpbin.org/get", timeout = 5, check_every = 5 },
  },
  -- The HTTP endpoint: /metrics (Prometheus), /api/v1/monitors, /healthz,
  -- /readyz; lifecycle = true enables POST /-/reload (SIGHUP always reloads).
  server = { listen = "127.0.0.1:9321", lifecycle = false },
}

return mw.container(function(c)
  c.config = config
  c.logging = providers.Resource(mw.log.setup, {
    level = config.log.level,
    format = config.log.format,
  })
  c.http_client = providers.Singleton(mw.http.Client)
  c.example_monitor = providers.Factory(mw.monitors.HttpMonitor, {
    http_client = c.http_client,
    options = config.monitors.example,
  })
  c.httpbin_monitor = providers.Factory(mw.monitors.HttpMonitor, {
    http_client = c.http_client,
    options = config.monitors.httpbin,
  })
  -- Each monitor's state (UP, DOWN, PENDING), judged from its results.
  c.state = providers.Singleton(mw.State)
  -- Prometheus metrics of the results, served by the endpoint.
  c.metrics = providers.Singleton(mw.Metrics)
  c.endpoint = providers.Singleton(mw.Endpoint, {
    listen = config.server.listen,
    lifecycle = config.server.lifecycle,
    metrics = c.metrics,
  })
  c.dispatcher = providers.Factory(mw.Dispatcher, {
    monitors = providers.List(c.example_monitor, c.httpbin_monitor),
    consumers = providers.List(c.state, c.metrics, c.endpoint),
  })
end)
