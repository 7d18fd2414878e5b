-- A monitors.lua watching an API behind a token with TokenMonitor
-- (token_monitor.lua, next to this file). Run it with
--   moonwatch examples/token_monitors.lua
-- and point it at your API with MOONWATCH_MONITORS__API__BASE_URL=https://...
local mw = require("moonwatch")
local providers = mw.providers

-- find token_monitor.lua next to this file, from whatever directory
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = here .. "?.lua;" .. package.path
local TokenMonitor = require("token_monitor")

local config = providers.Configuration {
  log = {
    level = "INFO",
    format = "[%(asctime)s] [%(levelname)s] [%(name)s]: %(message)s",
  },
  monitors = {
    api = { base_url = "http://localhost:8080", timeout = 5, check_every = 30 },
  },
}

return mw.container(function(c)
  c.config = config
  c.logging = providers.Resource(mw.log.setup, {
    level = config.log.level,
    format = config.log.format,
  })
  c.http_client = providers.Singleton(mw.http.Client)
  c.api_monitor = providers.Factory(TokenMonitor, {
    http_client = c.http_client,
    options = config.monitors.api,
  })
  c.dispatcher = providers.Factory(mw.Dispatcher, {
    monitors = providers.List(c.api_monitor),
  })
end)
