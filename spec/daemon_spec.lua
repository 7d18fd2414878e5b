-- The `moonwatch` daemon end to end: it starts, checks the local fixture,
-- and on SIGTERM/SIGINT cancels what is in flight, logs its shutdown and
-- exits 0. Runs the real executable (MOONWATCH_BIN, else build/moonwatch).
local http = require("socket.http")
local fixture = require("support.fixture")

local daemon = require("support.daemon")
local CONFIGS = "spec/fixtures/configs/"
local wait_for, messages, now = daemon.wait_for, daemon.messages, daemon.now
local ASCTIME = daemon.ASCTIME

-- Requests the fixture has read so far, this one included.
local function requests_seen(srv)
  local body = http.request(srv:url("/stats"))
  return tonumber(body and body:match('"requests": (%d+)'))
end

describe("moonwatch daemon", function()
  local srv
  local daemons = daemon.group()

  local function run(args, env) return daemons:start(args, env) end

  lazy_setup(function() srv = fixture.start() end)
  lazy_teardown(function() if srv then srv:stop() end end)
  after_each(function() daemons:cleanup() end)

  it("starts, checks, and on SIGTERM shuts down and exits 0", function()
    local d = run({ CONFIGS .. "good.lua" }, { FIXTURE_URL = srv.base })
    d:wait_output("content length: 648")
    d:signal("TERM")
    local rc = d:wait_exit()
    assert.equal(0, rc)
    local out = d:stdout()
    assert.same({ "Starting up", "Check", "Shutting down", "Shutdown finished successfully" },
      messages(out))
    assert.matches("^" .. ASCTIME .. " %[INFO%] %[Dispatcher%]: Starting up\n", out)
    assert.matches("\n" .. ASCTIME .. " %[INFO%] %[Dispatcher%]: Shutting down\n"
      .. ASCTIME .. " %[INFO%] %[Dispatcher%]: Shutdown finished successfully\n$", out)
    assert.equal("", d:stderr())
  end)

  it("checks at the interval, from the start of the previous check", function()
    local d = run({ "--set", "monitors.example.check_every=0.2", CONFIGS .. "good.lua" },
      { FIXTURE_URL = srv.base })
    d:wait_output("content length: 648", 4)
    local elapsed = now() - d.started
    d:signal("TERM")
    assert.equal(0, (d:wait_exit()))
    -- 4 checks at 0, 0.2, 0.4, 0.6 s
    assert.is_true(elapsed >= 0.55 and elapsed < 3, "4 checks took " .. elapsed .. " s")
  end)

  it("cancels a request in flight on SIGTERM, well before its timeout", function()
    local before, polls = requests_seen(srv), 0
    local d = run({ "monitors.lua" }, {
      MOONWATCH_MONITORS__EXAMPLE__URL = srv:url("/page"),
      MOONWATCH_MONITORS__HTTPBIN__URL = srv:url("/hang"),
      MOONWATCH_MONITORS__HTTPBIN__TIMEOUT = "30",
      MOONWATCH_SERVER__LISTEN = "127.0.0.1:0",
    })
    d:wait_output("content length: 648")
    -- both requests reached the server: /hang is in flight
    assert.truthy(wait_for(5, function()
      polls = polls + 1
      return requests_seen(srv) - before - polls >= 2
    end))
    d:signal("TERM")
    local rc, took = d:wait_exit()
    assert.equal(0, rc)
    assert.is_true(took < 2, "shutdown took " .. took .. " s")
    local out = d:stdout()
    local seen = messages(out)
    seen[2] = seen[2]:gsub(":%d+$", ":PORT")
    assert.same({ "Starting up", "Listening on 127.0.0.1:PORT", "Check", "Shutting down",
                  "Shutdown finished successfully" }, seen)
    assert.is_nil(out:find("/hang", 1, true)) -- cancelled, not failed
    assert.equal("", d:stderr())
  end)

  it("stops on SIGINT too", function()
    local d = run({ CONFIGS .. "good.lua" }, { FIXTURE_URL = srv.base })
    d:wait_output("content length: 648")
    d:signal("INT")
    assert.equal(0, (d:wait_exit()))
    assert.same({ "Starting up", "Check", "Shutting down", "Shutdown finished successfully" },
      messages(d:stdout()))
  end)

  it("with no monitors starts, stops and exits 0 at once", function()
    local d = run({ CONFIGS .. "empty.lua" })
    local rc, took = d:wait_exit()
    assert.equal(0, rc)
    assert.is_true(took < 2, "took " .. took .. " s")
    assert.same({ "Starting up", "Shutting down", "Shutdown finished successfully" },
      messages(d:stdout()))
    assert.equal("", d:stderr())
  end)

  it("runs the default monitors.lua offline: clear failures, then a clean stop", function()
    -- .invalid names never resolve (RFC 6761): nothing reaches the internet.
    local d = run({ "monitors.lua" }, {
      MOONWATCH_MONITORS__EXAMPLE__URL = "http://example.invalid",
      MOONWATCH_MONITORS__HTTPBIN__URL = "https://httpbin.invalid/get",
      MOONWATCH_SERVER__LISTEN = "127.0.0.1:0",
    })
    d:wait_output("Check failed", 2, 12)
    d:signal("TERM")
    assert.equal(0, (d:wait_exit()))
    local out = d:stdout()
    for _, url in ipairs{ "http://example.invalid", "https://httpbin.invalid/get" } do
      assert.matches("\n" .. ASCTIME .. " %[WARNING%] %[HttpMonitor%]: Check failed\n"
        .. "    GET " .. url:gsub("%p", "%%%0") .. "\n"
        .. "    error: %l+: [^\n]+\n"
        .. "    request took: %d+%.%d+ seconds\n", out)
    end
    local list = messages(out)
    assert.equal("Starting up", list[1])
    assert.same({ "Shutting down", "Shutdown finished successfully" }, { list[#list - 1],
      list[#list] })
    assert.equal("", d:stderr())
  end)
end)
