-- moonwatch.store: the schema and the methods the alert engine uses, on a
-- real SQLite file in a temporary directory.
local core = require("moonwatch.core")
local fixture = require("support.fixture")
local Store = require("moonwatch.store")

describe("moonwatch.store", function()
  local dir, path

  before_each(function()
    dir = fixture.tmpdir()
    path = dir .. "/moonwatch.db"
  end)
  after_each(function()
    core.run() -- closes still queued on the pool
    assert.same({ tasks = 0, handles = 0 }, core.stats())
    fixture.rmtree(dir)
  end)

  -- Runs fn(store) in a task on a store at path, closed after it.
  local function with_store(fn)
    core.run(function()
      local store <close> = assert(Store.open(path))
      fn(store)
    end)
    core.run()
  end

  it("creates the schema at its latest version, and opens it again as it is", function()
    with_store(function(store)
      assert.equals(#Store.MIGRATIONS, store:version())
      local names = {}
      for _, row in ipairs(store.db:query("SELECT name FROM sqlite_schema WHERE type = 'table' "
        .. "ORDER BY name")) do
        names[#names + 1] = row.name
      end
      assert.same({ "alert_incident", "alert_sent", "monitor_state", "outbox", "schema_version" },
        names)
    end)
    with_store(function(store)
      assert.same({ { n = 1 } }, store.db:query("SELECT count(*) AS n FROM schema_version"))
    end)
  end)

  it("brings a version 1 file up to date and keeps its rows", function()
    core.run(function()
      local db = assert(core.store_open(path))
      local list = {}
      for i, sql in ipairs(Store.MIGRATIONS[1]) do list[i] = { sql } end
      list[#list + 1] = { "CREATE TABLE schema_version(version INTEGER NOT NULL)" }
      list[#list + 1] = { "INSERT INTO schema_version(version) VALUES (1)" }
      list[#list + 1] = { "INSERT INTO outbox(notifier, payload) VALUES ('ops', '{}')" }
      assert(db:transaction(list))
      db:close()
    end)
    with_store(function(store)
      assert.equals(2, store:version())
      assert.same({}, store:incidents())
      assert.equal(1, #store:outbox_load())
      assert(store:batch({ Store.statements.incident("app", { since = 1, reason = "x", at = 2 }) }))
      assert.same({ app = { since = 1, reason = "x", at = 2 } }, store:incidents())
    end)
  end)

  it("refuses a file made by a newer moonwatch", function()
    with_store(function(store)
      assert(store.db:exec("UPDATE schema_version SET version = 99"))
    end)
    core.run(function()
      local store, err = Store.open(path)
      assert.is_nil(store)
      assert.equals("store " .. path .. ": its schema version 99 is newer than this moonwatch's ("
        .. #Store.MIGRATIONS .. ")", err)
    end)
  end)

  it("passes on the open error and the notice of a file started afresh", function()
    core.run(function()
      local store, err = Store.open(dir .. "/missing/x.db")
      assert.is_nil(store)
      assert.matches("cannot open: unable to open database file", err)
      local f = assert(io.open(path, "wb"))
      f:write(string.rep("garbage ", 1000))
      f:close()
      local notice
      store, notice = Store.open(path)
      assert.is_not_nil(store, notice)
      assert.matches("was moved to .*moonwatch.db.corrupt%-%d+", notice)
      assert.equals(#Store.MIGRATIONS, store:version())
      store:close()
    end)
  end)

  it("saves states and loads them by name, across a reopen", function()
    with_store(function(store)
      assert.is_true(store:save_state({ name = "web", state = "DOWN", since = 100.5,
        consecutive = 3, reason = "status 500", updated = 101 }))
      assert.is_true(store:save_state({ name = "db", state = "UP", since = 50, consecutive = 1,
        updated = 60 }))
      assert.is_true(store:save_state({ name = "web", state = "UP", since = 200, consecutive = 1,
        updated = 200 }))
    end)
    with_store(function(store)
      assert.same({
        web = { name = "web", state = "UP", since = 200.0, consecutive = 1, updated = 200.0 },
        db = { name = "db", state = "UP", since = 50.0, consecutive = 1, updated = 60.0 },
      }, store:load_states())
      assert.is_true(store:forget_state("db"))
      assert.same({ "web" }, (function()
        local names = {}
        for name in pairs(store:load_states()) do names[#names + 1] = name end
        return names
      end)())
    end)
  end)

  it("keeps the outbox in order until entries are removed", function()
    with_store(function(store)
      local a = store:outbox_add({ notifier = "mail", monitor = "web", seq = 1,
        payload = '{"state":"DOWN"}', created = 10, next_at = 10 })
      local b = store:outbox_add({ notifier = "hook", monitor = "web", seq = 1,
        payload = "x", created = 11, attempts = 2, next_at = 20 })
      assert.equals("integer", math.type(a))
      assert.is_true(b > a)
      assert.is_true(store:outbox_retry(a, 1, 15.5))
      assert.same({
        { id = a, notifier = "mail", monitor = "web", seq = 1, payload = '{"state":"DOWN"}',
          created = 10.0, attempts = 1, next_at = 15.5 },
        { id = b, notifier = "hook", monitor = "web", seq = 1, payload = "x", created = 11.0,
          attempts = 2, next_at = 20.0 },
      }, store:outbox_load())
      assert.is_true(store:outbox_remove(a))
    end)
    with_store(function(store)
      local left = store:outbox_load()
      assert.equals(1, #left)
      assert.equals("hook", left[1].notifier)
    end)
  end)

  it("marks alerts sent per monitor and notifier", function()
    with_store(function(store)
      assert.is_true(store:mark_sent("web", "mail", "DOWN", 100))
      assert.is_true(store:mark_sent("web", "hook", "DOWN", 101))
      assert.is_true(store:mark_sent("web", "mail", "UP", 200))
      assert.same({ web = { mail = { state = "UP", at = 200.0 },
        hook = { state = "DOWN", at = 101.0 } } }, store:sent())
    end)
  end)

  it("a delivery leaves the outbox and marks the alert sent in one transaction", function()
    with_store(function(store)
      local id = assert(store:outbox_add({ notifier = "mail", monitor = "web", seq = 1,
        payload = "p", created = 1 }))
      assert.is_true(store:delivered(id, "web", "mail", "DOWN", 5))
      assert.same({}, store:outbox_load())
      assert.same({ web = { mail = { state = "DOWN", at = 5.0 } } }, store:sent())
      -- a failing half undoes the other
      id = assert(store:outbox_add({ notifier = "mail", monitor = "web", seq = 2,
        payload = "q", created = 2 }))
      assert(store.db:exec("DROP TABLE alert_sent"))
      local ok, err = store:delivered(id, "web", "mail", "UP", 6)
      assert.is_nil(ok)
      assert.matches("statement 2 of the transaction: no such table: alert_sent", err)
      assert.equals(1, #store:outbox_load())
    end)
  end)

  it("answers nil, 'store is closed' once closed", function()
    core.run(function()
      local store = assert(Store.open(path))
      assert.is_true(store:close())
      assert.is_true(store:close())
      assert.same({ nil, "store is closed" }, { store:load_states() })
      assert.same({ nil, "store is closed" }, { store:save_state({ name = "x", state = "UP" }) })
    end)
  end)
end)
