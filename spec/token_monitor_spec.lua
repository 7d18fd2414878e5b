-- examples/token_monitor.lua, a monitor written in Lua, and the container
-- of examples/token_monitors.lua: against the local fixture, then with the
-- HTTP client overridden by a stub that plays scripted responses, which is
-- how a user unit-tests a monitor.
local cjson = require("cjson")
local mw = require("moonwatch")
local core = require("moonwatch.core")
local fixture = require("support.fixture")

local BIN = os.getenv("MOONWATCH_BIN") or "build/moonwatch"

-- A stub client: answers GET <url> from `responses` (url suffix -> response,
-- or false for a failed transfer), and records the requests it was sent.
local function stub_client(responses)
  local client = {}
  client.request = spy.new(function(_, request)
    for suffix, resp in pairs(responses) do
      if request.url:sub(-#suffix) == suffix then
        if resp == false then return nil, "refused: Couldn't connect to server", "refused" end
        return resp
      end
    end
    return { status = 404, body = "", size = 0 }
  end)
  return client
end

local function json(status, value)
  local body = cjson.encode(value)
  return { status = status, body = body, size = #body }
end

describe("TokenMonitor example", function()
  local srv, c

  lazy_setup(function() srv = fixture.start() end)
  lazy_teardown(function() if srv then srv:stop() end end)

  before_each(function()
    c = dofile("examples/token_monitors.lua")()
    c:init_resources()
  end)

  after_each(function()
    c:shutdown_resources()
    assert.same({ tasks = 0, handles = 0 }, core.stats())
  end)

  -- Builds the monitor from the container and runs one check: records,
  -- and what check returned.
  local function check()
    local cap <close> = mw.log.capture()
    local monitor = c.api_monitor()
    local results
    core.run(function() results = table.pack(monitor:check()) end)
    return cap, table.unpack(results, 1, results.n)
  end

  it("checks the fixture's API with a token (two requests in a row)", function()
    local _ <close> = c.config.monitors.api.base_url:override(srv.base)
    local cap, data = check()
    assert.same({ status = "ok", items = 3 }, data)
    assert.equal(1, #cap)
    assert.equal("INFO", cap[1].level)
    assert.equal("TokenMonitor", cap[1].name)
    assert.matches("^Check\n    GET " .. srv:url("/token"):gsub("%p", "%%%0") .. "\n"
      .. "    GET " .. srv:url("/api/data"):gsub("%p", "%%%0") .. "\n"
      .. "    status: ok\n"
      .. "    request took: %d+%.%d+ seconds$", cap[1].message)
  end)

  it("logs a failure when the base URL has no token endpoint", function()
    local _ <close> = c.config.monitors.api.base_url:override(srv:url("/nothing/here"))
    local cap, data, err = check()
    assert.is_nil(data)
    assert.equal("HTTP status 404", err)
    assert.equal("WARNING", cap[1].level)
    assert.truthy(cap[1].message:find("GET " .. srv:url("/nothing/here/token"), 1, true))
  end)

  describe("with a stub HTTP client", function()
    local function with_client(client)
      local _ <close> = c.http_client:override(client)
      local _ <close> = c.config.monitors.api.base_url:override("http://api.test")
      return check()
    end

    it("sends the token it got as a Bearer token", function()
      local client = stub_client{
        ["/token"] = json(200, { token = "t0k3n" }),
        ["/api/data"] = json(200, { status = "ok", items = 1 }),
      }
      local cap, data = with_client(client)
      assert.same({ status = "ok", items = 1 }, data)
      assert.spy(client.request).was.called(2)
      assert.spy(client.request).was.called_with(client, match.is_same{
        method = "GET", url = "http://api.test/token", timeout = 5,
      })
      assert.spy(client.request).was.called_with(client, match.is_same{
        method = "GET", url = "http://api.test/api/data", timeout = 5,
        headers = { Authorization = "Bearer t0k3n" },
      })
      assert.equal("INFO", cap[1].level)
    end)

    it("logs a failure when the token is missing", function()
      local client = stub_client{
        ["/token"] = json(200, { expires = 60 }),
        ["/api/data"] = json(200, { status = "ok" }),
      }
      local cap, data, err = with_client(client)
      assert.is_nil(data)
      assert.equal("no token in the response", err)
      assert.spy(client.request).was.called(1) -- the API is not called without a token
      assert.equal(1, #cap)
      assert.equal("WARNING", cap[1].level)
      assert.matches("^Check failed\n    GET http://api%.test/token\n"
        .. "    error: no token in the response\n"
        .. "    request took: %d+%.%d+ seconds$", cap[1].message)
    end)

    it("logs a failure when the API answers 401", function()
      local cap, data, err = with_client(stub_client{
        ["/token"] = json(200, { token = "expired" }),
        ["/api/data"] = json(401, { error = "unauthorized" }),
      })
      assert.is_nil(data)
      assert.equal("HTTP status 401", err)
      assert.matches("^Check failed\n    GET http://api%.test/api/data\n"
        .. "    error: HTTP status 401\n", cap[1].message)
    end)

    it("logs a failure when the status field is not ok", function()
      local cap, data, err = with_client(stub_client{
        ["/token"] = json(200, { token = "t0k3n" }),
        ["/api/data"] = json(200, { status = "degraded", items = 0 }),
      })
      assert.is_nil(data)
      assert.equal('status is "degraded", not "ok"', err)
      assert.equal("WARNING", cap[1].level)
      assert.matches("error: status is \"degraded\", not \"ok\"\n", cap[1].message, 1, true)
    end)

    it("logs a failure when the token request fails or is not JSON", function()
      local _, data, err = with_client(stub_client{ ["/token"] = false })
      assert.is_nil(data)
      assert.equal("refused: Couldn't connect to server", err)
      _, data, err = with_client(stub_client{
        ["/token"] = { status = 200, body = "<html>", size = 6 },
      })
      assert.is_nil(data)
      assert.equal("the body is not a JSON object", err)
    end)
  end)

  describe("in the moonwatch executable", function()
    -- `moonwatch --once examples/token_monitors.lua` with the API's base URL
    -- from the environment: exit status and output (stdout and stderr).
    local function once(base_url)
      local dir = fixture.tmpdir()
      local cmd = string.format("env MOONWATCH_MONITORS__API__BASE_URL=%s %s --once %s >%s 2>&1",
        fixture.shell_quote(base_url), fixture.shell_quote(BIN), "examples/token_monitors.lua",
        fixture.shell_quote(dir .. "/out"))
      local _, _, status = os.execute(cmd)
      local f = assert(io.open(dir .. "/out"))
      local out = f:read("a")
      f:close()
      fixture.rmtree(dir)
      return status, out
    end

    it("checks the fixture and exits 0", function()
      local status, out = once(srv.base)
      assert.equal(0, status, out)
      assert.matches("^%[[^]]+%] %[INFO%] %[TokenMonitor%]: Check\n", out)
      assert.matches("    status: ok\n", out, 1, true)
    end)

    it("exits 1 on a failed check: its record, the change to DOWN, the summary", function()
      local status, out = once(srv:url("/nothing/here"))
      assert.equal(1, status, out)
      assert.matches("^%[[^]]+%] %[WARNING%] %[TokenMonitor%]: Check failed\n"
        .. "    GET [^\n]+/nothing/here/token\n"
        .. "    error: HTTP status 404\n"
        .. "    request took: %d+%.%d+ seconds\n"
        .. "%[[^]]+%] %[WARNING%] %[State%]: [^\n]+/nothing/here is DOWN after 1 failed "
        .. "check: HTTP status 404\n"
        .. "[^\n]+/nothing/here  DOWN  HTTP status 404\n$", out)
    end)
  end)
end)
