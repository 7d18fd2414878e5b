--- Notifiers: where the alerts' events go. A notifier is an object with a
--- `name` and `send(self, event)`, called from its outbox's task (it may
--- wait on the loop), returning true once delivered or `nil, message`;
--- optionally `start(self, ctx)` (ctx: clock, resend), `stop(self)` and
--- `resume(self, event)` (after a restart, a "down" sent before it).
---
---     notifiers.Webhook{ name = "ops", url_env = "OPS_HOOK", headers = {...},
---                        body = function(event) return {...} end }
---     notifiers.Slack{ name = "chat", url_file = "/run/secrets/slack" }
---     notifiers.Alertmanager{ name = "am", urls = { "http://am1:9093", ... },
---                             labels = { team = "web" } }
---     notifiers.Email{ name = "mail", url = "smtp://mail.example.com:587",
---                      from = "moonwatch@example.com", to = { "ops@example.com" } }
---     notifiers.Recorder{ name = "rec" }     -- for specs: keeps the events
---
--- Secrets: `url` (or each of `urls`) may instead come from `url_file` (the
--- file's first line) or `url_env` (an environment variable). Logs and
--- messages name the notifier, never its URL.
local State = require("moonwatch.state")

local M = {}

M.TIMEOUT = 10

-- lua-cjson is loaded by the first event encoded: the module loads without it.
local cjson_module
local function encode(doc)
  cjson_module = cjson_module or require("cjson")
  return cjson_module.encode(doc)
end

local function fail(kind, name, fmt, ...)
  error(string.format("%s notifier %s: " .. fmt, kind, tostring(name), ...), 0)
end

local function check_name(kind, kwargs)
  if type(kwargs) ~= "table" then error(kind .. ": expected a table of options", 0) end
  local name = kwargs.name or kind:lower()
  if type(name) ~= "string" or name == "" then
    error(kind .. ": name must be a non-empty string, got " .. tostring(name), 0)
  end
  return name
end

local function check_keys(kind, name, kwargs, known)
  for k in pairs(kwargs) do
    if not known[k] then
      local list = {}
      for key in pairs(known) do list[#list + 1] = key end
      table.sort(list)
      fail(kind, name, "unknown option %s (known: %s)", tostring(k), table.concat(list, ", "))
    end
  end
end

--- The secret URL of a notifier: url, url_file or url_env, exactly one.
function M.secret_url(kind, name, kwargs)
  local given = (kwargs.url and 1 or 0) + (kwargs.url_file and 1 or 0)
    + (kwargs.url_env and 1 or 0)
  if given ~= 1 then fail(kind, name, "set exactly one of url, url_file and url_env") end
  local url = kwargs.url
  if kwargs.url_file then
    local f, err = io.open(kwargs.url_file, "r")
    if not f then fail(kind, name, "cannot read url_file: %s", err) end
    url = f:read("l")
    f:close()
    if not url or url == "" then fail(kind, name, "url_file %s is empty", kwargs.url_file) end
  elseif kwargs.url_env then
    url = os.getenv(kwargs.url_env)
    if not url or url == "" then
      fail(kind, name, "the environment variable %s (url_env) is not set", kwargs.url_env)
    end
  end
  if type(url) ~= "string" or not url:match("^https?://[^/]") then
    fail(kind, name, "the url must be an http:// or https:// URL")
  end
  return (url:gsub("%s+$", ""))
end

-- A message without the secret: curl's messages may quote the URL.
local function redact(message, url, name)
  message = tostring(message)
  local s, e = message:find(url, 1, true)
  while s do
    message = message:sub(1, s - 1) .. "<url of " .. name .. ">" .. message:sub(e + 1)
    s, e = message:find(url, s, true)
  end
  return message
end
M.redact = redact

local function client_of(kwargs)
  return kwargs.http_client or require("moonwatch.http").Client()
end

local function post(self, url, body)
  local opts = { method = "POST", url = url, body = body, timeout = self.timeout,
                 headers = self.headers, follow_redirects = false }
  local resp, err = self.http_client:request(opts)
  if not resp then return nil, redact(err, url, self.name) end
  if resp.status < 200 or resp.status > 299 then
    return nil, "status " .. tostring(resp.status)
  end
  return true
end

local function header_list(kind, name, headers)
  local out = { "Content-Type: application/json" }
  if headers == nil then return out end
  if type(headers) ~= "table" then fail(kind, name, "headers must be a table") end
  for k, v in pairs(headers) do
    if type(k) == "string" then
      out[#out + 1] = k .. ": " .. tostring(v)
    else
      out[#out + 1] = tostring(v)
    end
  end
  return out
end

--- The one line of an event: "example is DOWN: status 500...", "example
--- is UP again after 2m13s down" or, for a monitor a reload removed,
--- "example is no longer monitored: removed from the configuration".
function M.summary(event)
  if event.removed then
    return string.format("%s is no longer monitored: %s", event.monitor, tostring(event.reason))
  end
  if event.state == "up" then
    return string.format("%s is UP again after %s down", event.monitor,
      State.duration(event.down_for_s or 0))
  end
  return string.format("%s is DOWN%s: %s", event.monitor,
    event.reminder and " (still)" or "", tostring(event.reason))
end

local Webhook = {}
Webhook.__index = Webhook

local WEBHOOK_KEYS = { name = true, url = true, url_file = true, url_env = true,
  headers = true, body = true, timeout = true, http_client = true }

--- POSTs the event as JSON; `body(event)` may return another table (or a
--- string, sent as it is).
function M.Webhook(kwargs)
  local name = check_name("Webhook", kwargs)
  check_keys("Webhook", name, kwargs, WEBHOOK_KEYS)
  if kwargs.body ~= nil and type(kwargs.body) ~= "function" then
    fail("Webhook", name, "body must be a function(event) returning a table or a string")
  end
  return setmetatable({
    name = name,
    url = M.secret_url("Webhook", name, kwargs),
    headers = header_list("Webhook", name, kwargs.headers),
    shape = kwargs.body,
    timeout = kwargs.timeout or M.TIMEOUT,
    http_client = client_of(kwargs),
  }, Webhook)
end

function Webhook:body(event)
  local doc = event
  if self.shape then doc = self.shape(event) end
  if type(doc) == "string" then return doc end
  return encode(doc)
end

function Webhook:send(event)
  return post(self, self.url, self:body(event))
end

--- Slack-compatible incoming webhooks (Mattermost, Discord's /slack): text
--- and one section block.
function M.Slack(kwargs)
  local name = check_name("Slack", kwargs)
  check_keys("Slack", name, kwargs, WEBHOOK_KEYS)
  local shape = kwargs.body
  if shape ~= nil and type(shape) ~= "function" then
    fail("Slack", name, "body must be a function(event) returning a table or a string")
  end
  return setmetatable({
    name = name,
    url = M.secret_url("Slack", name, kwargs),
    headers = header_list("Slack", name, kwargs.headers),
    shape = shape or M.slack_body,
    timeout = kwargs.timeout or M.TIMEOUT,
    http_client = client_of(kwargs),
  }, Webhook)
end

--- The Slack document of an event.
function M.slack_body(event)
  local text = M.summary(event)
  local lines = { "*" .. text .. "*" }
  if event.url then lines[#lines + 1] = "URL: " .. event.url end
  lines[#lines + 1] = (event.state == "up" and "Down since: " or "Since: ") .. event.since
  return {
    text = text,
    blocks = { { type = "section", text = { type = "mrkdwn", text = table.concat(lines, "\n") } } },
  }
end

local Alertmanager = {}
Alertmanager.__index = Alertmanager

local AM_KEYS = { name = true, url = true, url_file = true, url_env = true, urls = true,
  labels = true, headers = true, timeout = true, http_client = true, alertname = true }

local function rfc3339(t) return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t)) end
M.rfc3339 = rfc3339

--- Alertmanager's API v2, posted to every URL given (its HA model: each
--- instance gets every alert). A firing alert is posted again every
--- `resend` seconds with endsAt = now + 4 × resend; a resolve, endsAt = the
--- time it resolved, is posted again for 4 × resend, so a lost POST heals.
function M.Alertmanager(kwargs)
  local name = check_name("Alertmanager", kwargs)
  check_keys("Alertmanager", name, kwargs, AM_KEYS)
  local urls = {}
  if kwargs.urls ~= nil then
    if type(kwargs.urls) ~= "table" or #kwargs.urls == 0 then
      fail("Alertmanager", name, "urls must be a non-empty list of URLs")
    end
    for i, u in ipairs(kwargs.urls) do
      local spec = type(u) == "table" and u or { url = u }
      urls[i] = M.secret_url("Alertmanager", name .. " urls[" .. i .. "]", spec)
    end
  else
    urls[1] = M.secret_url("Alertmanager", name, kwargs)
  end
  for i, u in ipairs(urls) do urls[i] = u:gsub("/+$", "") .. "/api/v2/alerts" end
  if kwargs.labels ~= nil and type(kwargs.labels) ~= "table" then
    fail("Alertmanager", name, "labels must be a table of label = value")
  end
  return setmetatable({
    name = name,
    urls = urls,
    labels = kwargs.labels or {},
    alertname = kwargs.alertname or "MonitorDown",
    headers = header_list("Alertmanager", name, kwargs.headers),
    timeout = kwargs.timeout or M.TIMEOUT,
    http_client = client_of(kwargs),
    active = {},
    resend = 60,
    counters = { resent = 0, resend_failed = 0 },
  }, Alertmanager)
end

--- The alert of an event, as of `now`.
function Alertmanager:alert(event, now)
  local labels = { alertname = self.alertname, monitor = event.monitor }
  for k, v in pairs(self.labels) do labels[k] = tostring(v) end
  for k, v in pairs(event.labels or {}) do labels[k] = tostring(v) end
  local a = {
    labels = labels,
    annotations = { summary = M.summary(event),
                    description = event.reason and tostring(event.reason) or M.summary(event) },
    startsAt = event.since,
  }
  if event.url then a.generatorURL = event.url end
  if event.state == "up" then
    a.endsAt = event.at
  else
    a.endsAt = rfc3339(now + 4 * self.resend)
  end
  return a
end

local function post_all(self, alerts)
  local body = encode(alerts)
  local ok_any, errs = false, {}
  for i, url in ipairs(self.urls) do
    local ok, err = post(self, url, body)
    if ok then
      ok_any = true
    else
      errs[#errs + 1] = string.format("urls[%d]: %s", i, err)
    end
  end
  if ok_any then return true end
  return nil, table.concat(errs, "; ")
end

function Alertmanager:start(ctx)
  self.clock, self.resend = ctx.clock, ctx.resend or self.resend
  self.logger = ctx.logger
  local function tick()
    if self.stopped then return end
    self.timer = self.clock:after(self.resend, tick)
    require("moonwatch.core").spawn(function() self:refresh() end)
  end
  self.timer = self.clock:after(self.resend, tick)
end

function Alertmanager:stop()
  self.stopped = true
  if self.timer then self.timer:cancel() end
end

--- Posts every active alert again (firing, or resolved less than
--- 4 × resend ago); what one instance missed, it gets now.
function Alertmanager:refresh()
  local now = self.clock and self.clock:now() or os.time()
  local list = {}
  for monitor, act in pairs(self.active) do
    if act.event.state == "up" and now - act.at > 4 * self.resend then
      self.active[monitor] = nil
    else
      list[#list + 1] = self:alert(act.event, now)
    end
  end
  if #list == 0 then return true end
  local ok, err = post_all(self, list)
  if ok then
    self.counters.resent = self.counters.resent + 1
  else
    self.counters.resend_failed = self.counters.resend_failed + 1
    if self.logger then
      self.logger:warning("notifier %s: re-sending %d alerts failed: %s", self.name, #list, err)
    end
  end
  return ok, err
end

--- After a restart: the alert sent before it is re-sent with the others.
function Alertmanager:resume(event)
  local now = self.clock and self.clock:now() or os.time()
  self.active[event.monitor] = { event = event, at = now }
end

function Alertmanager:send(event)
  local now = self.clock and self.clock:now() or os.time()
  self.active[event.monitor] = { event = event, at = now }
  return post_all(self, { self:alert(event, now) })
end

--- E-mail over SMTP: moonwatch.alerts.email (loaded when first built; it
--- uses this module's summary).
function M.Email(kwargs)
  return require("moonwatch.alerts.email").new(kwargs)
end

local Recorder = {}
Recorder.__index = Recorder

--- For specs: keeps every event it is sent in `events` (and each attempt in
--- `attempts`); `fail(event, attempt)` returning a message makes that
--- attempt fail; `on_send(event, recorder)` is called after each event is
--- kept (a spec stops the dispatcher there: an event, not a sleep).
function M.Recorder(kwargs)
  kwargs = kwargs or {}
  local name = check_name("Recorder", kwargs)
  return setmetatable({ name = name, events = {}, attempts = {}, fail = kwargs.fail,
                        on_send = kwargs.on_send }, Recorder)
end

function Recorder:send(event)
  self.attempts[#self.attempts + 1] = event
  if self.fail then
    local n = 0
    for _, e in ipairs(self.attempts) do if e == event then n = n + 1 end end
    local err = self.fail(event, n)
    if err then return nil, err end
  end
  self.events[#self.events + 1] = event
  if self.on_send then self.on_send(event, self) end
  return true
end

--- The recorded events as "monitor state" strings, for short assertions.
function Recorder:summary()
  local out = {}
  for i, e in ipairs(self.events) do
    out[i] = e.monitor .. " " .. e.state .. (e.reminder and " reminder" or "")
  end
  return out
end

return M
