--- The e-mail notifier (`notifiers.Email`): one plain-text message per
--- event over SMTP (core.smtp_send: smtp:// with STARTTLS, smtps://, AUTH),
--- with the facts the webhook sends.
---
---     notifiers.Email{ name = "mail", url = "smtp://mail.example.com:587",
---                      from = "moonwatch@example.com", to = { "ops@example.com" },
---                      username = "moonwatch", password_file = "/run/secrets/smtp" }
---
--- The options are checked when it is built (core.smtp_check), each error
--- naming the option; the password (password, password_file or
--- password_env) never appears in a log or a message.
local core = require("moonwatch.core")
local mail = require("moonwatch.mail")
local notifiers = require("moonwatch.alerts.notifiers")

local M = {}

M.TIMEOUT = 30

local KEYS = { "name", "url", "from", "to", "username", "password", "password_file",
  "password_env", "starttls", "subject", "body", "verify", "ca_file", "timeout",
  "connect_timeout" }

local function fail(name, fmt, ...)
  error(string.format("Email notifier %s: " .. fmt, tostring(name), ...), 0)
end

-- The password: at most one of password, password_file (its first line)
-- and password_env.
local function password_of(name, kwargs)
  local given = (kwargs.password and 1 or 0) + (kwargs.password_file and 1 or 0)
    + (kwargs.password_env and 1 or 0)
  if given > 1 then fail(name, "set at most one of password, password_file and password_env") end
  if kwargs.password_file then
    local f, err = io.open(kwargs.password_file, "r")
    if not f then fail(name, "cannot read password_file: %s", err) end
    local p = f:read("l")
    f:close()
    if not p or p == "" then fail(name, "password_file %s is empty", kwargs.password_file) end
    return p
  elseif kwargs.password_env then
    local p = os.getenv(kwargs.password_env)
    if not p or p == "" then
      fail(name, "the environment variable %s (password_env) is not set", kwargs.password_env)
    end
    return p
  end
  if kwargs.password ~= nil and type(kwargs.password) ~= "string" then
    fail(name, "password must be a string")
  end
  return kwargs.password
end

--- The default subject: the event's one line (notifiers.summary).
function M.subject(event)
  return "[moonwatch] " .. notifiers.summary(event)
end

--- The default body: the facts, one a line.
function M.body(event)
  local lines = { notifiers.summary(event), "" }
  local function add(label, v)
    if v ~= nil then lines[#lines + 1] = string.format("%-11s %s", label .. ":", tostring(v)) end
  end
  add("Monitor", event.monitor)
  add("State", event.state)
  add("Reason", event.reason)
  add("URL", event.url)
  add(event.state == "up" and "Down since" or "Since", event.since)
  add("At", event.at)
  if event.down_for_s then add("Down for", string.format("%gs", event.down_for_s)) end
  if event.reminder then add("Reminder", "yes (still down)") end
  local keys = {}
  for k in pairs(event.labels or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do add("Label " .. k, event.labels[k]) end
  return table.concat(lines, "\n") .. "\n"
end

local Email = {}
Email.__index = Email

--- kwargs: name (default "email"), url, from, to (an address or a list),
--- username, password | password_file | password_env, starttls, verify,
--- ca_file, timeout, connect_timeout (core.smtp_send's), subject and body
--- (functions of the event returning a string).
function M.new(kwargs)
  if type(kwargs) ~= "table" then error("Email: expected a table of options", 0) end
  local name = kwargs.name or "email"
  if type(name) ~= "string" or name == "" then
    error("Email: name must be a non-empty string, got " .. tostring(name), 0)
  end
  local known = {}
  for _, k in ipairs(KEYS) do known[k] = true end
  for k in pairs(kwargs) do
    if not known[k] then
      fail(name, "unknown option %s (known: %s)", tostring(k), table.concat(KEYS, ", "))
    end
  end
  for _, k in ipairs({ "subject", "body" }) do
    if kwargs[k] ~= nil and type(kwargs[k]) ~= "function" then
      fail(name, "%s must be a function(event) returning a string", k)
    end
  end
  local to = kwargs.to
  if type(to) == "string" then to = { to } end
  local self = setmetatable({
    name = name,
    subject = kwargs.subject or M.subject,
    body = kwargs.body or M.body,
    opts = {
      url = kwargs.url, from = kwargs.from, to = to, username = kwargs.username,
      password = password_of(name, kwargs), starttls = kwargs.starttls,
      verify = kwargs.verify, ca_file = kwargs.ca_file,
      timeout = kwargs.timeout or M.TIMEOUT, connect_timeout = kwargs.connect_timeout,
    },
  }, Email)
  -- core.smtp_check names the option at fault; the password is never in it
  local probe = self:options("Subject: check\r\n\r\ncheck\r\n")
  local ok, err = pcall(core.smtp_check, probe)
  if not ok then fail(name, "%s", tostring(err)) end
  return self
end

-- The options of one send (a fresh table: core.smtp_send keeps none).
function Email:options(message)
  local o = { message = message }
  for k, v in pairs(self.opts) do o[k] = v end
  return o
end

--- The message of an event, as sent.
function Email:message(event)
  local subject = self.subject(event)
  local body = self.body(event)
  if type(subject) ~= "string" then
    return nil, "subject(event) returned " .. type(subject) .. ", not a string"
  end
  if type(body) ~= "string" then
    return nil, "body(event) returned " .. type(body) .. ", not a string"
  end
  return mail.message{ from = self.opts.from, to = self.opts.to,
                       subject = subject:gsub("[\r\n]+", " "), body = body }
end

function Email:send(event)
  local ok, message, err = pcall(self.message, self, event)
  if not ok then return nil, tostring(message) end
  if not message then return nil, err end
  return core.smtp_send(self:options(message))
end

return setmetatable(M, { __call = function(_, kwargs) return M.new(kwargs) end })
