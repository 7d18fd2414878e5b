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

--- A finite number above 0 (NaN is not).
local function positive(x) return type(x) == "number" and x > 0 and x < math.huge end
M.positive = positive

--- The scheduler's resolution: ticks are whole milliseconds.
M.MIN_INTERVAL = 0.001

--- Checks `check_every` (and `cpu_budget`) and builds the instance fields.
---@param kwargs {check_every: number, name?: string, cpu_budget?: number}
function Monitor:new(kwargs)
  if type(kwargs) ~= "table" then fail("%s: expected a table of options", self.__name) end
  local every = kwargs.check_every
  if not positive(every) then
    fail("check_every must be a number of seconds greater than 0, got %s", tostring(every))
  end
  if every < M.MIN_INTERVAL then
    fail("check_every must be at least %s s (the scheduler's resolution), got %s",
      M.MIN_INTERVAL, tostring(every))
  end
  local budget = kwargs.cpu_budget
  if budget ~= nil and budget ~= 0 and not (positive(budget) and budget >= 0.01) then
    fail("cpu_budget must be 0 (no limit) or a number of seconds of at least 0.01, got %s",
      tostring(budget))
  end
  return setmetatable({
    name = kwargs.name or self.__name,
    interval = every,
    cpu_budget = budget,
    logger = log.get(self.__name),
  }, self)
end

function Monitor:check()
  error(string.format("%s:check() is not defined: a monitor class must define check",
    self.__name), 2)
end

--- Python's repr(round(x, 3)): 0.067, 0.1, 1.0.
local function round3(x)
  local s = string.format("%.3f", x):gsub("0+$", "")
  if s:sub(-1) == "." then s = s .. "0" end
  return s
end
M.round3 = round3

---@class moonwatch.HttpMonitor: moonwatch.Monitor
---@field http_client moonwatch.http.Client
---@field method string
---@field url string
---@field timeout number
---@field request table  the options sent on every check
local HttpMonitor = Monitor:extend("HttpMonitor")
M.HttpMonitor = HttpMonitor

local REQUEST_KEYS = { "headers", "body", "connect_timeout", "follow_redirects",
                       "max_redirects", "verify", "ca_file", "max_body",
                       "fresh_connection", "user_agent", "trust_redirects",
                       "allow_insecure_redirects" }

--- Options: method, url, timeout, check_every, plus any request option
--- (headers, body, follow_redirects, verify, ca_file, ...).
---@param kwargs {http_client: moonwatch.http.Client, options: table, name?: string}
function HttpMonitor:new(kwargs)
  if type(kwargs) ~= "table" then fail("HttpMonitor: expected a table of arguments") end
  local o = kwargs.options
  if type(o) ~= "table" then
    fail("options must be a table (method, url, timeout, check_every), got %s", type(o))
  end
  if kwargs.http_client == nil then fail("http_client is required") end
  if type(o.url) ~= "string" or not o.url:match("^https?://[^/]") then
    fail("options.url must be an http:// or https:// URL string, got %s",
      type(o.url) == "string" and ("'" .. o.url .. "'") or type(o.url))
  end
  local method = o.method or "GET"
  if not M.METHODS[method] then
    fail("options.method '%s' is not a known HTTP method (use GET, HEAD, POST, PUT, "
      .. "PATCH, DELETE or OPTIONS)", tostring(method))
  end
  if not positive(o.timeout) then
    fail("options.timeout must be a number of seconds greater than 0, got %s",
      tostring(o.timeout))
  end
  local ok, obj = pcall(Monitor.new, self,
    { check_every = o.check_every, name = kwargs.name or o.name or o.url,
      cpu_budget = o.cpu_budget })
  if not ok then fail("options.%s", obj) end
  self = obj
  self.http_client = kwargs.http_client
  self.method, self.url, self.timeout = method, o.url, o.timeout
  local request = { method = method, url = o.url, timeout = o.timeout }
  for _, k in ipairs(REQUEST_KEYS) do request[k] = o[k] end
  -- Every option is checked now, so --check finds what each check would
  -- fail on. A client without :check (a spec's fake) gets the core's.
  local client = kwargs.http_client
  local checked, why
  if type(client) == "table" and type(client.check) == "function" then
    checked, why = client:check(request)
  else
    checked, why = pcall(core.http_check, request)
  end
  if not checked then fail("options: %s", tostring(why)) end
  self.request = request
  return self
end

--- Sends the request and logs one record: the response, or the failure.
--- Returns the response, or nil and the error.
function HttpMonitor:check()
  local started = core.now()
  local resp, err, kind = self.http_client:request(self.request)
  local took = round3(core.now() - started)
  if resp then
    self.logger:info("Check\n    %s %s\n    response code: %s\n    content length: %s\n"
      .. "    request took: %s seconds", self.method, self.url, resp.status, resp.size, took)
    return resp
  end
  self.logger:warning("Check failed\n    %s %s\n    error: %s\n    request took: %s seconds",
    self.method, self.url, tostring(err), took)
  return nil, err, kind
end

return M
