-- The two tests of the tutorial moonwatch started from (DESIGN.md §1), run
-- against the root monitors.lua: swap the HTTP client for a stub and assert
-- the record; swap both monitors for spies, run the dispatcher for 0.1 s and
-- assert both were checked.
local mw = require("moonwatch")
local core = require("moonwatch.core")

-- A Lua pattern for one whole record: the template with <asctime> and
-- <seconds> standing for the values that change from run to run.
local function record_pattern(template)
  local p = template:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")
  p = p:gsub("<asctime>", "%%d%%d%%d%%d%%-%%d%%d%%-%%d%%d %%d%%d:%%d%%d:%%d%%d,%%d%%d%%d")
  p = p:gsub("<seconds>", "%%d+%%.%%d+")
  return "^" .. p .. "$"
end

describe("the tutorial", function()
  local c

  before_each(function()
    c = dofile("monitors.lua")()
    -- Test settings, as the tutorial's fixture loads them.
    c.config:from_table{
      log = { level = "INFO" },
      monitors = {
        example = { method = "GET", url = "http://example.com", timeout = 1, check_every = 1 },
        httpbin = { method = "GET", url = "https://httpbin.org/get", timeout = 1, check_every = 1 },
      },
    }
    c:init_resources()
  end)

  after_each(function()
    c:shutdown_resources()
    assert.same({ tasks = 0, handles = 0 }, core.stats())
  end)

  it("logs the example monitor's check (HTTP client stubbed)", function()
    local stub = {
      request = function() return { status = 200, size = 635 } end,
    }
    local cap <close> = mw.log.capture()
    do
      local _ <close> = c.http_client:override(stub)
      local _ <close> = c.config.monitors.example.url:override("http://fake-example.com")
      local monitor = c.example_monitor()
      core.run(function() monitor:check() end)
    end

    assert.equal(1, #cap)
    local text = cap[1].text
    assert.truthy(text:find("GET http://fake-example.com", 1, true))
    assert.truthy(text:find("response code: 200", 1, true))
    assert.truthy(text:find("content length: 635", 1, true))
    assert.matches(record_pattern(table.concat({
      "[<asctime>] [INFO] [HttpMonitor]: Check",
      "    GET http://fake-example.com",
      "    response code: 200",
      "    content length: 635",
      "    request took: <seconds> seconds",
      "",
    }, "\n")), text)
  end)

  it("runs both monitors from the dispatcher (monitors stubbed)", function()
    local example = { interval = 5, check = spy.new(function() end) }
    local httpbin = { interval = 5, check = spy.new(function() end) }
    local cap <close> = mw.log.capture()
    do
      local _ <close> = c:override_providers{ example_monitor = example, httpbin_monitor = httpbin,
        endpoint = mw.Endpoint{ listen = "127.0.0.1:0" } }
      local dispatcher = c.dispatcher()
      core.run(function()
        dispatcher:start()
        core.sleep(0.1)
        dispatcher:stop()
      end)
    end

    assert.spy(example.check).was.called()
    assert.spy(httpbin.check).was.called()
    assert.spy(example.check).was.called_with(example)
    local messages = {}
    for i, rec in ipairs(cap) do messages[i] = rec.message end
    assert.matches("^Listening on 127%.0%.0%.1:%d+$", messages[2])
    table.remove(messages, 2)
    assert.same({ "Starting up", "Shutting down", "Shutdown finished successfully" }, messages)
  end)
end)
