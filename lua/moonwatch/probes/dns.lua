--- DnsMonitor: one DNS query per check (core.dns_query), judged by its
--- conditions (rcode NOERROR by default).
---
---     mw.DnsMonitor{ name = "www", query = "example.org", type = "A",
---       server = "127.0.0.1:53", check_every = 60,
---       expect = { answer_contains = "93.184.215.14" } }
---
--- A result carries rcode, answers (the records of the queried type, as
--- core.dns_query gives them), cnames, duration and time; a failed rcode
--- condition's kind is the rcode in lower case (nxdomain, servfail,
--- refused, ...), any other failed condition's is "condition".
local core = require("moonwatch.core")
local conditions = require("moonwatch.conditions")
local monitors = require("moonwatch.monitors")
local result = require("moonwatch.result")
local suggest = require("moonwatch.suggest")
local base = require("moonwatch.probes.base")

local util = conditions.util
local format, concat = string.format, table.concat

local DnsMonitor = monitors.Monitor:extend("DnsMonitor")

DnsMonitor.OPTIONS = { "query", "type", "server" }
DnsMonitor.TYPES = { "A", "AAAA", "CNAME", "MX", "TXT", "NS", "SOA", "SRV", "CAA" }
DnsMonitor.RCODES = { "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED",
                      "YXDOMAIN", "YXRRSET", "NXRRSET", "NOTAUTH", "NOTZONE" }
DnsMonitor.DEFAULT_EVERY = 60
DnsMonitor.DEFAULT_TIMEOUT = 5

local rcode_known = {}
for _, c in ipairs(DnsMonitor.RCODES) do rcode_known[c] = true end

---------------------------------------------------------------------------
-- Conditions

-- Names compare without case and without a trailing dot.
local function canonical(s) return (s:lower():gsub("%.$", "")) end

local function answers_seen(r)
  local answers = r.answers or {}
  if #answers == 0 then return "no answers" end
  local shown = {}
  for i = 1, math.min(#answers, 5) do shown[i] = util.quote(tostring(answers[i].data)) end
  if #answers > 5 then shown[#shown + 1] = format("and %d more", #answers - 5) end
  return "answers: " .. concat(shown, ", ")
end

local function compile_rcode(v)
  local list = util.strings(v, "an rcode name")
  local want, names = {}, {}
  for i, s in ipairs(list) do
    local code = s:upper()
    if not rcode_known[code] then
      util.bad("%s%s is not an rcode (use %s)%s", #list > 1 and format("item %d: ", i) or "",
        util.quote(s), concat(DnsMonitor.RCODES, ", "), suggest.hint(code, DnsMonitor.RCODES))
    end
    want[code], names[i] = true, code
  end
  local expected = #names == 1 and names[1]
    or concat(names, ", ", 1, #names - 1) .. " or " .. names[#names]
  return function(r)
    local rcode = r.rcode
    if want[rcode] then return nil end
    return format("rcode %s, expected %s", tostring(rcode), expected),
      rcode ~= "NOERROR" and type(rcode) == "string" and rcode:lower() or nil
  end
end

local function compile_min_answers(v)
  if math.type(v) ~= "integer" or v < 0 then
    util.bad("must be a whole number of answers (0 or more), got %s", util.show(v))
  end
  return function(r)
    local n = #(r.answers or {})
    if n >= v then return nil end
    return format("%d answer%s, expected at least %d", n, n == 1 and "" or "s", v)
  end
end

local function compile_answer_contains(v)
  local list = util.strings(v, "a string")
  local wants = {}
  for i, s in ipairs(list) do wants[i] = canonical(s) end
  return function(r)
    local answers = r.answers or {}
    for i, want in ipairs(wants) do
      local found = false
      for _, a in ipairs(answers) do
        if type(a.data) == "string" and canonical(a.data) == want then
          found = true
          break
        end
      end
      if not found then
        return format("no answer is %s (%s)", util.quote(list[i]), answers_seen(r))
      end
    end
    return nil
  end
end

local function compile_answer_matches(v)
  local list = util.strings(v, "a regular expression")
  local res = {}
  for i, pattern in ipairs(list) do res[i] = util.regex(pattern) end
  return function(r)
    local answers = r.answers or {}
    for _, re in ipairs(res) do
      local found = false
      for _, a in ipairs(answers) do
        if type(a.data) == "string" then
          local s, e = re:find(a.data)
          if s then
            found = true
            break
          elseif e then -- a match limit, not a mismatch
            return format("%s matching %s against an answer", e, tostring(re))
          end
        end
      end
      if not found then
        return format("no answer matches %s (%s)", tostring(re), answers_seen(r))
      end
    end
    return nil
  end
end

DnsMonitor.CONDITIONS = { "rcode", "min_answers", "max_response_ms", "answer_contains",
                          "answer_matches", "check" }

--- Compiles a DnsMonitor's expect into a judge (conditions.compiler).
DnsMonitor.compile = conditions.compiler{
  keys = DnsMonitor.CONDITIONS,
  compilers = {
    rcode = compile_rcode,
    min_answers = compile_min_answers,
    max_response_ms = util.max_response_ms,
    answer_contains = compile_answer_contains,
    answer_matches = compile_answer_matches,
    check = util.check,
  },
  defaults = { rcode = compile_rcode("NOERROR") },
  example = 'rcode = "NOERROR", answer_contains = "192.0.2.1", ...',
}

---------------------------------------------------------------------------
-- The monitor

--- Options: query (the name, required), type ("A"), server ("host[:port]",
--- default: the resolver's servers), timeout (5 s), check_every (60 s),
--- expect, name, cpu_budget, failure_threshold, success_threshold.
--- kwargs.dns_query replaces core.dns_query (specs).
function DnsMonitor:new(kwargs)
  local o, where, got, path = base.options(self, kwargs, DnsMonitor.OPTIONS, { "dns_query" })
  if type(o.query) ~= "string" or o.query == "" then
    error(format("%s.query must be a DNS name (a non-empty string), got %s", where,
      got("query")), 0)
  end
  local qtype = o.type or "A"
  if type(qtype) ~= "string" then
    error(format("%s.type must be one of %s, got %s", where, concat(DnsMonitor.TYPES, ", "),
      got("type")), 0)
  end
  qtype = qtype:upper()
  local query = { name = o.query, type = qtype, server = o.server,
                  timeout = o.timeout or DnsMonitor.DEFAULT_TIMEOUT }
  base.checked(core.dns_check, query, where)
  local obj = base.monitor(self, kwargs, o, where, got, path, o.query, DnsMonitor.DEFAULT_EVERY,
    { query = o.query, type = qtype, server = o.server })
  local judge, bad = DnsMonitor.compile(o.expect, where)
  if not judge then error(bad, 0) end
  obj.judge = judge
  obj.query = query
  obj.dns_query = kwargs.dns_query or core.dns_query
  obj.target = o.query .. " " .. qtype .. (o.server and (" @" .. o.server) or "")
  return obj
end

--- Sends the query, judges the answer and logs one record (INFO up,
--- WARNING down). Returns the result: up, reason and kind when down,
--- monitor, rcode, answers, cnames, duration, time.
function DnsMonitor:check()
  local started = core.now()
  local a, err, kind = self.dns_query(self.query)
  local duration = core.now() - started
  local took = monitors.round3(duration)
  if not a then
    local r = result.down(tostring(err), kind, { monitor = self.name, duration = duration })
    self.logger:warning_with(r, "Check failed\n    DNS %s\n    error: %s\n"
      .. "    query took: %s seconds", self.target, r.reason, took)
    return r
  end
  local up, reason, why_kind = self.judge(a)
  local r = { up = up, monitor = self.name, rcode = a.rcode, answers = a.answers,
              cnames = a.cnames, duration = duration, time = a.time }
  local data = {}
  for i, rec in ipairs(a.answers or {}) do data[i] = tostring(rec.data) end
  local fields = { monitor = self.name, rcode = a.rcode, answers = #data,
                   data = concat(data, ", "), duration = duration }
  if up then
    self.logger:info_with(fields, "Check\n    DNS %s\n    rcode: %s\n    answers: %s\n"
      .. "    query took: %s seconds", self.target, a.rcode, #data, took)
  else
    r.reason, r.kind = reason, why_kind or "condition"
    fields.reason, fields.kind = r.reason, r.kind
    self.logger:warning_with(fields, "Check failed\n    DNS %s\n    rcode: %s\n    reason: %s\n"
      .. "    query took: %s seconds", self.target, a.rcode, reason, took)
  end
  return r
end

return DnsMonitor
