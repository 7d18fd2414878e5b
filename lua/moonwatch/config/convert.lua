--- Conversions applied by option references (`:as_int()`, ...). Each takes
--- a non-nil value and, optionally, where it came from (`config.source`:
--- "--set", "environment MOONWATCH_X", "file settings.lua"), and returns the
--- converted value, or nil and a message quoting the value as given.
local suggest = require("moonwatch.suggest")

local M = {}

--- "got ..." for a value a conversion refused. A value of a type the
--- conversion takes (a string "5.5" for an integer) is quoted as it is;
--- one of another type has its type named too (`got true (a boolean)`),
--- since that is what is wrong. The source follows either way.
---@param v any
---@param source string?
---@param takes table<string, boolean> the types the conversion accepts
---@return string
local function got(v, source, takes)
  if not takes[type(v)] then return "got " .. suggest.describe(v, source) end
  local shown = type(v) == "string" and suggest.quote(v) or tostring(v)
  return "got " .. shown .. (source and (" (from " .. source .. ")") or "")
end

local SCALARS = { string = true, number = true }

---@return integer|nil, string?
function M.integer(v, source)
  local n = v
  if type(v) == "string" then n = tonumber(v) end
  local i = type(n) == "number" and math.tointeger(n) or nil
  if i == nil then return nil, "expected an integer, " .. got(v, source, SCALARS) end
  return i
end

---@return number|nil, string?
function M.number(v, source)
  local n = v
  if type(v) == "string" then n = tonumber(v) end
  if type(n) ~= "number" then return nil, "expected a number, " .. got(v, source, SCALARS) end
  return n
end

local words = {
  ["true"] = true, yes = true, on = true, ["1"] = true,
  ["false"] = false, no = false, off = false, ["0"] = false,
}

---@return boolean|nil, string?
function M.boolean(v, source)
  if type(v) == "boolean" then return v end
  local b
  if type(v) == "string" then
    b = words[v:lower()]
  elseif v == 1 or v == 0 then
    b = v == 1
  end
  if b == nil then
    return nil, "expected a boolean (true/false, yes/no, on/off, 1/0), "
      .. got(v, source, SCALARS)
  end
  return b
end

---@return string|nil, string?
function M.string(v, source)
  if type(v) == "string" then return v end
  if type(v) == "number" or type(v) == "boolean" then return tostring(v) end
  return nil, "expected a string, " .. got(v, source, SCALARS)
end

local units = { ms = 0.001, s = 1, m = 60, h = 3600, d = 86400 }

--- Durations in seconds: a number (seconds) or a string of one or more
--- `<number><unit>` parts, unit one of ms, s, m, h, d (`5s`, `250ms`, `1m30s`,
--- `1d`); a bare numeral means seconds. Never negative.
---@return number|nil, string?
function M.duration(v, source)
  local bad = "expected a duration such as 5s, 250ms or 1m30s, " .. got(v, source, SCALARS)
  if type(v) == "number" then
    if v < 0 or v ~= v then return nil, bad end
    return v
  end
  if type(v) ~= "string" then return nil, bad end
  local s = v:match("^%s*(.-)%s*$")
  local plain = tonumber(s)
  if plain and s:match("^[%d.]+$") then return plain end
  if s == "" then return nil, bad end
  local total, pos = 0, 1
  while pos <= #s do
    local num, unit, nxt = s:match("^(%d+%.?%d*)(%a+)()", pos)
    if not num then num, unit, nxt = s:match("^(%.%d+)(%a+)()", pos) end
    local factor = unit and units[unit]
    if not factor then return nil, bad end
    total = total + tonumber(num) * factor
    pos = nxt
  end
  return total
end

return M
