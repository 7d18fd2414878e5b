-- Dispatcher:reload's diff (matched by name, same_config), the consumers'
-- on_monitor and on_remove, HttpMonitor:same_config, State and Alerts
-- forgetting a monitor, and the Daemon's reload status and listeners.
local core = require("moonwatch.core")
local mw = require("moonwatch")
local fixture = require("support.fixture")

-- A monitor of class cls (a plain one by default) named name.
local Plain = mw.monitors.Monitor:extend("Plain")
function Plain.check() return true end
local Compared = mw.monitors.Monitor:extend("Compared")
function Compared.check() return true end
function Compared:same_config(other) return self.target == other.target end

local function plain(name, every) return Plain{ name = name, check_every = every or 60 } end
local function compared(name, target, every)
  local m = Compared{ name = name, check_every = every or 60 }
  m.target = target
  return m
end

-- A consumer that records what it hears.
local function recorder()
  local r = { calls = {} }
  function r.on_result() end
  function r:on_monitor(_, name) self.calls[#self.calls + 1] = "monitor " .. name end
  function r:on_remove(_, name, why) self.calls[#self.calls + 1] = why .. " " .. name end
  return r
end

local function names(d)
  local out = {}
  for i, check in ipairs(d.checks) do out[i] = check.name end
  return out
end

describe("Dispatcher:reload", function()
  after_each(function() core.cancel_all() end)

  it("keeps the alike, replaces the changed, removes the gone and adds the new", function()
    local keep, change, kind, gone = compared("keep", "a"), compared("change", "a"),
      compared("kind", "a"), plain("gone")
    local rec = recorder()
    local d = mw.Dispatcher{ monitors = { keep, change, kind, gone }, consumers = { rec } }
    local ids = {}
    for _, check in ipairs(d.checks) do ids[check.name] = check.id end
    rec.calls = {}
    local new_keep, new_change, new_kind, added = compared("keep", "a"), compared("change", "b"),
      plain("kind"), plain("added")
    local counts = assert(d:reload{ added, new_keep, new_change, new_kind })
    assert.same({ added = 1, changed = 2, removed = 1, unchanged = 1 }, counts)
    assert.same({ "added", "keep", "change", "kind" }, names(d))
    -- the unchanged one is the object that ran, on its schedule; the new one is dropped
    assert.equals(keep, d.monitors[2])
    assert.equals(ids.keep, d.checks[2].id)
    assert.equals(new_change, d.monitors[3])
    assert.equals(new_kind, d.monitors[4])
    assert.same({ "replaced kind", "removed gone", "monitor added", "monitor change",
                  "monitor kind" }, rec.calls)
    assert.equals(4, d:stats().monitors)
  end)

  it("treats a monitor without same_config as changed, and the very same object as unchanged",
  function()
    local m = plain("p")
    local d = mw.Dispatcher{ monitors = { m } }
    assert.same({ added = 0, changed = 1, removed = 0, unchanged = 0 }, d:reload{ plain("p") })
    local now = d.monitors[1]
    assert.same({ added = 0, changed = 0, removed = 0, unchanged = 1 }, d:reload{ now })
  end)

  it("keeps the State of a changed monitor of the same class and forgets a removed one",
  function()
    local _ <close> = mw.log.capture()
    local state = mw.State()
    local d = mw.Dispatcher{ monitors = { compared("a", 1), compared("b", 1) },
                             consumers = { state } }
    state:on_result(d.monitors[1], { monitor = "a", up = false, reason = "x" })
    state:on_result(d.monitors[2], { monitor = "b", up = false, reason = "x" })
    assert(d:reload{ compared("a", 2) })
    assert.equals("DOWN", state:get("a").state)
    assert.is_nil(state:get("b"))
    assert.equals(1, #state:all())
  end)

  it("keeps the state of a monitor whose class is declared again under the same name",
  function()
    local rec = recorder()
    local function declared()
      local cls = mw.monitors.Monitor:extend("Declared")
      cls.check = function() return true end
      return cls{ name = "d", check_every = 60 }
    end
    local d = mw.Dispatcher{ monitors = { declared() }, consumers = { rec } }
    rec.calls = {}
    assert.same({ added = 0, changed = 1, removed = 0, unchanged = 0 }, d:reload{ declared() })
    assert.same({ "monitor d" }, rec.calls) -- no on_remove: the state stays
  end)

  it("changes nothing when the new list is wrong", function()
    local m = plain("a")
    local d = mw.Dispatcher{ monitors = { m } }
    local cases = {
      { {}, "no monitors to run %(the running ones are kept" },
      { { plain("x"), plain("x") }, "monitors%[1%] and monitors%[2%] are both named 'x'" },
      { { plain("y"), 42 }, "monitors%[2%] is a number, not a monitor" },
      { { { name = "z", interval = 1 } }, "monitors%[1%] %(z%) has no check method" },
      { { { name = "z", interval = 0, check = function() end } },
        "monitors%[1%] %(z%) has no interval greater than 0" },
      { { plain("n"), { name = "b", interval = 1, cpu_budget = -1, check = function() end } },
        "cpu_budget" },
      { "all", "monitors must be a list of monitors, got string" },
    }
    for _, case in ipairs(cases) do
      local ok, err = d:reload(case[1])
      assert.is_nil(ok)
      assert.matches(case[2], err)
      assert.same({ "a" }, names(d))
      assert.equals(m, d.monitors[1])
      assert.equals(1, d:stats().monitors)
    end
  end)

  it("runs the new set on a running dispatcher; a consumer that raises is logged", function()
    local records <close> = mw.log.capture()
    local ran = {}
    local function mon(name)
      return { name = name, interval = 0.05, check = function() ran[name] = true end }
    end
    local bad = { on_result = function() end, on_remove = function() error("no") end }
    local d = mw.Dispatcher{ monitors = { mon("old") }, consumers = { bad } }
    core.spawn(function()
      d:start()
      core.sleep(0.02)
      assert(d:reload{ mon("new") })
      ran.old = nil
      core.sleep(0.12)
      d:stop()
    end)
    core.run()
    assert.is_nil(ran.old)
    assert.is_true(ran.new)
    assert.matches("on_remove of consumer 1 failed: [^\n]*no", records:text())
  end)
end)

describe("HttpMonitor:same_config", function()
  local client = mw.http.Client()
  local function http(o, c)
    return mw.monitors.HttpMonitor{ http_client = c or client, options = o }
  end
  local base = { url = "http://127.0.0.1:1/x", timeout = 5, check_every = 1,
                 expect = { status = 200 } }
  local function with(changes)
    local o = {}
    for k, v in pairs(base) do o[k] = v end
    for k, v in pairs(changes) do o[k] = v end
    return o
  end

  it("finds the same options alike, and any change (interval, URL, expect, client) not", function()
    local m = http(with{})
    assert.is_true(m:same_config(http(with{})))
    assert.is_false(m:same_config(http(with{ check_every = 2 })))
    assert.is_false(m:same_config(http(with{ url = "http://127.0.0.1:1/y" })))
    assert.is_false(m:same_config(http(with{ expect = { status = 201 } })))
    assert.is_false(m:same_config(http(with{ headers = { A = "1" } })))
    assert.is_false(m:same_config(http(with{}, mw.http.Client{ timeout = 1 })))
  end)

  it("compares the options as they were built, not as changed since", function()
    local o = with{}
    local m = http(o)
    o.url = "http://127.0.0.1:1/changed"
    assert.is_true(m:same_config(http(with{})))
  end)

  it("never finds a subclass alike (it defines its own)", function()
    local Sub = mw.monitors.HttpMonitor:extend("Sub")
    local a = Sub:new{ http_client = client, options = with{} }
    local b = Sub:new{ http_client = client, options = with{} }
    assert.is_false(a:same_config(b))
  end)
end)

describe("Alerts:on_remove", function()
  after_each(function() core.cancel_all() end)

  it("resolves an open alert of a removed monitor with its reason, and forgets it", function()
    local _ <close> = mw.log.capture()
    local sent = {}
    local notifier = { name = "rec", send = function(_, ev) sent[#sent + 1] = ev; return true end }
    local state = mw.State()
    local alerts = mw.Alerts{ state = state, notifiers = { notifier } }
    local m = plain("app")
    local d = mw.Dispatcher{ monitors = { m, plain("other") }, consumers = { state, alerts } }
    core.spawn(function()
      state:on_result(m, { monitor = "app", up = false, reason = "status 500" })
      assert(d:reload{ d.monitors[2] })
      fixture.await("the resolve", 5, function() return #sent >= 2 end)
    end)
    core.run()
    assert.equals("down", sent[1].state)
    assert.equals("up", sent[2].state)
    assert.is_true(sent[2].removed)
    assert.equals("removed from the configuration", sent[2].reason)
    assert.equals("app is no longer monitored: removed from the configuration",
      mw.Alerts.notifiers.summary(sent[2]))
    assert.is_nil(alerts:status("app"))
    alerts:on_stop()
  end)
end)

describe("Daemon:reload", function()
  local dir, path
  before_each(function()
    dir = fixture.tmpdir()
    path = dir .. "/monitors.lua"
  end)
  after_each(function() fixture.rmtree(dir) end)

  local function write(text)
    local f = assert(io.open(path, "w"))
    f:write(text)
    f:close()
  end
  local FILE = [[
local mw = require("moonwatch")
local providers = mw.providers
return mw.container(function(c)
  c.config = providers.Configuration{ m = { url = "http://127.0.0.1:1/", timeout = 1,
                                            check_every = %s } }
  c.used = providers.Resource(function()
    _G.reload_spec_inits = (_G.reload_spec_inits or 0) + 1
    return { n = 0 }
  end)
  c.http_client = providers.Singleton(mw.http.Client)
  c.a = providers.Factory(mw.monitors.HttpMonitor, { http_client = c.http_client,
                                                     options = c.config.m, used = c.used })
  c.dispatcher = providers.Factory(mw.Dispatcher, { monitors = providers.List(c.a) })
end)
]]

  local function start(sets)
    _G.reload_spec_inits = nil
    write(FILE:format("60"))
    local cli = require("moonwatch.cli")
    local c, has = cli.instantiate(assert(cli.load(path)), path, sets or {})
    assert(c, has)
    c:init_resources()
    return require("moonwatch.daemon").new{ path = path, sets = sets, container = c,
                                            dispatcher = c.dispatcher() }, c
  end

  it("returns true and the counts, or nil and the message logged; listeners hear each attempt",
  function()
    local records <close> = mw.log.capture()
    local daemon = start()
    local heard = {}
    daemon:on_reload(function(st) heard[#heard + 1] = st end)
    local t0 = daemon:reload_status().success_at
    assert.is_true(daemon:reload_status().ok)
    write(FILE:format("30"))
    local ok, counts = daemon:reload()
    assert.is_true(ok)
    assert.same({ added = 0, changed = 1, removed = 0, unchanged = 0 }, counts)
    -- the monitor's resource is the start-up one, not initialised again
    assert.equals(1, _G.reload_spec_inits)
    write(FILE:format("30") .. "x = = 1\n")
    local err
    ok, err = daemon:reload()
    assert.is_nil(ok)
    assert.matches("^" .. path:gsub("%p", "%%%0") .. ":15: <eof> expected near 'x'$", err)
    assert.matches("Configuration not reloaded, the running one is kept: "
      .. err:gsub("%p", "%%%0"), records:text())
    assert.equals(2, #heard)
    assert.is_true(heard[1].ok)
    assert.is_false(heard[2].ok)
    assert.equals(err, heard[2].error)
    local st = daemon:reload_status()
    assert.is_false(st.ok)
    assert.equals(1, st.reloads)
    assert.equals(1, st.failures)
    assert.is_true(st.success_at >= t0 and st.attempt_at >= st.success_at)
    assert.equals(30, daemon.dispatcher.monitors[1].interval)
  end)

  it("reads --set and the file again; a bad --set path fails like at start-up", function()
    local _ <close> = mw.log.capture()
    local daemon = start({ "m.check_every=5" })
    assert.equals(5, daemon.dispatcher.monitors[1].interval)
    write(FILE:format("30"))
    assert.same({ added = 0, changed = 0, removed = 0, unchanged = 1 },
      select(2, daemon:reload()))
    daemon.sets = { "m.chek_every=5" }
    local ok, err = daemon:reload()
    assert.is_nil(ok)
    assert.matches("a: m: unknown option 'chek_every' %(did you mean 'check_every'%?%)", err)
  end)

  it("never reloads inside a reload", function()
    local _ <close> = mw.log.capture()
    local daemon = start()
    local inner
    daemon:on_reload(function() end)
    local real = daemon.dispatcher.reload
    daemon.dispatcher.reload = function(d, list)
      inner = { daemon:reload() }
      return real(d, list)
    end
    assert.is_true((daemon:reload()))
    assert.same({ nil, "a reload is already running" }, inner)
  end)
end)
