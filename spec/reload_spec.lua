-- Reloading the configuration of a running daemon (SIGHUP): the real
-- executable, the local fixture server, and waits on the daemon's records
-- or the fixture's counts (other processes), never sleeps.
local core = require("moonwatch.core")
local cjson = require("cjson")
local daemon = require("support.daemon")
local fixture = require("support.fixture")

-- A monitors file: HttpMonitors from the settings table `monitors` (names
-- in `order`), with a webhook alert when `hook` is set.
local TEMPLATE = [[
local mw = require("moonwatch")
local providers = mw.providers
local order = %s
local config = providers.Configuration {
  log = { level = "INFO", format = "[%%(levelname)s] [%%(name)s]: %%(message)s" },
  monitors = %s,
}
return mw.container(function(c)
  c.config = config
  c.logging = providers.Resource(mw.log.setup, { level = config.log.level,
                                                 format = config.log.format })
  c.http_client = providers.Singleton(mw.http.Client)
  local list = {}
  for i, name in ipairs(order) do
    list[i] = providers.Factory(mw.monitors.HttpMonitor, {
      http_client = c.http_client, options = config.monitors[name] })
  end
  c.state = providers.Singleton(mw.State)
  local consumers = { c.state }
  local hook = %q
  if hook ~= "" then
    c.alerts = providers.Singleton(mw.Alerts, { state = c.state, notifiers = {
      mw.Alerts.notifiers.Webhook{ name = "ops", url = hook } } })
    consumers[2] = c.alerts
  end
  c.dispatcher = providers.Factory(mw.Dispatcher, {
    monitors = providers.List(table.unpack(list)),
    consumers = providers.List(table.unpack(consumers)),
  })
end)
]]

-- Lua source of a value (strings, numbers, booleans, tables of them).
local function lua(v)
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) ~= "table" then return tostring(v) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local parts = {}
  for _, k in ipairs(keys) do
    local key = type(k) == "number" and "" or ("[" .. string.format("%q", k) .. "] = ")
    parts[#parts + 1] = key .. lua(v[k])
  end
  return "{ " .. table.concat(parts, ", ") .. " }"
end

-- monitors: a list of { name, options }.
local function source(monitors, hook)
  local order, settings = {}, {}
  for i, m in ipairs(monitors) do
    order[i] = m[1]
    settings[m[1]] = m[2]
  end
  return TEMPLATE:format(lua(order), lua(settings), hook or "")
end

-- Replaces the file at once (a rename), as an editor saving it does.
local function write(path, text)
  local f = assert(io.open(path .. ".tmp", "w"))
  f:write(text)
  f:close()
  assert(os.rename(path .. ".tmp", path))
end

-- A request from the spec's side, with a loop turn of its own.
local function get(url)
  local resp, err
  core.spawn(function() resp, err = core.http_request{ url = url, timeout = 2 } end)
  core.run()
  return assert(resp, err)
end

local function count(text, needle)
  local _, n = text:gsub(needle:gsub("%p", "%%%0"), "")
  return n
end

describe("reload by SIGHUP", function()
  local srv, dir, path
  local group = daemon.group()

  lazy_setup(function() srv = fixture.start() end)
  lazy_teardown(function() if srv then srv:stop() end end)
  before_each(function()
    dir = fixture.tmpdir()
    path = dir .. "/monitors.lua"
  end)
  after_each(function()
    group:cleanup()
    fixture.rmtree(dir)
  end)

  local function http(url, every, extra)
    local o = { url = url, timeout = 5, check_every = every }
    for k, v in pairs(extra or {}) do o[k] = v end
    return o
  end

  it("adds, changes and removes monitors; the unchanged one keeps its schedule", function()
    local keep = srv:url("/status/200?m=keep")
    local hang = srv:url("/hang?m=gone")
    write(path, source({
      { "keep", http(keep, 60) },           -- one check a minute: none more on reload
      { "slow", http(srv:url("/status/200?m=slow"), 60) },
      { "url", http(srv:url("/status/200?m=url-old"), 0.2) },
      { "gone", http(hang, 0.2, { timeout = 2 }) }, -- in flight when removed
    }))
    local d = group:start({ "--stats", path })
    d:wait_output("GET " .. srv:url("/status/200?m=url-old"), 2)
    write(path, source({
      { "keep", http(keep, 60) },
      { "slow", http(srv:url("/status/200?m=slow"), 0.2) },         -- interval
      { "url", http(srv:url("/status/503?m=url-new"), 0.2,           -- URL and expect
                    { expect = { status = 503 } }) },
      { "new", http(srv:url("/status/200?m=new"), 0.2) },
    }))
    d:signal("HUP")
    d:wait_output("Configuration reloaded: 1 added, 2 changed, 1 removed, 1 unchanged")
    -- past the removed check's 2 s timeout: 12 checks of 0.2 s after the reload
    d:wait_output("GET " .. srv:url("/status/503?m=url-new"), 12)
    d:wait_output("GET " .. srv:url("/status/200?m=new"), 10)
    d:wait_output("GET " .. srv:url("/status/200?m=slow"), 10)
    d:signal("TERM")
    assert.equals(0, d:wait_exit())
    local out = d:stdout()
    assert.equals(1, count(out, "GET " .. keep))
    assert.equals(0, count(out, "GET " .. hang))  -- cancelled, no record after
    assert.equals(0, count(out, "Check failed"))  -- the new expect holds
    assert.matches('"cancelled":[1-9]', d:stderr())
    local after = out:sub(out:find("Configuration reloaded", 1, true))
    assert.equals(0, count(after, "m=url-old"))
  end)

  it("keeps the running monitors when the new file has a syntax error or a bad setting",
  function()
    local url = srv:url("/status/200?m=a")
    write(path, source({ { "a", http(url, 0.2) } }))
    local d = group:start({ path })
    d:wait_output("GET " .. url)
    write(path, "local mw = require('moonwatch')\nreturn mw.container(function(c)\n  c.x = = 1\n"
      .. "end)\n")
    d:signal("HUP")
    d:wait_output("Configuration not reloaded")
    local out = d:stdout()
    assert.matches("%[ERROR%] %[Daemon%]: Configuration not reloaded, the running one is kept: "
      .. path:gsub("%p", "%%%0") .. ":3: unexpected symbol near '='", out)
    local seen = count(out, "GET " .. url)
    d:wait_output("GET " .. url, seen + 3)
    write(path, source({ { "a", http(url, 0.2, { timout = 1 }) } }))
    d:signal("HUP")
    d:wait_output("Configuration not reloaded", 2)
    assert.matches("Configuration not reloaded, the running one is kept: [^\n]*monitors%.a: "
      .. "unknown option 'timout' %(did you mean 'timeout'%?%)", d:stdout())
    seen = count(d:stdout(), "GET " .. url)
    d:wait_output("GET " .. url, seen + 3)
    d:signal("TERM")
    assert.equals(0, d:wait_exit())
    assert.equals(0, count(d:stdout(), "Configuration reloaded"))
  end)

  it("a DOWN monitor stays DOWN across a reload: no second alert; removed, it is resolved",
  function()
    local down = srv:url("/status/500?m=down")
    local hook = srv:url("/hook/reload")
    local function received()
      return cjson.decode(get(hook .. "/received").body).bodies
    end
    write(path, source({ { "down", http(down, 0.2) } }, hook))
    local d = group:start({ path })
    local bodies = daemon.wait_for(5, function()
      local b = received()
      return #b > 0 and b
    end)
    assert(bodies, "no alert:\n" .. d:stdout())
    assert.equals("down", cjson.decode(bodies[1]).state)
    -- changed (its interval), same class: its state is kept
    write(path, source({ { "down", http(down, 0.1) },
                         { "up", http(srv:url("/status/200?m=up"), 0.2) } }, hook))
    d:signal("HUP")
    d:wait_output("Configuration reloaded: 1 added, 1 changed, 0 removed, 0 unchanged")
    local out = d:stdout()
    local at = count(out, "GET " .. down)
    d:wait_output("GET " .. down, at + 10)
    assert.equals(1, count(d:stdout(), "down is DOWN after"))
    assert.equals(1, #received())
    -- removed: the open alert is resolved
    write(path, source({ { "up", http(srv:url("/status/200?m=up"), 0.2) } }, hook))
    d:signal("HUP")
    d:wait_output("Configuration reloaded: 0 added, 0 changed, 1 removed, 1 unchanged")
    bodies = daemon.wait_for(5, function()
      local b = received()
      return #b > 1 and b
    end)
    assert(bodies, "no resolve:\n" .. d:stdout())
    local ev = cjson.decode(bodies[2])
    assert.equals("up", ev.state)
    assert.is_true(ev.removed)
    assert.equals("removed from the configuration", ev.reason)
    d:signal("TERM")
    assert.equals(0, d:wait_exit())
  end)

  it("SIGHUP twice in a row: one reload after the other, never one inside another", function()
    local url = srv:url("/status/200?m=twice")
    write(path, source({ { "twice", http(url, 0.2) } }))
    local d = group:start({ path })
    d:wait_output("GET " .. url)
    write(path, source({ { "twice", http(url, 0.2) },
                         { "other", http(srv:url("/status/200?m=other"), 0.2) } }))
    d:signal("HUP")
    d:signal("HUP")
    d:wait_output("Configuration reloaded")
    -- the kernel may merge the two: one reload or two, each complete
    d:wait_output("GET " .. srv:url("/status/200?m=other"), 3)
    d:signal("TERM")
    assert.equals(0, d:wait_exit())
    local out = d:stdout()
    local started, done = count(out, "Reloading the configuration"),
                          count(out, "Configuration reloaded:")
    assert.is_true(started >= 1 and started <= 2, out)
    assert.equals(started, done)
    assert.matches("Configuration reloaded: 1 added, 0 changed, 0 removed, 1 unchanged", out)
    if done == 2 then
      assert.matches("Configuration reloaded: 0 added, 0 changed, 0 removed, 2 unchanged", out)
    end
    assert.equals(0, count(out, "already running"))
    assert.equals(0, count(out, "ERROR"))
  end)
end)
