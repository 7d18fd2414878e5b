-- A monitors.lua that alerts: the HttpMonitor "example" goes DOWN after
-- alerts.failure_threshold failed checks in a row, and a webhook (and, when
-- alerts.alertmanager.url is set, Alertmanager) hears it, then the recovery.
--   moonwatch examples/alerting.lua --set alerts.webhook.url=https://hooks.example/T0K3N
-- or MOONWATCH_ALERTS__WEBHOOK__URL=... ; with neither, it only checks.
local mw = require("moonwatch")
local providers = mw.providers
local notifiers = mw.Alerts.notifiers

local config = providers.Configuration {
  log = {
    level = "INFO",
    format = "[%(asctime)s] [%(levelname)s] [%(name)s]: %(message)s",
  },
  monitors = {
    example = { method = "GET", url = "http://example.com", timeout = 5, check_every = 30 },
  },
  alerts = {
    failure_threshold = 3,
    success_threshold = 2,
    webhook = { url = "" },
    alertmanager = { url = "" },
  },
}

-- The notifiers whose URL is set; none at all is fine (no alerts).
local function alert_notifiers(settings)
  local list = {}
  if settings.webhook_url ~= "" then
    list[#list + 1] = notifiers.Webhook{ name = "webhook", url = settings.webhook_url }
  end
  if settings.alertmanager_url ~= "" then
    list[#list + 1] = notifiers.Alertmanager{ name = "alertmanager",
                                              url = settings.alertmanager_url }
  end
  return list
end

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
  c.state = providers.Singleton(mw.State, {
    failure_threshold = config.alerts.failure_threshold,
    success_threshold = config.alerts.success_threshold,
  })
  c.notifiers = providers.Callable(alert_notifiers, {
    webhook_url = config.alerts.webhook.url,
    alertmanager_url = config.alerts.alertmanager.url,
  })
  c.alerts = providers.Singleton(mw.Alerts, { state = c.state, notifiers = c.notifiers })
  c.dispatcher = providers.Factory(mw.Dispatcher, {
    monitors = providers.List(c.example_monitor),
    consumers = providers.List(c.state, c.alerts),
  })
end)
