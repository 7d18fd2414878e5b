-- TokenMonitor: a monitor written in Lua that makes two requests in a row.
-- It fetches a token (GET <base_url>/token -> {"token": "..."}), then calls
-- the API with it (GET <base_url>/api/data, Authorization: Bearer <token>)
-- and checks that the JSON answer says {"status": "ok"}. Each request just
-- yields the check's task, so the check reads as straight-line code.
local cjson = require("cjson")
local mw = require("moonwatch")
local core = mw.core

local TokenMonitor = mw.monitors.Monitor:extend("TokenMonitor")

--- kwargs: http_client, and options = {base_url, timeout, check_every}.
function TokenMonitor:new(kwargs)
  local o = kwargs.options
  if type(o.base_url) ~= "string" then error("options.base_url must be a URL string", 0) end
  self = mw.monitors.Monitor.new(self, { check_every = o.check_every, name = o.base_url })
  self.http_client = kwargs.http_client
  self.token_url = o.base_url .. "/token"
  self.data_url = o.base_url .. "/api/data"
  self.timeout = o.timeout
  -- the same table every check: the client reuses its connection
  self.token_request = { method = "GET", url = self.token_url, timeout = o.timeout }
  return self
end

-- Sends the request: the decoded JSON object, or nil and what went wrong.
local function get_json(client, request)
  local resp, err = client:request(request)
  if not resp then return nil, err end
  if resp.status ~= 200 then return nil, "HTTP status " .. tostring(resp.status) end
  local ok, data = pcall(cjson.decode, resp.body or "")
  if not ok or type(data) ~= "table" then return nil, "the body is not a JSON object" end
  return data
end

function TokenMonitor:check()
  local started = core.now()
  local function took() return mw.monitors.round3(core.now() - started) end
  local function failed(url, why)
    self.logger:warning("Check failed\n    GET %s\n    error: %s\n    request took: %s seconds",
      url, why, took())
    return nil, why
  end

  local auth, err = get_json(self.http_client, self.token_request)
  if not auth then return failed(self.token_url, err) end
  if type(auth.token) ~= "string" or auth.token == "" then
    return failed(self.token_url, "no token in the response")
  end

  local data
  data, err = get_json(self.http_client, {
    method = "GET", url = self.data_url, timeout = self.timeout,
    headers = { Authorization = "Bearer " .. auth.token },
  })
  if not data then return failed(self.data_url, err) end
  if data.status ~= "ok" then
    return failed(self.data_url, "status is " .. cjson.encode(data.status) .. ", not \"ok\"")
  end

  self.logger:info("Check\n    GET %s\n    GET %s\n    status: ok\n    request took: %s seconds",
    self.token_url, self.data_url, took())
  return data
end

return TokenMonitor
