--- "Did you mean": the closest of some known names to a misspelt one.
---
---     suggest.closest("folow_redirects", { "follow_redirects", "verify" })
---     --> "follow_redirects"
---     suggest.hint("helth", names) --> " (did you mean 'health'?)" or ""
---
--- And how to show a value that has the wrong type, for the same messages:
---
---     "got " .. suggest.describe("2")           --> got "2" (a string)
---     "got " .. suggest.describe(2, "--set")    --> got 2 (a number, from --set)
local M = {}

--- Optimal string alignment distance (Levenshtein plus transpositions).
---@param a string
---@param b string
---@return integer
function M.distance(a, b)
  local la, lb = #a, #b
  if la == 0 then return lb end
  if lb == 0 then return la end
  local prev2, prev, cur = {}, {}, {}
  for j = 0, lb do prev[j] = j end
  for i = 1, la do
    cur[0] = i
    local ca = a:byte(i)
    for j = 1, lb do
      local cb = b:byte(j)
      local cost = ca == cb and 0 or 1
      local d = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
      if i > 1 and j > 1 and ca == b:byte(j - 1) and a:byte(i - 1) == cb then
        d = math.min(d, prev2[j - 2] + 1)
      end
      cur[j] = d
    end
    prev2, prev, cur = prev, cur, prev2
  end
  return prev[lb]
end

--- The known name closest to `name`, or nil when none is close (at most a
--- third of the name's length, and at least 1, edits away). Ties go to the
--- first in `known`; case is ignored.
---@param name string
---@param known string[]
---@return string?
function M.closest(name, known)
  local best, best_d
  local lname = name:lower()
  local limit = math.max(1, #name // 3)
  for _, k in ipairs(known) do
    local d = M.distance(lname, k:lower())
    if d <= limit and (not best_d or d < best_d) then best, best_d = k, d end
  end
  return best
end

--- " (did you mean 'x'?)" for the closest known name, else "".
---@param name string
---@param known string[]
---@return string
function M.hint(name, known)
  local best = M.closest(name, known)
  return best and string.format(" (did you mean '%s'?)", best) or ""
end

local SHOWN = 60 -- bytes of a value shown; the rest is cut with "…"
local ESCAPES = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r",
                  ["\t"] = "\\t" }
local function escape(c) return ESCAPES[c] or string.format("\\x%02x", c:byte()) end

--- A string for messages, on one line: in double quotes, control bytes
--- escaped (`"a\nb"`, `"\x00"`), cut after 60 bytes (never inside a UTF-8
--- sequence) with "…", so a body or a hostile value cannot flood a record.
---@param s string
---@return string
function M.quote(s)
  local cut = #s > SHOWN
  if cut then
    local n = SHOWN
    while n > 0 and (s:byte(n + 1) & 0xC0) == 0x80 do n = n - 1 end
    s = s:sub(1, n)
  end
  return '"' .. s:gsub('[%c"\\]', escape) .. (cut and '…"' or '"')
end

local articles = { string = "a string", number = "a number", boolean = "a boolean" }

--- A value as given, with its type and, when known, where it came from
--- (`config.source`): `"2" (a string)`, `true (a boolean, from --set)`,
--- `a table (from file settings.lua)`, `nil`. Strings are quoted so that
--- "2" and 2 read differently.
---@param value any
---@param source string? such as "--set" or "environment MOONWATCH_X"
---@return string
function M.describe(value, source)
  local from = source and (", from " .. source) or ""
  local t = type(value)
  if t == "string" then return string.format("%s (a string%s)", M.quote(value), from) end
  if t == "number" or t == "boolean" then
    return string.format("%s (%s%s)", tostring(value), articles[t], from)
  end
  if value == nil then return "nil" end
  return "a " .. t .. (source and (" (from " .. source .. ")") or "")
end

return M
