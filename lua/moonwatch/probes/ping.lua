--- PingMonitor: ICMP echo requests per check (core.ping), judged by its
--- conditions (at least one reply by default).
---
---     mw.PingMonitor{ name = "gateway", host = "192.0.2.1", count = 3,
---       expect = { max_loss = 0, max_rtt_ms = 50 } }
---
--- max_loss is a percentage (0 to 100) of the echo requests sent. A ping
--- with no reply at all is down with kind "timeout", whatever max_loss
--- says; more loss than max_loss is kind "loss"; a failed max_rtt_ms or
--- check is "condition".
local core = require("moonwatch.core")
local conditions = require("moonwatch.conditions")
local monitors = require("moonwatch.monitors")
local result = require("moonwatch.result")
local base = require("moonwatch.probes.base")

local util = conditions.util
local format = string.format

local PingMonitor = monitors.Monitor:extend("PingMonitor")

PingMonitor.OPTIONS = { "host", "count", "interval" }
PingMonitor.DEFAULT_EVERY = 60
PingMonitor.DEFAULT_TIMEOUT = 1

local function percent(x) return util.number_text(math.floor(x * 10 + 0.5) / 10) end

local function compile_max_loss(v)
  if type(v) ~= "number" or v ~= v or v < 0 or v > 100 then
    util.bad("must be a percentage from 0 to 100 (of the echo requests sent), got %s",
      util.show(v))
  end
  return function(r)
    local sent, received = r.sent or 0, r.received or 0
    if received == 0 then
      return format("no reply to %d echo request%s", sent, sent == 1 and "" or "s"), "timeout"
    end
    if (r.loss or 0) <= v then return nil end
    return format("loss %s%% (%d of %d lost), expected at most %s%%", percent(r.loss),
      sent - received, sent, util.number_text(v)), "loss"
  end
end

local function compile_max_rtt_ms(v)
  local limit = util.positive_number(v, "a number of milliseconds")
  local shown = util.number_text(limit)
  return function(r)
    local rtt = r.rtt
    if not rtt then return nil end -- no reply: max_loss says so
    if rtt.max * 1000 < limit then return nil end
    return format("the slowest reply took %.1f ms, expected below %s ms", rtt.max * 1000, shown)
  end
end

PingMonitor.CONDITIONS = { "max_loss", "max_rtt_ms", "check" }

--- Compiles a PingMonitor's expect into a judge (conditions.compiler).
PingMonitor.compile = conditions.compiler{
  keys = PingMonitor.CONDITIONS,
  compilers = { max_loss = compile_max_loss, max_rtt_ms = compile_max_rtt_ms,
                check = util.check },
  defaults = { max_loss = compile_max_loss(100) },
  example = "max_loss = 0, max_rtt_ms = 50, ...",
}

--- Options: host (a name or an address, required), count (3), interval
--- (1 s between requests), timeout (1 s for each reply), check_every (60 s),
--- expect, name, cpu_budget, failure_threshold, success_threshold.
--- kwargs.ping replaces core.ping (specs).
function PingMonitor:new(kwargs)
  local o, where, got, path = base.options(self, kwargs, PingMonitor.OPTIONS, { "ping" })
  if type(o.host) ~= "string" or o.host == "" then
    error(format("%s.host must be a host name or an IP address, got %s", where, got("host")), 0)
  end
  local opts = { host = o.host, count = o.count or 3, interval = o.interval or 1,
                 timeout = o.timeout or PingMonitor.DEFAULT_TIMEOUT }
  base.checked(core.ping_check, opts, where)
  local obj = base.monitor(self, kwargs, o, where, got, path, o.host, PingMonitor.DEFAULT_EVERY,
    { host = o.host })
  local judge, bad = PingMonitor.compile(o.expect, where)
  if not judge then error(bad, 0) end
  obj.judge = judge
  obj.options = opts
  obj.ping = kwargs.ping or core.ping
  return obj
end

--- Pings, judges the replies and logs one record (INFO up, WARNING down).
--- Returns the result: up, reason and kind when down, monitor, address,
--- sent, received, loss (%), rtt = { min, avg, max } (seconds, when a
--- reply came), rtts, duration.
function PingMonitor:check()
  local started = core.now()
  local p, err, kind = self.ping(self.options)
  local duration = core.now() - started
  local took = monitors.round3(duration)
  if not p then
    local r = result.down(tostring(err), kind, { monitor = self.name, duration = duration })
    self.logger:warning_with(r, "Check failed\n    PING %s\n    error: %s\n"
      .. "    ping took: %s seconds", self.options.host, r.reason, took)
    return r
  end
  local up, reason, why_kind = self.judge(p)
  local r = { up = up, monitor = self.name, address = p.address, sent = p.sent,
              received = p.received, loss = p.loss, rtt = p.rtt, rtts = p.rtts,
              duration = duration }
  local fields = { monitor = self.name, address = p.address, sent = p.sent,
                   received = p.received, loss = p.loss, rtt = p.rtt, duration = duration }
  local rtt = p.rtt and format("%.3f/%.3f/%.3f ms", p.rtt.min * 1000, p.rtt.avg * 1000,
    p.rtt.max * 1000) or "none"
  if up then
    self.logger:info_with(fields, "Check\n    PING %s (%s)\n    received: %d of %d\n"
      .. "    rtt min/avg/max: %s", self.options.host, p.address, p.received, p.sent, rtt)
  else
    r.reason, r.kind = reason, why_kind or "condition"
    fields.reason, fields.kind = r.reason, r.kind
    self.logger:warning_with(fields, "Check failed\n    PING %s (%s)\n    received: %d of %d\n"
      .. "    reason: %s", self.options.host, p.address, p.received, p.sent, reason)
  end
  return r
end

return PingMonitor
