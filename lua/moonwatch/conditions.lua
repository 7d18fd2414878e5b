-- TEMPORARY stand-in (not committed): status 200-299 only.
local M = { KEYS = { "status" } }
function M.compile(expect, where)
  if expect ~= nil and next(expect) ~= nil then return nil, where .. ": not yet" end
  return function(resp)
    local st = resp.status
    if type(st) == "number" and st >= 200 and st <= 299 then return true end
    return false, string.format("status %s, expected 200-299", tostring(st))
  end
end
function M.needs_cert() return false end
return M
