-- mw.Alerts.SqliteStore: the engine's store interface in a SQLite file,
-- answered from memory at once and written by one task in order.
local core = require("moonwatch.core")
local mw = require("moonwatch")
local fixture = require("support.fixture")

local SqliteStore = mw.Alerts.SqliteStore

local function row(id, monitor, state, created)
  return { id = id, item = { event = { monitor = monitor, state = state }, created = created } }
end

describe("alerts SqliteStore", function()
  local dir, path
  before_each(function()
    dir = fixture.tmpdir()
    path = dir .. "/alerts.db"
  end)
  after_each(function()
    core.cancel_all()
    fixture.rmtree(dir)
  end)

  it("answers at once, writes in order off the caller's task, and reloads it all", function()
    local s = SqliteStore.open(path)
    assert.is_not_nil(io.open(path)) -- a missing file is created
    s:save_state("app", { state = "DOWN", since = 100, reason = "status 500" })
    s:mark_sent("app", { since = 100, reason = "status 500", at = 101 })
    s:mark_sent("db", { since = 90, reason = "timeout", at = 91 })
    local a = s:outbox_add("ops", { event = { monitor = "app", state = "down" }, created = 101 })
    local b = s:outbox_add("ops", { event = { monitor = "db", state = "down" }, created = 102 })
    local c = s:outbox_add("mail", { event = { monitor = "app", state = "down" }, created = 103 })
    s:outbox_remove("ops", a)
    s:mark_sent("db", nil)
    -- no task ran yet: memory answers, the writes wait for the writer
    assert.equal(100, s:sent("app").since)
    assert.is_nil(s:sent("db"))
    assert.same({ row(b, "db", "down", 102) }, s:outbox_load("ops"))
    assert.equal(8, s:pending())
    core.run()
    assert.equal(0, s:pending())
    s:close()

    local t = SqliteStore.open(path)
    assert.same({ since = 100, reason = "status 500", at = 101 }, t:sent("app"))
    assert.is_nil(t:sent("db"))
    assert.same({ app = { state = "DOWN", since = 100, reason = "status 500" } }, t:load_states())
    assert.same({ row(b, "db", "down", 102) }, t:outbox_load("ops"))
    assert.same({ row(c, "app", "down", 103) }, t:outbox_load("mail"))
    assert.same({}, t:outbox_load("other"))
    -- ids go on growing: the order of arrival survives the restart
    local d = t:outbox_add("ops", { event = { monitor = "x", state = "up" }, created = 1 })
    assert.is_true(d > c)
    core.run()
    t:close()
  end)

  it("opens and writes from inside a task too", function()
    core.run(function()
      local s = SqliteStore.open(path)
      s:mark_sent("app", { since = 1, at = 2 })
      return true
    end)
    local s = SqliteStore.open(path)
    assert.same({ since = 1, at = 2 }, s:sent("app"))
    s:close()
  end)

  it("reports a corrupt file, moves it aside and starts afresh", function()
    local f = assert(io.open(path, "wb"))
    f:write(string.rep("not a database ", 512))
    f:close()
    local records <close> = mw.log.capture()
    local s = SqliteStore.open(path)
    local text = records:text()
    assert.matches("WARNING", text, 1, true)
    assert.matches(path, text, 1, true)
    assert.matches("was moved to .*alerts%.db%.corrupt%-%d+", text)
    assert.is_not_nil(s.db)
    s:mark_sent("app", { since = 1, at = 1 })
    core.run()
    s:close()
    local t = SqliteStore.open(path)
    assert.same({ since = 1, at = 1 }, t:sent("app"))
    t:close()
  end)

  it("keeps the alerts in memory, with an ERROR, when the file cannot be opened", function()
    local records <close> = mw.log.capture()
    local bad = dir .. "/no/such/dir/alerts.db"
    local s = SqliteStore.open(bad)
    assert.matches("alerts store " .. bad:gsub("%p", "%%%0") .. " cannot be used .*in memory only",
      records:text())
    assert.matches("ERROR", records:text(), 1, true)
    s:mark_sent("app", { since = 1, at = 1 })
    assert.same({ since = 1, at = 1 }, s:sent("app"))
    assert.equal(1, s:outbox_add("ops", { event = { monitor = "app" }, created = 1 }))
    s:close()
  end)

  it("rejects a path that is not a file name", function()
    assert.has_error(function() SqliteStore.open("") end,
      "SqliteStore.open: path must be a non-empty file name, got ")
    assert.has_error(function() SqliteStore.open(nil) end,
      "SqliteStore.open: path must be a non-empty file name, got nil")
  end)

  it("as a resource: path \"\" keeps the alerts in memory", function()
    local s = SqliteStore.resource{ path = "" }
    assert.equal(getmetatable(mw.Alerts.MemoryStore.new()), getmetatable(s))
    local t, close = SqliteStore.resource{ path = path }
    assert.is_not_nil(t.db)
    close(t)
    assert.is_nil(t.db)
  end)

  it("under the engine: a restart while DOWN sends no second down, and then the up", function()
    local _ <close> = mw.log.capture()
    local function engine()
      local rec = mw.Alerts.notifiers.Recorder{ name = "rec" }
      local state = mw.State()
      local store = SqliteStore.open(path)
      local alerts = mw.Alerts{ state = state, notifiers = { rec }, store = store }
      return { rec = rec, state = state, alerts = alerts, store = store }
    end
    local function down(e) e.state:on_result({}, { monitor = "app", up = false, reason = "x" }) end
    local function up(e) e.state:on_result({}, { monitor = "app", up = true }) end
    local function finish(e)
      core.run() -- the deliveries and the writes, then nothing waits
      e.alerts:stop()
      e.store:close()
    end

    local one = engine()
    down(one)
    finish(one)
    assert.same({ "app down" }, one.rec:summary())

    local two = engine()
    down(two)
    core.run()
    assert.same({}, two.rec:summary())
    up(two)
    finish(two)
    assert.same({ "app up" }, two.rec:summary())
    local after = SqliteStore.open(path)
    assert.is_nil(after:sent("app"))
    assert.same({}, after:outbox_load("rec"))
    after:close()
  end)
end)
