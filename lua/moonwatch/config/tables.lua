--- Table helpers for settings trees: deep copy, deep merge, path access.
local M = {}

--- Deep copy (shared and cyclic sub-tables stay shared and cyclic).
---@param v any
---@param seen table?
---@return any
function M.deepcopy(v, seen)
  if type(v) ~= "table" then return v end
  seen = seen or {}
  if seen[v] then return seen[v] end
  local out = {}
  seen[v] = out
  for k, x in pairs(v) do out[M.deepcopy(k, seen)] = M.deepcopy(x, seen) end
  return setmetatable(out, getmetatable(v))
end

--- A non-empty table whose keys are exactly 1..#t.
---@param t table
---@return boolean
function M.is_sequence(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n > 0 and n == #t
end

--- Merge `src` into `dst` (both settings trees): tables merge key by key,
--- except arrays, which replace (a list of hosts is a value, not a map);
--- everything else replaces. `src` is copied, never shared.
---@param dst table
---@param src table
---@return table dst
function M.merge(dst, src)
  for k, v in pairs(src) do
    if type(v) == "table" and type(dst[k]) == "table" and not M.is_sequence(v) then
      M.merge(dst[k], v)
    else
      dst[k] = M.deepcopy(v)
    end
  end
  return dst
end

--- Render a path (`log.level`, `hosts[1]`) after an optional root name.
---@param root string?
---@param path any[]
---@param upto integer? render only the first `upto` segments
---@return string
function M.path_string(root, path, upto)
  local out = root or ""
  for i = 1, upto or #path do
    local k = path[i]
    if type(k) == "string" and k:match("^[%a_][%w_]*$") then
      out = out == "" and k or (out .. "." .. k)
    elseif math.type(k) == "integer" then
      out = out .. "[" .. k .. "]"
    else
      out = out .. string.format("[%q]", tostring(k))
    end
  end
  return out
end

--- Read the value at `path`. On a missing value also returns the index of
--- the segment that met a non-table (nil when the path simply ends).
---@param tree any
---@param path any[]
---@return any value, integer? blocked_at
function M.get(tree, path)
  local v = tree
  for i = 1, #path do
    if type(v) ~= "table" then
      if v == nil then return nil end
      return nil, i - 1
    end
    v = v[path[i]]
  end
  return v
end

--- Set the value at `path`, creating intermediate tables. Returns
--- `nil, message` when an intermediate value is not a table.
---@param tree table
---@param path any[]
---@param value any
---@return true|nil ok, string? message
function M.set(tree, path, value)
  local t = tree
  for i = 1, #path - 1 do
    local k = path[i]
    local nxt = t[k]
    if nxt == nil then
      nxt = {}
      t[k] = nxt
    elseif type(nxt) ~= "table" then
      return nil, string.format("%s is a %s, not a table", M.path_string(nil, path, i), type(nxt))
    end
    t = nxt
  end
  t[path[#path]] = value
  return true
end

return M
