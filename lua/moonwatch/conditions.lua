--- Conditions that judge an HTTP response. So far only the default:
--- a status from 200 to 299. Any `expect` table is refused with a clear
--- error rather than ignored, so no condition is silently skipped.
local suggest = require("moonwatch.suggest")

local M = { KEYS = { "status" } }

local function default_status(resp)
  local st = resp.status
  if math.type(st) == "integer" and st >= 200 and st <= 299 then return true end
  return false, string.format("status %s, expected 200-299", tostring(st))
end

--- A judge function(response) -> true | false, reason; or nil, message.
---@param expect table?
---@param where string the settings path, for messages
function M.compile(expect, where)
  if expect == nil then return default_status end
  if type(expect) ~= "table" then
    return nil, string.format("%s must be a table of conditions, got %s", where, type(expect))
  end
  local k = next(expect)
  if k ~= nil then
    return nil, string.format("%s: condition '%s' is not supported yet%s", where, tostring(k),
      suggest.hint(tostring(k), M.KEYS))
  end
  return default_status
end

--- Whether the judge reads the TLS certificate (none does yet).
function M.needs_cert() return false end

return M
