--- TCP and TLS monitors: `TcpMonitor` (a port that accepts, optionally a
--- reply to what it is sent, optionally over TLS) and `TlsMonitor` (the
--- certificate of any TLS service), both on core.tcp_check.
---
---     mw.TcpMonitor{ name = "redis", address = "127.0.0.1:6379", check_every = 10,
---                    timeout = 2, send = "PING\r\n", expect = { reply_contains = "+PONG" } }
---     mw.TlsMonitor{ name = "mail", address = "mail.example.com:465",
---                    check_every = 3600, expect = { cert_valid_days = 14 } }
---
--- A check returns a result like HttpMonitor's: up, reason and kind when
--- down, duration, timings (dns, connect, tls, first_byte, total), ip, size
--- (of the reply) and cert_expiry (TLS). The README's "TCP and TLS monitors"
--- section documents the options, conditions and failure kinds.
local core = require("moonwatch.core")
local config = require("moonwatch.config")
local conditions = require("moonwatch.conditions")
local monitors = require("moonwatch.monitors")
local result = require("moonwatch.result")
local suggest = require("moonwatch.suggest")

local M = {}

local util = conditions.util
local quote, format, find = util.quote, string.format, string.find
local Monitor, shown, positive, round3 = monitors.Monitor, monitors.shown, monitors.positive,
  monitors.round3

---------------------------------------------------------------------------
-- Conditions

-- What a failed reply condition says of the reply.
local function reply_seen(r)
  local reply = r.reply or ""
  if reply == "" then return "the reply is empty" end
  return "it starts " .. quote(reply)
end

local function compile_reply_contains(v)
  local list = util.strings(v, "a string")
  local n = #list
  return function(r)
    local reply = r.reply or ""
    for i = 1, n do
      if not find(reply, list[i], 1, true) then
        return format("reply does not contain %s (%s)", quote(list[i]), reply_seen(r))
      end
    end
    return nil
  end
end

local function compile_reply_matches(v)
  local list = util.strings(v, "a regular expression")
  local res = {}
  for i, pattern in ipairs(list) do res[i] = util.regex(pattern) end
  local n = #res
  return function(r)
    local reply = r.reply or ""
    for i = 1, n do
      local s, err = res[i]:find(reply)
      if not s then
        if err then return format("%s matching %s against the reply", err, tostring(res[i])) end
        return format("reply does not match %s (%s)", tostring(res[i]), reply_seen(r))
      end
    end
    return nil
  end
end

local function compile_cert_valid_days(v)
  local check = util.cert_valid_days(v)
  return function(r)
    if r.cert_expiry == nil then
      return "no certificate: the connection did not use TLS (set tls = true)"
    end
    return check(r)
  end
end

--- The conditions of a TcpMonitor, in the order they are tried.
M.TCP_KEYS = { "max_response_ms", "cert_valid_days", "reply_contains", "reply_matches", "check" }
--- The conditions of a TlsMonitor.
M.TLS_KEYS = { "cert_valid_days", "max_response_ms", "check" }

local COMPILERS = {
  max_response_ms = util.max_response_ms,
  cert_valid_days = compile_cert_valid_days,
  reply_contains = compile_reply_contains,
  reply_matches = compile_reply_matches,
  check = util.check,
}

--- compile(expect, where) -> judge(result) -> true | false, reason
M.compile_tcp = conditions.compiler{ keys = M.TCP_KEYS, compilers = COMPILERS,
  example = 'reply_contains = "+PONG", max_response_ms = 200, ...' }
local TLS_COMPILERS = {}
for _, k in ipairs(M.TLS_KEYS) do TLS_COMPILERS[k] = COMPILERS[k] end
M.compile_tls = conditions.compiler{ keys = M.TLS_KEYS, compilers = TLS_COMPILERS,
  example = "cert_valid_days = 14, ..." }

---------------------------------------------------------------------------
-- Options

local function fail(fmt, ...) error(format(fmt, ...), 0) end

--- host, port of "host:port" or "[v6]:port" (port defaults to default_port).
function M.parse_address(address, default_port)
  if type(address) ~= "string" then return nil end
  local host, port = address:match("^%[([^%]]+)%]:(%d+)$")
  if not host then host = address:match("^%[([^%]]+)%]$") end
  if not host then host, port = address:match("^([^:%[%]]+):(%d+)$") end
  if not host and address:match("^[^:%[%]]+$") then host = address end
  if not host or host == "" then return nil end
  port = port and math.tointeger(tonumber(port)) or (not port and default_port) or nil
  if not port or port < 1 or port > 65535 then return nil end
  return host, port
end

local COMMON = { "name", "address", "check_every", "interval", "timeout", "expect",
                 "failure_threshold", "success_threshold", "cpu_budget", "server_name",
                 "ca_file", "insecure" }
M.TCP_OPTIONS = { "tls", "send", "read_max", "read_until" }
M.TLS_OPTIONS = {}
for _, k in ipairs(COMMON) do
  M.TCP_OPTIONS[#M.TCP_OPTIONS + 1] = k
  M.TLS_OPTIONS[#M.TLS_OPTIONS + 1] = k
end
local PROBE_KEYS = { "tls", "server_name", "ca_file", "insecure", "send", "read_max",
                     "read_until" }

local function threshold(o, key, where)
  local v = o[key]
  if v ~= nil and (math.type(v) ~= "integer" or v < 1) then
    fail("%s.%s must be an integer of at least 1, got %s", where, key, shown(v))
  end
  return v
end

-- Builds a TcpMonitor or TlsMonitor (kind = "TCP" or "TLS").
local function new(cls, kwargs, kind)
  if type(kwargs) ~= "table" then fail("%s: expected a table of options", cls.__name) end
  local o = kwargs
  if type(kwargs.options) == "table" then o = kwargs.options end
  local path = config.where and config.where(o)
  local where = path or "options"
  local function got(key) return shown(o[key], config.source and config.source(o, key)) end
  local known_list = kind == "TLS" and M.TLS_OPTIONS or M.TCP_OPTIONS
  local known = {}
  for _, k in ipairs(known_list) do known[k] = true end
  if o == kwargs then known.tcp_check = true end -- a spec's probe, beside the options
  local unknown = {}
  for k in pairs(o) do
    if type(k) ~= "string" or not known[k] then unknown[#unknown + 1] = tostring(k) end
  end
  if #unknown > 0 then
    table.sort(unknown)
    fail("%s: unknown option '%s'%s", where, unknown[1], suggest.hint(unknown[1], known_list))
  end
  local host, port = M.parse_address(o.address, kind == "TLS" and 443 or nil)
  if not host then
    fail('%s.address must be "host:port" (e.g. "db.example.com:5432" or "[::1]:6379"%s),'
      .. " got %s", where, kind == "TLS" and '; the port defaults to 443' or "", got("address"))
  end
  if o.check_every ~= nil and o.interval ~= nil then
    fail("%s: give check_every or interval, not both", where)
  end
  local every_key = o.interval ~= nil and "interval" or "check_every"
  local every = o[every_key]
  if not positive(every) or every < monitors.MIN_INTERVAL then
    fail("%s.%s must be a number of seconds of at least %s, got %s", where, every_key,
      monitors.MIN_INTERVAL, got(every_key))
  end
  local timeout = o.timeout or 10
  if not positive(timeout) then
    fail("%s.timeout must be a number of seconds greater than 0, got %s", where, got("timeout"))
  end
  local judge, why = (kind == "TLS" and M.compile_tls or M.compile_tcp)(o.expect, where)
  if not judge then error(why, 0) end
  local name = kwargs.name or o.name or (path and path:match("[^.]+$")) or o.address
  local self = Monitor.new(cls, { check_every = every, name = name, cpu_budget = o.cpu_budget,
                                  log_fields = { monitor = name, address = o.address } })
  self.failure_threshold = threshold(o, "failure_threshold", where)
  self.success_threshold = threshold(o, "success_threshold", where)
  self.judge = judge
  self.address = o.address
  self.kind = kind
  local probe = { host = host, port = port, timeout = timeout }
  for _, k in ipairs(PROBE_KEYS) do
    if known[k] and o[k] ~= nil then probe[k] = o[k] end
  end
  if kind == "TLS" then probe.tls = true end
  -- A reply condition needs a reply, even from a server that speaks first.
  local expect = type(o.expect) == "table" and o.expect or {}
  if (expect.reply_contains ~= nil or expect.reply_matches ~= nil) and probe.read_max == nil
      and probe.send == nil and probe.read_until == nil then
    probe.read_max = 4096
  end
  local ok, err = pcall(core.tcp_validate, probe)
  if not ok then fail("%s: %s", where, tostring(err):gsub("^tcp check: ", "")) end
  self.probe = probe
  self.tcp_check = kwargs.tcp_check or core.tcp_check
  self.record_up = "Check\n    " .. (kind .. " " .. o.address):gsub("%%", "%%%%")
    .. "\n    took: %s seconds"
  return self
end

-- One check: probe, judge, log, result.
local function check(self)
  local started = core.now()
  local res, err, kind, partial = self.tcp_check(self.probe)
  local duration = core.now() - started
  local took = round3(duration)
  local seen = res or partial or {}
  local r = { monitor = self.name, duration = duration, timings = seen.time, ip = seen.ip,
              size = seen.size, cert_expiry = seen.cert_expiry }
  if res then
    local up, reason = self.judge(res)
    if up then
      r.up = true
      self.logger:info_with(r, self.record_up, took)
      return r
    end
    err, kind = reason, "condition"
  end
  result.down(tostring(err), kind, r)
  self.logger:warning_with(r, "Check failed\n    %s %s\n    reason: %s\n    took: %s seconds",
    self.kind, self.address, r.reason, took)
  return r
end

---@class moonwatch.TcpMonitor: moonwatch.Monitor
local TcpMonitor = Monitor:extend("TcpMonitor")
M.TcpMonitor = TcpMonitor

--- Options: address ("host:port"), check_every (or interval), timeout (10),
--- tls, server_name, ca_file, insecure, send, read_max, read_until, expect,
--- failure_threshold, success_threshold, name, cpu_budget. Also takes
--- { options = {...}, name = ... } (as providers pass settings), and
--- tcp_check = fn in place of core.tcp_check (specs).
function TcpMonitor:new(kwargs) return new(self, kwargs, "TCP") end

TcpMonitor.check = check

---@class moonwatch.TlsMonitor: moonwatch.Monitor
local TlsMonitor = Monitor:extend("TlsMonitor")
M.TlsMonitor = TlsMonitor

--- Options: address ("host:port", port 443 by default), check_every (or
--- interval), timeout, server_name, ca_file, insecure, expect
--- (cert_valid_days, max_response_ms, check), failure_threshold,
--- success_threshold, name, cpu_budget.
function TlsMonitor:new(kwargs) return new(self, kwargs, "TLS") end

TlsMonitor.check = check

return M
