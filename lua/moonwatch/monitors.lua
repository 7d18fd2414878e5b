--- Monitors: a `Monitor` base class and `HttpMonitor`.
---
--- A monitor is any object with an `interval` (seconds) and a `check` method;
--- the dispatcher calls `monitor:check()` in a task of its own, so a check
--- may wait on requests and sleeps as straight-line code. A new kind of
--- monitor is a Lua class:
---
---     local MyMonitor = mw.monitors.Monitor:extend("MyMonitor")
---     function MyMonitor:check() ... end
local core = require("moonwatch.core")
local log = require("moonwatch.log")
local config = require("moonwatch.config")
local conditions = require("moonwatch.conditions")
local result = require("moonwatch.result")
local suggest = require("moonwatch.suggest")

local M = {}

M.METHODS = { GET = true, HEAD = true, POST = true, PUT = true, PATCH = true,
              DELETE = true, OPTIONS = true }

---@class moonwatch.Monitor
---@field name string
---@field interval number  seconds between the starts of two checks
---@field logger moonwatch.Logger
local Monitor = {}
Monitor.__index = Monitor
Monitor.__name = "Monitor"
M.Monitor = Monitor

local function construct(cls, kwargs) return cls:new(kwargs) end

--- A subclass; `name` is the class name, used as its logger's name. Calling
--- the class, `Cls(kwargs)`, is `Cls:new(kwargs)`, so classes work as
--- provider constructors.
---@param name string
function Monitor:extend(name)
  local cls = setmetatable({}, { __index = self, __call = construct })
  cls.__index = cls
  cls.__name = name
  return cls
end
setmetatable(Monitor, { __call = construct })

local function fail(fmt, ...) error(string.format(fmt, ...), 0) end

--- A value as given, for messages: strings quoted (`"5s" (a string)`), so a
--- string that looks like a number is not mistaken for one.
local function shown(v, from)
  local also = from and (", from " .. from) or ""
  if type(v) == "string" then return string.format("%s (a string%s)", suggest.quote(v), also) end
  local s = type(v) == "table" and "a table" or tostring(v)
  return from and (s .. " (from " .. from .. ")") or s
end
M.shown = shown

--- A finite number above 0 (NaN is not).
local function positive(x) return type(x) == "number" and x > 0 and x < math.huge end
M.positive = positive

--- The scheduler's resolution: ticks are whole milliseconds.
M.MIN_INTERVAL = 0.001

-- What is wrong with a check_every or cpu_budget value (nil: nothing).
local function bad_every(every)
  if not positive(every) then return "must be a number of seconds greater than 0" end
  if every < M.MIN_INTERVAL then
    return string.format("must be at least %s s (the scheduler's resolution)", M.MIN_INTERVAL)
  end
end

local function bad_budget(budget)
  if budget ~= nil and budget ~= 0 and not (positive(budget) and budget >= 0.01) then
    return "must be 0 (no limit) or a number of seconds of at least 0.01"
  end
end

--- Checks `check_every` (and `cpu_budget`) and builds the instance fields.
--- `log_fields` are the static fields of its records (default: `monitor`).
---@param kwargs {check_every: number, name?: string, cpu_budget?: number, log_fields?: table}
function Monitor:new(kwargs)
  if type(kwargs) ~= "table" then fail("%s: expected a table of options", self.__name) end
  local every = kwargs.check_every
  local why = bad_every(every)
  if why then fail("check_every %s, got %s", why, shown(every)) end
  local budget = kwargs.cpu_budget
  why = bad_budget(budget)
  if why then fail("cpu_budget %s, got %s", why, shown(budget)) end
  local name = kwargs.name or self.__name
  -- Every record of a monitor names it (%(monitor)s, the JSON member).
  return setmetatable({
    name = name,
    interval = every,
    cpu_budget = budget,
    logger = log.get(self.__name, kwargs.log_fields or { monitor = name }),
  }, self)
end

function Monitor:check()
  error(string.format("%s:check() is not defined: a monitor class must define check",
    self.__name), 2)
end

--- Python's repr(round(x, 3)): 0.067, 0.1, 1.0. (Trailing zeros are cut
--- by hand: a gsub per record costs more than the rest of this.)
local format, byte, sub = string.format, string.byte, string.sub
local function round3(x)
  local s = format("%.3f", x)
  if byte(s, -1) ~= 48 then return s end
  if byte(s, -2) ~= 48 then return sub(s, 1, -2) end
  return sub(s, 1, -3)
end
M.round3 = round3

--- A plain copy of a value (tables copied deeply, without metatables), for
--- comparing a monitor's configuration later: the options table may be
--- changed after the monitor is built. Functions and other references are
--- kept as they are (they compare by identity). A table met twice (a cycle)
--- is the same copy.
local function snapshot(v, seen)
  if type(v) ~= "table" then return v end
  seen = seen or {}
  if seen[v] then return seen[v] end
  local out = {}
  seen[v] = out
  for k, x in next, v do out[snapshot(k, seen)] = snapshot(x, seen) end
  return out
end
M.snapshot = snapshot

--- Whether two values are alike: equal, or tables with alike values under
--- the same keys (keys that are tables compare by identity).
local function alike(a, b, depth)
  if a == b then return true end
  if type(a) ~= "table" or type(b) ~= "table" then return false end
  depth = (depth or 0) + 1
  if depth > 50 then return false end -- a cycle, or something too deep: not proven alike
  for k, x in next, a do
    if not alike(x, rawget(b, k), depth) then return false end
  end
  for k in next, b do
    if rawget(a, k) == nil then return false end
  end
  return true
end
M.alike = alike

---@class moonwatch.HttpMonitor: moonwatch.Monitor
---@field http_client moonwatch.http.Client
---@field request table  the options sent on every check (method, url, timeout, ...)
---@field judge fun(response: table): boolean, string?  its conditions
local HttpMonitor = Monitor:extend("HttpMonitor")
M.HttpMonitor = HttpMonitor

local REQUEST_KEYS = { "headers", "body", "connect_timeout", "follow_redirects",
                       "max_redirects", "verify", "ca_file", "max_body",
                       "fresh_connection", "user_agent", "trust_redirects",
                       "allow_insecure_redirects" }

--- Every option an HttpMonitor knows; anything else is a typo.
M.HTTP_OPTIONS = { "method", "url", "timeout", "check_every", "name", "cpu_budget",
                   "expect", "failure_threshold", "success_threshold" }
for _, k in ipairs(REQUEST_KEYS) do M.HTTP_OPTIONS[#M.HTTP_OPTIONS + 1] = k end
local known_option = {}
for _, k in ipairs(M.HTTP_OPTIONS) do known_option[k] = true end

--- Redirects are followed by default, as the tutorial's aiohttp does.
M.DEFAULT_MAX_REDIRECTS = 10

local function threshold(o, key, where)
  local v = o[key]
  if v ~= nil and (math.type(v) ~= "integer" or v < 1) then
    fail("%s.%s must be an integer of at least 1, got %s", where, key, shown(v))
  end
  return v
end

--- Options: method, url, timeout, check_every, expect (conditions),
--- failure_threshold, success_threshold, name, cpu_budget, plus any request
--- option (headers, body, follow_redirects, verify, ca_file, ...).
---@param kwargs {http_client: moonwatch.http.Client, options: table, name?: string}
function HttpMonitor:new(kwargs)
  if type(kwargs) ~= "table" then fail("HttpMonitor: expected a table of arguments") end
  local o = kwargs.options
  if type(o) ~= "table" then
    fail("options must be a table (method, url, timeout, check_every), got %s", type(o))
  end
  if kwargs.http_client == nil then fail("http_client is required") end
  -- Errors name the settings path the options came from, when they did.
  local path = config.where and config.where(o)
  local where = path or "options"
  local function got(key) return shown(o[key], config.source and config.source(o, key)) end
  local unknown = {}
  for k in pairs(o) do
    if type(k) ~= "string" or not known_option[k] then unknown[#unknown + 1] = tostring(k) end
  end
  if #unknown > 0 then
    table.sort(unknown)
    fail("%s: unknown option '%s'%s", where, unknown[1], suggest.hint(unknown[1], M.HTTP_OPTIONS))
  end
  if type(o.url) ~= "string" or not o.url:match("^https?://[^/]") then
    fail("%s.url must be an http:// or https:// URL string, got %s", where,
      type(o.url) == "string" and ("'" .. o.url .. "'") or got("url"))
  end
  local method = o.method or "GET"
  if not M.METHODS[method] then
    fail("%s.method '%s' is not a known HTTP method (use GET, HEAD, POST, PUT, "
      .. "PATCH, DELETE or OPTIONS)", where, tostring(method))
  end
  if not positive(o.timeout) then
    fail("%s.timeout must be a number of seconds greater than 0, got %s", where, got("timeout"))
  end
  for _, key in ipairs{ "check_every", "cpu_budget" } do
    local why = (key == "check_every" and bad_every or bad_budget)(o[key])
    if why then fail("%s.%s %s, got %s", where, key, why, got(key)) end
  end
  local name = kwargs.name or o.name or (path and path:match("[^.]+$")) or o.url
  self = Monitor.new(self, { check_every = o.check_every, name = name,
                             cpu_budget = o.cpu_budget,
                             log_fields = { monitor = name, method = method, url = o.url } })
  self.failure_threshold = threshold(o, "failure_threshold", where)
  self.success_threshold = threshold(o, "success_threshold", where)
  local judge, bad = conditions.compile(o.expect, where)
  if not judge then error(bad, 0) end
  self.judge = judge
  self.http_client = kwargs.http_client
  local request = { method = method, url = o.url, timeout = o.timeout,
                    follow_redirects = true, max_redirects = M.DEFAULT_MAX_REDIRECTS }
  for _, k in ipairs(REQUEST_KEYS) do
    if o[k] ~= nil then request[k] = o[k] end
  end
  if conditions.needs_cert(judge) then request.cert_info = true end
  -- Every option is checked now, so --check finds what each check would
  -- fail on. A client without :check (a spec's fake) gets the core's.
  local client = kwargs.http_client
  local checked, why
  if type(client) == "table" and type(client.check) == "function" then
    checked, why = client:check(request)
  else
    checked, why = pcall(core.http_check, request)
  end
  if not checked then fail("%s: %s", where, tostring(why)) end
  self.request = request
  -- What a reload compares (same_config): the options as given and the
  -- client's defaults, which are merged into every request.
  local defaults = type(client) == "table" and rawget(client, "defaults") or nil
  self.config = snapshot({ name = name, options = o, client_defaults = defaults })
  -- The up record's text, built once: the method and URL never change.
  self.record_up = "Check\n    " .. (method .. " " .. o.url):gsub("%%", "%%%%")
    .. "\n    response code: %s\n    content length: %s\n    request took: %s seconds"
  return self
end

--- Whether other, an HttpMonitor built from a reloaded config, is
--- configured the same (options, name and the client's defaults): a reload
--- then keeps this one running, with its schedule and connection. A
--- subclass is never the same (it may read more than these options): it
--- defines its own same_config to be kept.
---@param other moonwatch.HttpMonitor
---@return boolean
function HttpMonitor:same_config(other)
  return getmetatable(self) == HttpMonitor and getmetatable(other) == HttpMonitor
    and self.config ~= nil and alike(self.config, other.config)
end

--- Sends the request, judges the response by the monitor's conditions and
--- logs one record: INFO for an up result (the tutorial's record), WARNING
--- with the reason for a down one. Returns the result (moonwatch.result):
--- its fields are monitor, up, reason and kind when down, status, size,
--- duration and timings (the phase times). The record carries the result
--- as its fields, and the monitor's method and url (README: record fields).
function HttpMonitor:check()
  local started = core.now()
  local resp, err, kind = self.http_client:request(self.request)
  local duration = core.now() - started
  local took = round3(duration)
  if resp then
    local up, reason = self.judge(resp)
    -- The result is also the record's fields (method and url are the
    -- logger's): one table per check, small enough, with the dispatcher's
    -- `at`, for 8 hash slots when up.
    local r = { up = up, monitor = self.name, status = resp.status, size = resp.size,
                duration = duration, timings = resp.time }
    -- Only when there are some, so most results keep their 8 slots.
    local redirects = resp.redirects
    if redirects and redirects > 0 then r.redirects = redirects end
    if resp.cert_expiry then r.cert_expiry = resp.cert_expiry end
    if up then
      self.logger:info_with(r, self.record_up, resp.status, resp.size, took)
    else
      r.reason, r.kind = reason, "condition"
      self.logger:warning_with(r, "Check failed\n    %s %s\n    response code: %s\n"
        .. "    reason: %s\n    request took: %s seconds", self.request.method,
        self.request.url, resp.status, reason, took)
    end
    return r
  end
  local r = result.down(tostring(err), kind, { monitor = self.name, duration = duration })
  self.logger:warning_with(r, "Check failed\n    %s %s\n    error: %s\n"
    .. "    request took: %s seconds", self.request.method, self.request.url, r.reason, took)
  return r
end

return M
