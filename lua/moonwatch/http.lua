--- The HTTP client monitors use: defaults merged into each request, and one
--- prepared request kept per options table (in the table itself), so a
--- monitor that sends the same request every interval prepares it once and
--- reuses its connection.
---
---     local client = mw.http.Client{ timeout = 5 }
---     local resp, err, kind = client:request{ method = "GET", url = url }
---
--- Expected failures come back as `nil, "<kind>: message", kind`; see the
--- README for the response fields and failure kinds.
local core = require("moonwatch.core")

local M = {}

---@class moonwatch.http.Client
---@field defaults table
local Client = {}
Client.__index = Client

---@param defaults? table options applied to every request (timeout, verify, ca_file, headers...)
---@return moonwatch.http.Client
function M.Client(defaults)
  if defaults ~= nil and type(defaults) ~= "table" then
    error("http.Client: defaults must be a table, got " .. type(defaults), 2)
  end
  return setmetatable({
    defaults = defaults or {},
    -- The prepared request of an options table is kept in that table under
    -- this client's own key: no weak table, which with 10,000 monitors made
    -- every collection cycle end in a 20 ms pause.
    slot = setmetatable({}, { __name = "moonwatch.http.Client slot" }),
  }, Client)
end

local function merged(defaults, opts)
  local out = {}
  for k, v in pairs(defaults) do out[k] = v end
  for k, v in pairs(opts) do
    if type(k) == "string" then out[k] = v end -- not a client's slot
  end
  return out
end

--- Checks request options as the request would, sending nothing: true, or
--- nil and the message the request would raise.
---@param opts table
---@return true|nil ok
---@return string? message
function Client:check(opts)
  local ok, err = pcall(core.http_check, merged(self.defaults, opts))
  if ok then return true end
  return nil, err
end

--- A request object to `:perform()` again and again.
---@param opts table
function Client:prepare(opts)
  return core.http_prepare(merged(self.defaults, opts))
end

--- Sends a request from the current task and waits for the response.
--- The same `opts` table sent again reuses its prepared handle.
---@param opts table
---@return table|nil response, string? message, string? kind
function Client:request(opts)
  local req = rawget(opts, self.slot)
  if req == nil then
    req = self:prepare(opts)
    rawset(opts, self.slot, req)
  elseif req:busy() then
    -- the same table in flight from another task: a one-shot request
    return core.http_request(merged(self.defaults, opts))
  end
  return req:perform()
end

return M
