--- Results: what one check found. A result is a plain table:
---
---     { up = true|false,
---       reason = "status 500, expected 200-299",  -- when down
---       kind = "condition",                       -- when down: a failure kind
---       monitor = "example", at = <Unix time>, duration = <seconds>,
---       ... }                                     -- measurements
---
--- HttpMonitor's results also carry status, size and timings (the phase
--- times). A monitor written in Lua may return a
--- result, or, as before, a true value (up) or `nil, reason` (down); nothing
--- at all is up; a check that raises is down with the reason "error: ...".
local M = {}

local type, tostring = type, tostring

--- An up result: `fields` (a table, or nil) made into one.
---@param fields table?
---@return table
function M.up(fields)
  fields = fields or {}
  fields.up = true
  return fields
end

--- A down result with its reason and failure kind.
---@param reason string
---@param kind string? "condition", "timeout", "dns", ... (README: failure kinds)
---@param fields table?
---@return table
function M.down(reason, kind, fields)
  fields = fields or {}
  fields.up = false
  fields.reason = reason
  fields.kind = kind
  return fields
end

--- Whether x is a result (a table whose `up` is a boolean).
function M.is_result(x)
  return type(x) == "table" and type(x.up) == "boolean"
end

--- The result of what a check returned: a result as it is; nil or false
--- (with an optional reason and kind after it) down; anything else up, and
--- so is returning nothing at all (the tutorial's checks only log).
---@return table
function M.of(...)
  local first, reason, kind = ...
  if M.is_result(first) then return first end
  if select("#", ...) == 0 then return { up = true } end
  if first == nil or first == false then
    if reason == nil then
      reason = "the check returned " .. tostring(first) .. " without a reason"
    end
    return M.down(tostring(reason), type(kind) == "string" and kind or nil)
  end
  return { up = true }
end

--- The result of a check that raised `err`.
---@param err any
---@return table
function M.of_error(err)
  local msg = tostring(err):match("^[^\n]*")
  return M.down("error: " .. msg, "error")
end

return M
