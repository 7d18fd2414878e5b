--- The HTTP endpoint of the daemon, on core.http_server:
---
---     GET  /healthz                  200 while the loop turns
---     GET  /readyz                   503 until the Dispatcher runs, then 200
---     GET  /api/v1/monitors          every monitor's state as JSON
---     GET  /api/v1/monitors/<name>   one monitor's (404 when there is none)
---     POST /-/reload                 calls reload (only with lifecycle = true)
---     GET  /metrics                  what `metrics` mounts there, if given
---
---     local ep = mw.Endpoint{ listen = "127.0.0.1:0", dispatcher = d }
---     ep:address()  --> "127.0.0.1", 40123
---
--- Given a dispatcher, it listens once built and adds itself as a consumer
--- (`dispatcher:add_consumer`). Without one it is a consumer to list in the
--- Dispatcher's `consumers` (as monitors.lua does), and listens when the
--- schedule starts (`on_start`: the daemon runs, `--check` and `--once`
--- open no port). It keeps a small copy of each monitor's last result and
--- closes when the Dispatcher stops. `reload` defaults to the running
--- daemon's (moonwatch.daemon).
--- With `auth` (`bearer` or `bearer_file`, or `user` and `password` or
--- `password_file`: a file's first line) every request needs
--- it (`scope = "marked"`: only `/-/reload`); `/-/reload` always needs it
--- when the server listens beyond loopback, so lifecycle without auth there is
--- an error.
local core = require("moonwatch.core")
local log = require("moonwatch.log")

local M = {}

M.DEFAULT_LISTEN = "127.0.0.1:9321"

local PREFIX = "/api/v1/monitors/"
local JSON = { ["Content-Type"] = "application/json" }
local TEXT = { ["Content-Type"] = "text/plain; charset=utf-8" }
local ALLOW_GET = { ["Content-Type"] = "text/plain; charset=utf-8", Allow = "GET, HEAD" }
local ALLOW_POST = { ["Content-Type"] = "text/plain; charset=utf-8", Allow = "POST" }

-- A private instance, made by the first Endpoint (lua-cjson is Debian's
-- package, not a rock): its number precision (14, its most: Unix times to
-- 0.1 ms) is ours.
local cjson

---@class moonwatch.Endpoint
local Endpoint = {}
Endpoint.__index = Endpoint

local SERVER_OPTIONS = { "max_connections", "max_header_bytes", "max_body_bytes",
                         "request_timeout", "idle_timeout" }
local KNOWN = { listen = true, state = true, dispatcher = true, reload = true,
                lifecycle = true, auth = true, metrics = true }
for _, k in ipairs(SERVER_OPTIONS) do KNOWN[k] = true end

local function check_options(kwargs)
  if type(kwargs) ~= "table" then error("Endpoint: expected a table of options", 3) end
  for k in pairs(kwargs) do
    if not KNOWN[k] then error("Endpoint: unknown option '" .. tostring(k) .. "'", 3) end
  end
  local d = kwargs.dispatcher
  if d ~= nil and (type(d) ~= "table" or type(d.schedule) ~= "function") then
    error("Endpoint: option 'dispatcher' must be a Dispatcher", 3)
  end
  local state = kwargs.state or d and d.state
  if state ~= nil and (type(state) ~= "table" or type(state.get) ~= "function") then
    error("Endpoint: option 'state' must be a State", 3)
  end
  if d and not state then error("Endpoint: option 'state' must be a State (the Dispatcher "
    .. "has none)", 3) end
  if kwargs.reload ~= nil and type(kwargs.reload) ~= "function" then
    error("Endpoint: option 'reload' must be a function", 3)
  end
  if kwargs.lifecycle ~= nil and type(kwargs.lifecycle) ~= "boolean" then
    error("Endpoint: option 'lifecycle' must be a boolean", 3)
  end
  local metrics = kwargs.metrics
  if metrics ~= nil and (type(metrics) ~= "table" and type(metrics) ~= "userdata"
                         or type(metrics.mount) ~= "function") then
    error("Endpoint: option 'metrics' must have a mount(server, path) method", 3)
  end
  if kwargs.listen ~= nil and type(kwargs.listen) ~= "string" then
    error("Endpoint: option 'listen' must be a string \"host:port\"", 3)
  end
  return d, state
end

-- The secret in a file (its first line), so it is not in monitors.lua.
local function read_secret(path, what)
  if type(path) ~= "string" then
    error("Endpoint: option 'auth." .. what .. "' must be a path", 4)
  end
  local f, err = io.open(path, "rb")
  if not f then error("Endpoint: option 'auth." .. what .. "': cannot read " .. err, 4) end
  local secret = (f:read("a") or ""):match("^[^\r\n]*")
  f:close()
  if secret == "" then
    error("Endpoint: option 'auth." .. what .. "': " .. path .. " is empty", 4)
  end
  return secret
end

-- auth for core.http_server: bearer_file and password_file read here. An
-- empty string is a setting left unset; with all unset there is no auth.
local function server_auth(auth)
  if type(auth) ~= "table" then return auth end
  local out = {}
  for k, v in pairs(auth) do
    if v ~= "" then out[k] = v end
  end
  if next(out) == nil or next(out) == "scope" and next(out, "scope") == nil then return nil end
  for _, key in ipairs({ "bearer", "password" }) do
    local file = key .. "_file"
    if out[file] ~= nil then
      if out[key] ~= nil then
        error("Endpoint: option 'auth' takes " .. key .. " or " .. file .. ", not both", 3)
      end
      out[key], out[file] = read_secret(out[file], file), nil
    end
  end
  return out
end

local function decode(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function json(status, value) return status, cjson.encode(value), JSON end

local function json_error(status, message) return json(status, { error = message }) end

--- Builds the endpoint. kwargs: optionally dispatcher (then it listens
--- now), state (the Dispatcher's), listen (M.DEFAULT_LISTEN), reload (a
--- function returning true, or nil and a message; the running daemon's by
--- default), lifecycle (false), auth, metrics, and the server's limits
--- (max_connections, ...).
---@return moonwatch.Endpoint
function M.new(kwargs)
  local dispatcher, state = check_options(kwargs)
  if not cjson then
    cjson = require("cjson").new()
    cjson.encode_number_precision(14)
  end
  local self = setmetatable({
    dispatcher = dispatcher,
    state = state,
    reload = kwargs.reload,
    lifecycle = kwargs.lifecycle == true,
    metrics = kwargs.metrics,
    last = {},
    reloading = false,
  }, Endpoint)
  local opts = {
    listen = kwargs.listen or M.DEFAULT_LISTEN,
    auth = server_auth(kwargs.auth),
    handler = function(req) return self:handle(req) end,
  }
  opts.auth_always = opts.auth and { "/-/reload" } or nil
  for _, k in ipairs(SERVER_OPTIONS) do opts[k] = kwargs[k] end
  self.options = opts
  if dispatcher then
    self:listen(2)
    dispatcher:add_consumer(self)
  end
  return self
end

--- Starts listening (at once when built with a dispatcher, else when the
--- schedule starts); a port taken or a bad address raises.
function Endpoint:listen(level)
  if self.server then return end
  local opts = self.options
  local ok, server = pcall(core.http_server, opts)
  if not ok then
    local msg = tostring(server):gsub("^core%.http_server: ", "")
    error("Endpoint: " .. msg, level and level + 1 or 0)
  end
  if self.lifecycle and not opts.auth and not server:is_loopback() then
    server:close()
    error("Endpoint: lifecycle (POST /-/reload) on " .. opts.listen .. ", beyond loopback, "
      .. "needs auth (a bearer token, or a user and password)", level and level + 1 or 0)
  end
  self.server = server
  if self.metrics then self.metrics:mount(server, "/metrics") end
  local host, port = server:address()
  log.get("Endpoint"):info_with({ host = host, port = port }, "Listening on %s",
    host:find(":", 1, true) and ("[%s]:%d"):format(host, port) or ("%s:%d"):format(host, port))
end

--- Consumer: the Dispatcher it serves (when built without one).
function Endpoint:on_dispatcher(dispatcher)
  self.dispatcher = self.dispatcher or dispatcher
  self.state = self.state or dispatcher.state
  if not self.state then
    error("Endpoint: the Dispatcher has no State (list mw.State in its consumers)", 0)
  end
end

--- Consumer: the schedule starts (the daemon runs): listen now.
function Endpoint:on_start() self:listen() end

--- The address it listens on: host, port.
function Endpoint:address() return self.server:address() end

--- Stops listening and closes every connection.
function Endpoint:close()
  if self.server then self.server:close() end
end

--- The Dispatcher stops (SIGTERM): so does the endpoint, whose listening
--- socket would keep the loop running.
function Endpoint:on_stop() self:close() end

--- Keeps the facts of each monitor's last result (a table per monitor,
--- reused: results are not kept alive for an interval).
function Endpoint:on_result(_, r)
  local name = r.monitor
  if type(name) ~= "string" then return end
  local last = self.last[name]
  if not last then
    last = {}
    self.last[name] = last
  end
  last.up, last.reason, last.kind = r.up, r.reason, r.kind
  last.status, last.at, last.duration = r.status, r.at, r.duration
  local t = r.timings
  if type(t) == "table" then
    local timings = last.timings or {}
    for k in pairs(timings) do timings[k] = nil end
    for k, v in pairs(t) do
      if type(v) == "number" then timings[k] = v end
    end
    last.timings = timings
  else
    last.timings = nil
  end
end

local function monitor_json(self, as_table, sched)
  local e = self.state:get(sched.name)
  local m = {
    name = sched.name,
    state = e and e.state or "PENDING",
    since = e and e.since,
    consecutive = e and e.consecutive or 0,
    checks = e and e.checks or 0,
    reason = e and e.reason,
    interval = sched.interval,
    next_check = sched.next_check,
  }
  local last = self.last[sched.name]
  if last then
    local r = { up = last.up, reason = last.reason, kind = last.kind, status = last.status,
                at = last.at, duration = last.duration }
    if last.timings and next(last.timings) then r.timings = last.timings end
    m.last_result = r
  end
  return as_table and m or cjson.encode(m)
end

function Endpoint:monitors()
  local parts = {}
  for i, sched in ipairs(self.dispatcher:schedule()) do
    parts[i] = monitor_json(self, false, sched)
  end
  return 200, '{"monitors":[' .. table.concat(parts, ",") .. "]}", JSON
end

function Endpoint:monitor(name)
  for _, sched in ipairs(self.dispatcher:schedule()) do
    if sched.name == name then return json(200, monitor_json(self, true, sched)) end
  end
  return json_error(404, "no monitor named '" .. name .. "'")
end

function Endpoint:do_reload()
  if self.reloading then return 409, "a reload is in progress\n", TEXT end
  local reload = self.reload
  if not reload then
    local daemon = require("moonwatch.daemon").current()
    if not daemon then return 500, "reload failed: no daemon runs to reload\n", TEXT end
    reload = function() return daemon:reload("POST /-/reload") end
  end
  self.reloading = true
  local ok, done, err = pcall(reload)
  self.reloading = false
  if not ok then err = done end
  if ok and done then return 200, "configuration reloaded\n", TEXT end
  return 500, "reload failed: " .. tostring(err or "the reload function returned nothing") .. "\n",
    TEXT
end

local function get_only(req, fn, ...)
  if req.method ~= "GET" and req.method ~= "HEAD" then
    return 405, "405 Method Not Allowed\n", ALLOW_GET
  end
  return fn(...)
end

--- Answers one request (the server's handler, in a task of its own).
function Endpoint:handle(req)
  local path = req.path
  if path == "/healthz" then
    return get_only(req, function() return 200, "ok\n", TEXT end)
  elseif path == "/readyz" then
    return get_only(req, function()
      if self.dispatcher:running() then return 200, "ready\n", TEXT end
      return 503, "not ready: the monitors are not scheduled yet\n", TEXT
    end)
  elseif path == "/api/v1/monitors" or path == "/api/v1/monitors/" then
    return get_only(req, self.monitors, self)
  elseif path:sub(1, #PREFIX) == PREFIX then
    return get_only(req, self.monitor, self, decode(path:sub(#PREFIX + 1)))
  elseif path == "/-/reload" and self.lifecycle then
    if req.method ~= "POST" then return 405, "405 Method Not Allowed\n", ALLOW_POST end
    return self:do_reload()
  end
  return 404, "404 Not Found\n", TEXT
end

return setmetatable(M, { __call = function(_, kwargs) return M.new(kwargs) end })
