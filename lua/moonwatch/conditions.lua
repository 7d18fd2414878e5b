--- Conditions: when an HTTP response counts as up. Declared as plain data
--- (from monitors.lua or settings), compiled once into a judge:
---
---     local judge, err = conditions.compile({ status = "2xx",
---       body_contains = "ok", json = { ["$.status"] = "ok" } }, "monitors.api")
---     local up, reason = judge(response) --> false, 'status 503, expected 2xx'
---
--- Conditions are tried in the order of `KEYS` (cheap ones first, the user's
--- `check` last); the first that fails gives the reason. The success path of
--- status, time, size, certificate, header and contains checks builds no
--- string and makes no closure: reasons are built only on failure. Regular
--- expressions are PCRE2 (core.regex), compiled here, once. The README's
--- "Conditions" section documents every condition and its reason text.
local core = require("moonwatch.core")
local suggest = require("moonwatch.suggest")

local M = {}

--- The known conditions, in the order they are tried.
M.KEYS = { "status", "max_response_ms", "body_size", "cert_valid_days", "header",
           "body_contains", "body_not_contains", "body_matches", "body_not_matches",
           "json", "check" }

local find, format, floor, mtype = string.find, string.format, math.floor, math.type

-- Judges that read the certificate; weak, and only those are in it.
local cert_judges = setmetatable({}, { __mode = "k" })

---------------------------------------------------------------------------
-- Showing values in reasons and errors

local quote = suggest.quote

local function number_text(n)
  if math.type(n) == "integer" then return tostring(n) end
  return format("%.14g", n)
end

--- Any Lua value as a message shows it: strings quoted, numbers plain,
--- tables and functions by their type.
local function show(v)
  local t = type(v)
  if t == "string" then return quote(v) end
  if t == "number" then return number_text(v) end
  if t == "nil" or t == "boolean" then return tostring(v) end
  return "a " .. t
end

---------------------------------------------------------------------------
-- Compile-time errors: raised inside compile as a table, returned as a string

local Bad = {}
local function bad(fmt, ...) error(setmetatable({ msg = format(fmt, ...) }, Bad), 0) end

local function is_list(t)
  return type(t) == "table" and (t[1] ~= nil or next(t) == nil)
end

-- A string or a non-empty list of strings, as a list.
local function strings(v, what)
  if type(v) == "string" then v = { v } end
  if not is_list(v) or #v == 0 then
    bad("must be %s or a list of them, got %s", what,
      type(v) == "table" and (next(v) == nil and "an empty table" or "a table") or show(v))
  end
  for i, s in pairs(v) do
    if math.type(i) ~= "integer" or i < 1 or i > #v then
      bad("must be %s or a list of them, got a table with key %s", what, show(i))
    end
    if type(s) ~= "string" then bad("item %d must be %s, got %s", i, what, show(s)) end
    if s == "" then bad("item %d is empty (an empty string is in every body)", i) end
  end
  return v
end

-- A compiled regex; a bad pattern is a compile error naming it.
local function regex(pattern)
  if type(pattern) ~= "string" then bad("a regular expression must be a string, got %s",
    show(pattern)) end
  local re, err = core.regex(pattern)
  if not re then bad("%s", err) end
  return re
end

---------------------------------------------------------------------------
-- status

local STATUS_HINT = 'a status code (200), a class ("2xx"), a range ("200-299" or "200..299")'
  .. " or a list of those"

local function status_code(v)
  local n = math.tointeger(v)
  if n and n >= 100 and n <= 599 then return n end
end

-- One item: lo, hi and how it is shown.
local function status_item(v)
  local code = type(v) == "number" and status_code(v)
  if code then return code, code, tostring(code) end
  if type(v) == "string" then
    local s = v:match("^%s*(.-)%s*$")
    local class = s:match("^([1-5])[xX][xX]$")
    if class then
      local lo = tonumber(class) * 100
      return lo, lo + 99, class .. "xx"
    end
    local a, b = s:match("^(%d%d%d)%s*%-%s*(%d%d%d)$")
    if not a then a, b = s:match("^(%d%d%d)%s*%.%.%s*(%d%d%d)$") end
    local lo, hi = status_code(tonumber(a)), status_code(tonumber(b))
    if lo and hi and lo <= hi then return lo, hi, lo .. "-" .. hi end
    if lo and hi then bad("%s is a range from high to low (write %d-%d)", quote(v), hi, lo) end
    code = s:match("^%d+$") and status_code(tonumber(s))
    if code then return code, code, tostring(code) end
  end
  bad("%s is not %s", show(v), STATUS_HINT)
end

-- "200", "200 or 204", "200, 204 or 3xx"
local function either(list)
  if #list == 1 then return list[1] end
  return table.concat(list, ", ", 1, #list - 1) .. " or " .. list[#list]
end

local function compile_status(v)
  local items = v
  if type(v) ~= "table" then items = { v } end
  if not is_list(items) or #items == 0 then bad("must be %s, got a table", STATUS_HINT) end
  local lo, hi, shown = {}, {}, {}
  for i, item in ipairs(items) do lo[i], hi[i], shown[i] = status_item(item) end
  local n, expected = #lo, either(shown)
  if n == 1 then -- the common case, the default among them: no loop
    local l, h = lo[1], hi[1]
    return function(r)
      local s = r.status
      if mtype(s) == "integer" and s >= l and s <= h then return nil end
      return format("status %s, expected %s", show(s), expected)
    end
  end
  return function(r)
    local s = r.status
    if mtype(s) == "integer" then
      for i = 1, n do
        if s >= lo[i] and s <= hi[i] then return nil end
      end
    end
    return format("status %s, expected %s", show(s), expected)
  end
end

local DEFAULT_STATUS = compile_status("200-299")

---------------------------------------------------------------------------
-- time, size, certificate

local function positive_number(v, what)
  if type(v) ~= "number" or v ~= v or v <= 0 or v == math.huge then -- v ~= v: NaN
    bad("must be %s greater than 0, got %s", what, show(v))
  end
  return v
end

local function compile_max_response_ms(v)
  local limit = positive_number(v, "a number of milliseconds")
  local shown = number_text(limit)
  return function(r)
    local t = r.time
    local total = t and t.total
    if type(total) ~= "number" then
      return format("response time unknown, expected below %s ms", shown)
    end
    if total * 1000 < limit then return nil end
    return format("response took %.0f ms, expected below %s ms", total * 1000, shown)
  end
end

local function byte_count(v, what)
  if math.type(v) ~= "integer" or v < 0 then
    bad("%s must be a whole number of bytes (0 or more), got %s", what, show(v))
  end
  return v
end

local function compile_body_size(v)
  if type(v) ~= "table" then
    bad("must be a table { min = bytes, max = bytes }, got %s", show(v))
  end
  for k in pairs(v) do
    if k ~= "min" and k ~= "max" then
      bad("unknown key %s (use min and max)%s", show(k),
        type(k) == "string" and suggest.hint(k, { "min", "max" }) or "")
    end
  end
  local min = v.min ~= nil and byte_count(v.min, "min") or nil
  local max = v.max ~= nil and byte_count(v.max, "max") or nil
  if not min and not max then bad("needs min, max or both") end
  if min and max and min > max then bad("min (%d) is above max (%d)", min, max) end
  min, max = min or 0, max or math.maxinteger
  return function(r)
    local size = r.size or (r.body and #r.body) or 0
    if size < min then return format("body is %d bytes, expected at least %d", size, min) end
    if size > max then return format("body is %d bytes, expected at most %d", size, max) end
    return nil
  end
end

local DAY = 86400

local function compile_cert_valid_days(v)
  if type(v) ~= "number" or v ~= v or v < 0 or v == math.huge then
    bad("must be a number of days (0 or more), got %s", show(v))
  end
  local days, shown = v, number_text(v)
  return function(r)
    local expiry = r.cert_expiry
    if type(expiry) ~= "number" then
      if type(r.url) == "string" and r.url:match("^[Hh][Tt][Tt][Pp]:") then
        return "no certificate: the response came over plain http (" .. r.url .. ")"
      end
      return "no certificate information in the response (the request needs cert_info = true)"
    end
    local left = (expiry - os.time()) / DAY
    if left > days then return nil end
    local date = os.date("!%Y-%m-%dT%H:%M:%SZ", expiry)
    if left < 0 then
      -- "-0.0 days" and rounding up are both misleading: tenths, toward 0
      return format("certificate expired %.1f days ago (%s), expected more than %s",
        floor(-left * 10) / 10, date, shown)
    end
    return format("certificate expires in %.1f days (%s), expected more than %s",
      floor(left * 10) / 10, date, shown)
  end
end

---------------------------------------------------------------------------
-- body

-- What the reason of a failed body condition says of the body.
local function body_seen(r)
  local body = r.body or ""
  local seen = body == "" and "the body is empty" or ("it starts " .. quote(body))
  if r.truncated then
    seen = format("%s; only the first %d bytes were kept (max_body)", seen, #body)
  end
  return seen
end

local function compile_body_contains(v)
  local list = strings(v, "a string")
  local n = #list
  return function(r)
    local body = r.body or ""
    for i = 1, n do
      if not find(body, list[i], 1, true) then
        return format("body does not contain %s (%s)", quote(list[i]), body_seen(r))
      end
    end
    return nil
  end
end

local function compile_body_not_contains(v)
  local list = strings(v, "a string")
  local n = #list
  return function(r)
    local body = r.body or ""
    for i = 1, n do
      local at = find(body, list[i], 1, true)
      if at then return format("body contains %s at offset %d", quote(list[i]), at - 1) end
    end
    return nil
  end
end

local function compile_regexes(v)
  local list = strings(v, "a regular expression")
  local res = {}
  for i, pattern in ipairs(list) do
    local ok, re = pcall(regex, pattern)
    if not ok then
      if getmetatable(re) == Bad and #list > 1 then re.msg = format("item %d: %s", i, re.msg) end
      error(re, 0)
    end
    res[i] = re
  end
  return res
end

local function limit_reason(re, what, err)
  return format("%s matching %s against the %s", err, tostring(re), what)
end

local function compile_body_matches(v)
  local res = compile_regexes(v)
  local n = #res
  return function(r)
    local body = r.body or ""
    for i = 1, n do
      local s, err = res[i]:find(body)
      if not s then
        if err then return limit_reason(res[i], "body", err) end
        return format("body does not match %s (%s)", tostring(res[i]), body_seen(r))
      end
    end
    return nil
  end
end

local function compile_body_not_matches(v)
  local res = compile_regexes(v)
  local n = #res
  return function(r)
    local body = r.body or ""
    for i = 1, n do
      local s, e = res[i]:find(body)
      if s then
        return format("body matches %s at offset %d: %s", tostring(res[i]), s - 1,
          quote(body:sub(s, e)))
      elseif e then
        return limit_reason(res[i], "body", e)
      end
    end
    return nil
  end
end

---------------------------------------------------------------------------
-- header

local function compile_header(v)
  if type(v) ~= "table" or next(v) == nil or is_list(v) then
    bad("must map header names to true (present), false (absent), a string (equal) or"
      .. " { matches = \"regex\" }, got %s", type(v) ~= "table" and show(v)
      or next(v) == nil and "an empty table" or "a list")
  end
  local names, wants, res = {}, {}, {}
  for name in pairs(v) do
    if type(name) ~= "string" or not name:match("^[%w!#$%%&'*+.^_`|~-]+$") then
      bad("%s is not a header name", show(name))
    end
    names[#names + 1] = name
  end
  table.sort(names)
  for i, name in ipairs(names) do
    local want = v[name]
    if type(want) == "table" then
      local ok, re = pcall(function()
        for k in pairs(want) do
          if k ~= "matches" then bad("unknown key %s (use matches)", show(k)) end
        end
        return regex(want.matches)
      end)
      if not ok then
        if getmetatable(re) == Bad then re.msg = format("[%s]: %s", quote(name), re.msg) end
        error(re, 0)
      end
      res[i] = re
    elseif type(want) ~= "boolean" and type(want) ~= "string" then
      bad('[%s]: must be true (present), false (absent), a string (equal) or'
        .. ' { matches = "regex" }, got %s', quote(name), show(want))
    end
    wants[i] = want
    names[i] = name:lower()
  end
  local n = #names
  return function(r)
    local headers = r.headers or {}
    for i = 1, n do
      local name, want, got = names[i], wants[i], headers[names[i]]
      if want == true then
        if got == nil then return format("header %s is missing", name) end
      elseif want == false then
        if got ~= nil then return format("header %s is %s, expected absent", name, quote(got)) end
      elseif res[i] then
        if got == nil then
          return format("header %s is missing, expected to match %s", name, tostring(res[i]))
        end
        local s, err = res[i]:find(got)
        if not s then
          if err then return limit_reason(res[i], "header " .. name, err) end
          return format("header %s is %s, expected to match %s", name, quote(got),
            tostring(res[i]))
        end
      elseif got ~= want then
        if got == nil then
          return format("header %s is missing, expected %s", name, quote(want))
        end
        return format("header %s is %s, expected %s", name, quote(got), quote(want))
      end
    end
    return nil
  end
end

---------------------------------------------------------------------------
-- json: paths

local KEY, INDEX, ALL = 1, 2, 3

local function key_text(k)
  if type(k) == "number" then return "[" .. k .. "]" end
  if k:match("^[%a_][%w_]*$") then return "." .. k end
  return "['" .. k:gsub("[\\']", "\\%0") .. "']"
end

--- Parses a JSON path into steps: kinds[i] (KEY, INDEX or ALL) and args[i].
local function parse_path(p)
  local function fail(why, at)
    bad("bad JSON path %s: %s%s", quote(p), why, at and (" at offset " .. at) or "")
  end
  if p:sub(1, 1) ~= "$" then
    fail("it must start with $" .. (p:match("^[%a_]") and (" ($." .. p .. ")") or ""))
  end
  local kinds, args = {}, {}
  local i, len = 2, #p
  while i <= len do
    local c = p:sub(i, i)
    if c == "." then
      if p:sub(i + 1, i + 1) == "." then fail("recursive descent (..) is not supported", i - 1) end
      if p:sub(i + 1, i + 1) == "*" then
        kinds[#kinds + 1], i = ALL, i + 2
      else
        local name = p:match("^[^%.%[%]%s'\"*]+", i + 1)
        if not name then fail("expected a name after '.'", i) end
        kinds[#kinds + 1], args[#kinds + 1] = KEY, name
        i = i + 1 + #name
      end
    elseif c == "[" then
      local q = p:sub(i + 1, i + 1)
      if q == "*" and p:sub(i + 2, i + 2) == "]" then
        kinds[#kinds + 1], i = ALL, i + 3
      elseif q == "'" or q == '"' then
        local j, key = i + 2, {}
        while true do
          local ch = p:sub(j, j)
          if ch == "" then fail("the quoted name is not closed", i) end
          if ch == q then break end
          if ch == "\\" then
            j = j + 1
            ch = p:sub(j, j)
            if ch ~= "\\" and ch ~= "'" and ch ~= '"' then
              fail("unknown escape (use \\\\, \\' or \\\")", j - 2)
            end
          end
          key[#key + 1] = ch
          j = j + 1
        end
        if p:sub(j + 1, j + 1) ~= "]" then fail("expected ']'", j) end
        kinds[#kinds + 1], args[#kinds + 1] = KEY, table.concat(key)
        i = j + 2
      else
        local num = p:match("^%-?%d+", i + 1)
        if not num then
          if q == "?" then fail("filters ([?...]) are not supported", i - 1) end
          fail("expected a number, * or a quoted name after '['", i)
        end
        local after = p:sub(i + 1 + #num, i + 1 + #num)
        if after == ":" then fail("slices are not supported", i + #num) end
        if after == "," then fail("unions are not supported", i + #num) end
        if after ~= "]" then fail("expected ']'", i + #num) end
        kinds[#kinds + 1], args[#kinds + 1] = INDEX, math.tointeger(tonumber(num))
        i = i + 2 + #num
      end
    else
      fail(format("unexpected %s", quote(c)), i - 1)
    end
  end
  return kinds, args
end

-- The path of the value after `upto - 1` steps (upto = 1: "$"), for
-- reasons. A wildcard among the first `walked - 1` steps shows the element
-- it was at (c.at); one not walked yet shows as [*].
local function path_text(c, upto, walked)
  local parts = { "$" }
  for j = 1, upto - 1 do
    if c.kinds[j] == ALL then
      parts[#parts + 1] = j < walked and key_text(c.at[j]) or "[*]"
    else
      parts[#parts + 1] = key_text(c.args[j])
    end
  end
  return table.concat(parts)
end

---------------------------------------------------------------------------
-- json: expectations

local cjson -- loaded by the first json condition

local function is_null(v) return v == cjson.null end

local function value_text(v)
  if type(v) == "table" then
    if v[1] ~= nil then return "an array" end
    if next(v) ~= nil then return "an object" end
    return "an empty array or object"
  end
  if is_null(v) then return "null" end
  return show(v)
end

-- Tests: function(value, want) -> true when the value passes.
local tests = {
  eq = function(v, want) return v == want end,
  ne = function(v, want) return v ~= want end,
  lt = function(v, want) return type(v) == "number" and v < want end,
  le = function(v, want) return type(v) == "number" and v <= want end,
  gt = function(v, want) return type(v) == "number" and v > want end,
  ge = function(v, want) return type(v) == "number" and v >= want end,
  exists = function() return true end,
  absent = function() return false end,
  matches = function(v, re)
    if type(v) ~= "string" then return false end
    local s, err = re:find(v)
    if s then return true end
    return false, err
  end,
}

local OPS = { ["<="] = "le", [">="] = "ge", ["=="] = "eq", ["!="] = "ne", ["<"] = "lt",
              [">"] = "gt" }

local COMPARISON_HINT = 'after %s put a number, true, false, null or a "quoted string"'

--- An expected value: its test, the value tested against, and its text.
local function expectation(want)
  local t = type(want)
  if t == "boolean" or t == "number" then return tests.eq, want, show(want) end
  if t == "table" then
    for k in pairs(want) do
      if k ~= "matches" then
        bad("unknown key %s in an expected value (use matches)", show(k))
      end
    end
    local re = regex(want.matches)
    return tests.matches, re, "to match " .. tostring(re)
  end
  if t ~= "string" then
    bad("expected value must be a string, a number, a boolean or { matches = \"regex\" },"
      .. " got %s", show(want))
  end
  if want == "exists" or want == "absent" then return tests[want], nil, want end
  local op, rest = want:match("^%s*([<>=!]=?)%s*(.-)%s*$")
  if not op or not OPS[op] then return tests.eq, want, quote(want) end
  local name = OPS[op]
  local n = tonumber(rest)
  if n then return tests[name], n, op .. " " .. number_text(n) end
  if name ~= "eq" and name ~= "ne" then
    bad("bad comparison %s: expected a number after %s (for the string itself, write"
      .. " '== \"...\"')", quote(want), op)
  end
  if rest == "true" or rest == "false" then
    return tests[name], rest == "true", op .. " " .. rest
  end
  if rest == "null" then return tests[name], cjson.null, op .. " null" end
  if rest:match('^".*"$') then
    local s = cjson.decode(rest)
    if type(s) == "string" then return tests[name], s, op .. " " .. quote(s) end
  end
  bad("bad comparison %s: " .. COMPARISON_HINT, quote(want), op)
end

-- Walks c's path from step k in node: nil when every value it selects
-- passes c's test, else the reason.
local function walk(c, node, k)
  if k > c.n then
    local ok, err = c.test(node, c.want)
    if ok then return nil end
    local path = c.path or path_text(c, k, k)
    if err then return format("%s: %s", path, limit_reason(c.want, "value", err)) end
    return format("%s is %s, expected %s", path, value_text(node), c.text)
  end
  local kind, arg = c.kinds[k], c.args[k]
  if type(node) ~= "table" then
    if c.absent then return nil end
    return format("%s is missing (%s is %s)", c.path or path_text(c, c.n + 1, k),
      path_text(c, k, k), value_text(node))
  end
  if kind == ALL then
    local any = false
    if node[1] ~= nil or next(node) == nil then
      for i = 1, #node do
        any = true
        c.at[k] = i - 1
        local why = walk(c, node[i], k + 1)
        if why then return why end
      end
    else
      for key, v in pairs(node) do
        any = true
        c.at[k] = key
        local why = walk(c, v, k + 1)
        if why then return why end
      end
    end
    if any or c.absent then return nil end
    return format("%s selects nothing (%s is %s)", path_text(c, k + 1, k), path_text(c, k, k),
      value_text(node))
  end
  local child
  if kind == KEY then
    child = node[arg]
  elseif arg >= 0 then
    child = node[arg + 1]
  else
    child = node[#node + arg + 1]
  end
  if child == nil then
    if c.absent then return nil end
    local path = c.path or path_text(c, c.n + 1, k)
    if kind == INDEX and (node[1] ~= nil or next(node) == nil) then
      return format("%s is missing (%s has %d items)", path, path_text(c, k, k), #node)
    end
    if k == c.n then return path .. " is missing" end
    return format("%s is missing (%s is missing)", path, path_text(c, k + 1, k))
  end
  return walk(c, child, k + 1)
end

local function compile_json(v)
  if type(v) ~= "table" or next(v) == nil or is_list(v) then
    bad('must map JSON paths to expected values, e.g. { ["$.status"] = "ok" }, got %s',
      type(v) ~= "table" and show(v) or next(v) == nil and "an empty table" or "a list")
  end
  if not cjson then
    local ok, mod = pcall(require, "cjson.safe")
    if not ok then bad("needs lua-cjson (Debian package lua-cjson): %s", tostring(mod)) end
    cjson = mod
  end
  local paths = {}
  for p in pairs(v) do
    if type(p) ~= "string" then
      bad("%s is not a JSON path (a string like \"$.status\")", show(p))
    end
    paths[#paths + 1] = p
  end
  table.sort(paths)
  local conds = {}
  for i, p in ipairs(paths) do
    local ok, err = pcall(function()
      local kinds, args = parse_path(p)
      local c = { kinds = kinds, args = args, n = #kinds, at = {} }
      c.test, c.want, c.text = expectation(v[p])
      c.absent = c.test == tests.absent
      local wild = false
      for _, kind in ipairs(kinds) do wild = wild or kind == ALL end
      -- a path without wildcards is always shown the same: made once
      if not wild then c.path = path_text(c, c.n + 1, 1) end
      conds[i] = c
    end)
    if not ok then
      if getmetatable(err) == Bad and not err.msg:find("^bad JSON path") then
        err.msg = format("[%s]: %s", quote(p), err.msg)
      end
      error(err, 0)
    end
  end
  local decode, n = cjson.decode, #conds
  return function(r)
    local doc, err = decode(r.body or "")
    if doc == nil and err then
      local reason = "body is not JSON: " .. tostring(err)
      if r.truncated then reason = reason .. " (the body was cut at max_body)" end
      return reason
    end
    for i = 1, n do
      local why = walk(conds[i], doc, 1)
      if why then return why end
    end
    return nil
  end
end

---------------------------------------------------------------------------
-- check: any Lua function of the response

local function compile_check(fn)
  if type(fn) ~= "function" then bad("must be a function(response), got %s", show(fn)) end
  return function(r)
    local ok, res, why = pcall(fn, r)
    if not ok then return "check raised: " .. tostring(res) end
    if res == true then return nil end
    if res == false or res == nil then
      if why ~= nil then return tostring(why) end
      return res == false and "check returned false" or "check returned nil"
    end
    return format("check returned %s, expected true, or false and a reason", show(res))
  end
end

---------------------------------------------------------------------------

local COMPILERS = {
  status = compile_status,
  max_response_ms = compile_max_response_ms,
  body_size = compile_body_size,
  cert_valid_days = compile_cert_valid_days,
  header = compile_header,
  body_contains = compile_body_contains,
  body_not_contains = compile_body_not_contains,
  body_matches = compile_body_matches,
  body_not_matches = compile_body_not_matches,
  json = compile_json,
  check = compile_check,
}

-- Builds a judge from expect for a kind of probe (see M.compiler).
local function build(kind, expect, where)
  local prefix = where and (where .. ".expect") or "expect"
  if type(expect) == "function" then expect = { check = expect } end
  if expect == nil then expect = {} end
  if type(expect) ~= "table" then
    return nil, format("%s: must be a table of conditions (or a function), got %s", prefix,
      show(expect))
  end
  for k, v in pairs(expect) do
    if type(k) ~= "string" then
      return nil, format("%s: conditions are named (%s), got %s = %s", prefix, kind.example,
        show(k), show(v))
    end
    if not kind.compilers[k] then
      return nil, format("%s: unknown condition '%s'%s", where or "expect", k,
        suggest.hint(k, kind.keys))
    end
  end
  local checks = {}
  for _, key in ipairs(kind.keys) do
    local v = expect[key]
    if v ~= nil then
      local ok, check = pcall(kind.compilers[key], v)
      if not ok then
        if getmetatable(check) ~= Bad then error(check, 0) end
        local sep = check.msg:sub(1, 1) == "[" and "" or ": "
        return nil, format("%s.%s%s%s", prefix, key, sep, check.msg)
      end
      checks[#checks + 1] = check
    elseif kind.defaults and kind.defaults[key] then
      checks[#checks + 1] = kind.defaults[key]
    end
  end
  local n = #checks
  if n == 0 then return function() return true end end
  if n == 1 then
    local only = checks[1]
    return function(response)
      local why, why_kind = only(response)
      if why then return false, why, why_kind end
      return true
    end
  end
  return function(response)
    for i = 1, n do
      local why, why_kind = checks[i](response)
      if why then return false, why, why_kind end
    end
    return true
  end
end

--- A compile function for another kind of probe (TCP, DNS, ...):
---     local compile = conditions.compiler{ keys = { "reply_contains", "check" },
---       compilers = { reply_contains = fn, check = conditions.util.check },
---       example = 'reply_contains = "+PONG"' }
---     local judge, err = compile(expect, "monitors.redis")
--- keys: the conditions in the order they are tried; compilers[key](value)
--- returns check(result) -> nil | reason[, kind] and raises with util.bad on
--- a bad value; defaults[key]: a check used when expect does not set key.
--- The judge returns true | false, reason, kind (the failing check's kind,
--- nil when it gave none: the monitor's default, "condition").
---@param kind {keys: string[], compilers: table, defaults?: table, example?: string}
---@return fun(expect: table|function|nil, where?: string): (function|nil), string?
function M.compiler(kind)
  kind.example = kind.example or "see the README's conditions"
  return function(expect, where) return build(kind, expect, where) end
end

local HTTP = {
  keys = M.KEYS,
  compilers = COMPILERS,
  defaults = { status = DEFAULT_STATUS },
  example = 'status = 200, body_contains = "ok", ...',
}

--- Compiles an HTTP monitor's conditions into a judge: function(response)
--- -> true | false, reason. `expect` is nil or {} (status 200-299), a table
--- of conditions, or a function (a `check`). `where` prefixes the error
--- messages ("monitors.example").
---@param expect table|function|nil
---@param where? string
---@return (fun(response: table): boolean, string?)|nil judge
---@return string? error
local default_judge -- expect = nil: one judge for every monitor

function M.compile(expect, where)
  if expect == nil and default_judge then return default_judge end
  local judge, err = build(HTTP, expect, where)
  if not judge then return nil, err end
  if type(expect) == "table" and expect.cert_valid_days ~= nil then cert_judges[judge] = true end
  if expect == nil then default_judge = judge end
  return judge
end

--- What other kinds' compilers build on: bad(fmt, ...) raises a compile
--- error; show(v) and number_text(n) write values into reasons; strings(v,
--- what) and regex(pattern) read common values; positive_number(v, what);
--- check compiles the `check` condition (any Lua function of the result);
--- max_response_ms reads result.time.total; cert_valid_days reads
--- result.cert_expiry.
M.util = {
  bad = bad, show = show, quote = quote, number_text = number_text, strings = strings,
  regex = regex, positive_number = positive_number, is_list = is_list,
  check = compile_check, max_response_ms = compile_max_response_ms,
  cert_valid_days = compile_cert_valid_days,
}

--- Whether judge reads the certificate (the request must set cert_info).
---@param judge function
---@return boolean
function M.needs_cert(judge)
  return cert_judges[judge] == true
end

return M
