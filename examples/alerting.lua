-- A monitors.lua that alerts: the HttpMonitor "example" goes DOWN after
-- alerts.failure_threshold failed checks in a row, and a webhook (and, when
-- alerts.alertmanager.url is set, Alertmanager; when alerts.email.url is
-- set, e-mail) hears it, then the recovery.
--   moonwatch examples/alerting.lua --set alerts.webhook.url=https://hooks.example/T0K3N
-- or MOONWATCH_ALERTS__WEBHOOK__URL=... ; with neither, it only checks.
-- What was sent and what waits to be sent survive a restart in the SQLite
-- file alerts.store (moonwatch.db in the working directory; "" keeps it in
-- memory only).
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
    -- to: addresses separated by commas; the password from a file or from
    -- the environment variable named by password_env
    email = { url = "", from = "", to = "", username = "", password_file = "",
              password_env = "", starttls = "required" },
    store = "moonwatch.db",
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
  local email = settings.email
  if email.url ~= "" then
    local to = {}
    for a in email.to:gmatch("[^,%s]+") do to[#to + 1] = a end
    local function opt(v) return v ~= "" and v or nil end
    list[#list + 1] = notifiers.Email{ name = "email", url = email.url, from = email.from,
      to = to, username = opt(email.username), password_file = opt(email.password_file),
      password_env = opt(email.password_env),
      starttls = email.starttls ~= "false" and email.starttls or false }
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
    email = config.alerts.email,
  })
  c.alerts_store = providers.Resource(mw.Alerts.SqliteStore.resource, {
    path = config.alerts.store,
  })
  c.alerts = providers.Singleton(mw.Alerts, {
    state = c.state,
    notifiers = c.notifiers,
    store = c.alerts_store,
  })
  c.dispatcher = providers.Factory(mw.Dispatcher, {
    monitors = providers.List(c.example_monitor),
    consumers = providers.List(c.state, c.alerts),
  })
end)
