-- The README's "Alerts" section run as it is: its first lines, put in the
-- default monitors.lua, make the daemon POST an alert to a local webhook;
-- its maintenance lines hold the alerts of the monitors in a window.
local cjson = require("cjson")
local core = require("moonwatch.core")
local mw = require("moonwatch")
local daemon = require("support.daemon")
local fixture = require("support.fixture")

local function read(path)
  local f = assert(io.open(path))
  local text = f:read("a")
  f:close()
  return text
end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

-- The lua blocks of the README's "## Alerts", in order.
local function blocks()
  local text = read("README.md")
  local start = assert(text:find("\n## Alerts\n", 1, true), "no README section Alerts")
  local stop = text:find("\n##", start + 1, true) or #text
  local list = {}
  for b in text:sub(start, stop):gmatch("```lua\n(.-)```") do list[#list + 1] = b end
  return list
end

local function replace(text, old, new)
  local s, e = text:find(old, 1, true)
  assert(s, "not found: " .. old)
  return text:sub(1, s - 1) .. new .. text:sub(e + 1)
end

-- monitors.lua with the README's first alert in place of c.state and
-- c.dispatcher (and, when given, `config_lines` at the top of its settings).
local function configured(config_lines)
  local first = blocks()[1]
  local text = read("monitors.lua")
  local s = assert(text:find("  -- Each monitor's state", 1, true))
  local e = assert(text:find("\nend)", s, true))
  text = text:sub(1, s - 1) .. first .. text:sub(e + 1)
  if config_lines then
    text = replace(text, "local config = providers.Configuration {\n",
      "local config = providers.Configuration {\n" .. config_lines)
  end
  return text
end

-- The same with the README's maintenance settings and wiring.
local function with_windows()
  local settings, wiring
  for _, b in ipairs(blocks()) do
    settings = settings or b:match("providers%.Configuration {\n(  maintenance = .-)  %-%- log")
    if b:find("c.windows", 1, true) then wiring = b end
  end
  assert(settings and wiring, "no maintenance blocks")
  return replace(configured(settings), blocks()[1]:match("  c%.alerts = .-}%)\n"), wiring)
end

local function received(srv, name)
  local r
  core.run(function()
    r = assert(core.http_request{ url = srv:url("/hook/" .. name .. "/received"), timeout = 5 })
  end)
  return cjson.decode(r.body)
end

describe("README Alerts", function()
  local srv, dir
  local daemons = daemon.group()
  before_each(function()
    srv = fixture.start()
    dir = fixture.tmpdir()
  end)
  after_each(function()
    daemons:cleanup()
    core.cancel_all()
    srv:stop()
    fixture.rmtree(dir)
  end)

  it("has a first alert in under ten lines", function()
    local _, lines = blocks()[1]:gsub("\n", "")
    assert.is_true(lines < 10, lines .. " lines")
  end)

  it("sends the first alert to a webhook from the environment", function()
    local path = dir .. "/monitors.lua"
    write(path, configured())
    local failing = srv:url("/status/500")
    local d = daemons:start({ path }, {
      OPS_WEBHOOK_URL = srv:url("/hook/first"),
      MOONWATCH_MONITORS__EXAMPLE__URL = failing,
      MOONWATCH_MONITORS__EXAMPLE__CHECK_EVERY = "0.05",
      MOONWATCH_MONITORS__HTTPBIN__URL = srv:url("/status/200"),
    })
    local got = daemon.wait_for(10, function()
      local r = received(srv, "first")
      return #r.bodies > 0 and r
    end)
    assert.is_truthy(got, "no alert reached the webhook:\n" .. d:stderr())
    assert.equal(1, #got.bodies)
    local event = cjson.decode(got.bodies[1])
    assert.equal("example", event.monitor)
    assert.equal("down", event.state)
    assert.equal("status 500, expected 200-299", event.reason)
    assert.equal(failing, event.url)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", event.since)
    assert.matches("example is DOWN after 3 failed checks", d:stdout() .. d:stderr())
  end)

  it("stops --check at a bad maintenance window, with its place", function()
    local path = dir .. "/monitors.lua"
    write(path, with_windows():gsub('every = "day"', 'every = "dya"', 1))
    local p = assert(io.popen(("env OPS_WEBHOOK_URL=%s %s --check %s 2>&1; echo rc=$?"):format(
      fixture.shell_quote(srv:url("/hook/x")), fixture.shell_quote(daemon.BIN),
      fixture.shell_quote(path))))
    local out = p:read("a")
    p:close()
    assert.matches('maintenance%[1%]%.every: unknown day or set of days "dya"', out)
    assert.matches("rc=1\n$", out)
  end)

  it("holds the alerts of a monitor in a maintenance window from the settings", function()
    local path = dir .. "/monitors.lua"
    write(path, with_windows())
    local c = mw.testing.load(path)()
    assert.same({ "nightly", "move" }, { c.windows().windows[1].name,
      c.windows().windows[2].name })
    local now = os.time()
    local _ <close> = c.config.maintenance:override({
      { name = "now", start = now - 60, ["end"] = now + 3600, monitors = { "example" } },
    })
    local m = c.config.monitors
    local _ <close> = m.example.url:override(srv:url("/status/500"))
    local _ <close> = m.example.check_every:override(0.05)
    local _ <close> = m.httpbin.url:override(srv:url("/status/500"))
    local _ <close> = m.httpbin.check_every:override(0.05)
    local d
    local function down(name)
      local e = c.state():get(name)
      return e and e.state == "DOWN"
    end
    local rec
    local function maybe_stop()
      if down("example") and down("httpbin") and #rec.events > 0 then d:stop() end
    end
    rec = mw.Alerts.notifiers.Recorder{ name = "webhook", on_send = maybe_stop }
    local _ <close> = c.webhook:override(rec)
    c.state():on_change({ on_change = maybe_stop })
    local _ <close> = mw.log.capture()
    d = c.dispatcher()
    d:start()
    core.run()
    assert.same({ "httpbin down" }, rec:summary())
    assert.equal("status 500, expected 200-299", rec.events[1].reason)
    assert.equal("maintenance", c.alerts():status("example"))
    assert.equal("down", c.alerts():status("httpbin"))
  end)
end)
