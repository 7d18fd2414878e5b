-- moonwatch.core: core.store_open and store objects, against real SQLite
-- files in a temporary directory.
local core = require("moonwatch.core")
local fixture = require("support.fixture")

-- A query that keeps SQLite busy for a few hundred milliseconds.
local LONG = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 600000) "
  .. "SELECT count(*) AS n FROM c"

local function write_file(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function ls(dir)
  local names = {}
  local p = assert(io.popen("ls -A " .. fixture.shell_quote(dir)))
  for name in p:lines() do names[#names + 1] = name end
  p:close()
  return names
end

-- From a task: lets the loop run until t waits (a bounded poll, no sleep).
local function until_waiting(t)
  for _ = 1, 1000 do
    if t:status() == "waiting" then return end
    core.sleep(0)
  end
  error("the task never waited: " .. t:status())
end

-- From a task: lets the loop run until t has ended.
local function until_final(t)
  for _ = 1, 10000 do
    local status = t:status()
    if status ~= "waiting" and status ~= "ready" then return t:result() end
    core.sleep(0)
  end
  error("the task never ended: " .. t:status())
end

describe("core.store_open", function()
  local dir

  before_each(function() dir = fixture.tmpdir() end)
  after_each(function()
    core.run() -- lets closes still queued on the pool finish
    assert.same({ tasks = 0, handles = 0 }, core.stats())
    fixture.rmtree(dir)
  end)

  it("creates a missing file and keeps what was written across a reopen", function()
    local path = dir .. "/a.db"
    core.run(function()
      local s, notice = core.store_open(path)
      assert.is_nil(notice)
      assert.matches("^moonwatch.store %(.*/a.db%)$", tostring(s))
      assert.equals(0, s:exec("CREATE TABLE t(a)"))
      assert.equals(1, s:exec("INSERT INTO t VALUES (?)", "kept"))
      assert.same({ { journal_mode = "wal" } }, s:query("PRAGMA journal_mode"))
      -- 1: NORMAL, the documented trade-off in store.c
      assert.same({ { synchronous = 1 } }, s:query("PRAGMA synchronous"))
      s:close()
    end)
    core.run()
    assert.is_true(exists(path))
    core.run(function()
      local s = assert(core.store_open(path))
      assert.same({ { a = "kept" } }, s:query("SELECT a FROM t"))
      s:close()
    end)
  end)

  it("must be called from a task, with a file name", function()
    assert.matches("core.store_open must be called from a task",
      select(2, pcall(core.store_open, dir .. "/a.db")))
    assert.matches("core.store_open: the path must be a file name",
      select(2, pcall(core.store_open, "")))
    assert.matches("the path must be a file name", select(2, pcall(core.store_open, "a\0b")))
  end)

  it("takes a timeout that interrupts a statement, or a transaction, running past it", function()
    core.run(function()
      local s = assert(core.store_open(dir .. "/t.db", { timeout = 0.05 }))
      local rows, err = s:query(LONG)
      assert.is_nil(rows)
      assert.matches("^store .*/t.db: interrupted at the store's timeout %(0.05 s%) %(in: WITH ",
        err)
      assert(s:exec("CREATE TABLE t(a)"))
      local ok
      ok, err = s:transaction({ { "INSERT INTO t VALUES (1)" }, { LONG } })
      assert.is_nil(ok)
      assert.matches("statement 2 of the transaction: interrupted at the store's timeout", err)
      assert.same({}, s:query("SELECT * FROM t"))
      -- the next statement has its own time
      assert.same({ { n = 1 } }, s:query("SELECT 1 AS n"))
      s:close()
    end)
  end)

  it("rejects bad options", function()
    core.run(function()
      local function open_err(options)
        return select(2, pcall(core.store_open, dir .. "/o.db", options))
      end
      assert.matches("core.store_open: timeout must be a number of seconds from 0.001 to 86400, "
        .. "got 0$", open_err({ timeout = 0 }))
      assert.matches("got soon$", open_err({ timeout = "soon" }))
      assert.matches("core.store_open: unknown option timeuot %(the options are: timeout%)$",
        open_err({ timeuot = 1 }))
      assert.matches("bad argument #2 to '.*store_open' %(table expected, got number%)",
        open_err(5))
    end)
  end)

  it("a missing directory is nil and a message naming the path and the cause", function()
    core.run(function()
      local s, err = core.store_open(dir .. "/no/such/a.db")
      assert.is_nil(s)
      assert.equals("store " .. dir .. "/no/such/a.db: cannot open: unable to open database "
        .. "file (No such file or directory)", err)
    end)
  end)

  -- Tests run as root, so a read-only mode stops nothing; these paths fail
  -- for root too.
  it("a directory, or a path under a file, cannot be opened", function()
    write_file(dir .. "/file", "x")
    core.run(function()
      local s, err = core.store_open(dir)
      assert.is_nil(s)
      assert.matches("^store .*: cannot open: unable to open database file %(Is a directory%)$",
        err)
      s, err = core.store_open(dir .. "/file/a.db")
      assert.is_nil(s)
      assert.matches("%(Not a directory%)$", err)
    end)
  end)

  it("a file that is not a database is moved aside and started afresh", function()
    local path = dir .. "/bad.db"
    write_file(path, string.rep("not a database. ", 512))
    local before = os.time()
    core.run(function()
      local s, notice = core.store_open(path)
      assert.is_not_nil(s, notice)
      assert.matches("^store " .. dir:gsub("%p", "%%%0") .. "/bad.db: the file was not a sound "
        .. "database %(file is not a database%); it was moved to .*/bad.db.corrupt%-%d+ and a "
        .. "fresh database started$", notice)
      assert.same({}, s:query("SELECT * FROM sqlite_schema"))
      assert.equals(0, s:exec("CREATE TABLE t(a)"))
      s:close()
    end)
    core.run()
    local moved
    for _, name in ipairs(ls(dir)) do
      local t = name:match("^bad%.db%.corrupt%-(%d+)$")
      if t then moved = name; assert.is_true(tonumber(t) >= before) end
    end
    assert.is_not_nil(moved, table.concat(ls(dir), " "))
    assert.equals(string.rep("not a database. ", 512), fixture.read_file(dir .. "/" .. moved))
  end)

  it("a database with a damaged page fails its check and is moved aside", function()
    local path = dir .. "/damaged.db"
    core.run(function()
      local s = assert(core.store_open(path))
      assert(s:exec("CREATE TABLE t(a)"))
      for i = 1, 200 do assert(s:exec("INSERT INTO t VALUES (?)", string.rep("v", 100) .. i)) end
      s:close()
    end)
    core.run() -- closed: the WAL is checkpointed into the file
    local f = assert(io.open(path, "r+b"))
    f:seek("set", 4096 + 8) -- inside page 2, the table's first page
    f:write(string.rep("\255", 400))
    f:close()
    core.run(function()
      local s, notice = core.store_open(path)
      assert.is_not_nil(s, notice)
      assert.matches("the file was not a sound database .*moved to .*damaged.db.corrupt%-%d+",
        notice)
      assert.same({}, s:query("SELECT name FROM sqlite_schema"))
      s:close()
    end)
  end)
end)

describe("a store", function()
  local dir, s

  -- Runs fn(store) in a task with a fresh store, closed after it.
  local function with_store(fn)
    core.run(function()
      s = assert(core.store_open(dir .. "/s.db"))
      fn(s)
      s:close()
    end)
  end

  before_each(function() dir = fixture.tmpdir() end)
  after_each(function()
    core.run()
    assert.same({ tasks = 0, handles = 0 }, core.stats())
    fixture.rmtree(dir)
  end)

  it("exec returns the number of changed rows, query the rows by column name", function()
    with_store(function()
      assert.equals(0, s:exec("CREATE TABLE t(a INTEGER, b TEXT)"))
      assert.equals(1, s:exec("INSERT INTO t VALUES (?, ?)", 1, "one"))
      assert.equals(1, s:exec("INSERT INTO t VALUES (?, ?)", 2, "two"))
      assert.equals(2, s:exec("UPDATE t SET b = upper(b)"))
      assert.same({ { a = 1, b = "ONE" }, { a = 2, b = "TWO" } },
        s:query("SELECT a, b FROM t ORDER BY a"))
      assert.same({}, s:query("SELECT * FROM t WHERE a > ?", 5))
      -- a NULL is an absent field
      assert.same({ { a = 3 } }, s:query("SELECT 3 AS a, NULL AS b"))
    end)
  end)

  it("binds parameters of every type and reads them back", function()
    with_store(function()
      local function back(v) return s:query("SELECT ? AS v", v)[1].v end
      assert.is_nil(back(nil))
      assert.equals(1, back(true))
      assert.equals(0, back(false))
      assert.equals(math.maxinteger, back(math.maxinteger))
      assert.equals(math.mininteger, back(math.mininteger))
      assert.equals("integer", math.type(back(42)))
      assert.equals(0.5, back(0.5))
      assert.equals("float", math.type(back(2.0)))
      assert.equals(-1e300, back(-1e300))
      assert.equals("", back(""))
      assert.equals("a\0b\255\n", back("a\0b\255\n"))
      assert.same({ { a = 1, b = "x", c = 1.5 } },
        s:query("SELECT ? AS a, ? AS b, ? AS c", 1, "x", 1.5))
    end)
  end)

  it("bad SQL is nil and SQLite's message with the statement", function()
    with_store(function()
      local n, err = s:exec("SELEC 1")
      assert.is_nil(n)
      assert.equals("store " .. dir .. '/s.db: near "SELEC": syntax error (in: SELEC 1)', err)
      assert.same({ nil, "store " .. dir .. "/s.db: no such table: nope (in: SELECT * FROM nope)" },
        { s:query("SELECT * FROM nope") })
      n, err = s:exec("SELECT 1; SELECT 2")
      assert.is_nil(n)
      assert.matches("one statement per call", err)
      n, err = s:exec("SELECT ?, ?", 1)
      assert.is_nil(n)
      assert.matches("the statement has 2 parameter%(s%), 1 given %(in: SELECT %?, %?%)$", err)
      assert.matches("no statement", select(2, s:exec("-- nothing")))
      assert.matches("the statement holds a NUL byte$", select(2, s:exec("SELECT 1\0DROP")))
      local long = "SELECT 1 -- " .. string.rep("x", 100) .. "\n"
      assert.matches("%(in: SELECT 1 %-%- x+%.%.%.%)$", select(2, s:exec(long .. ";;x")))
      -- the store carries on after errors
      assert.same({ { one = 1 } }, s:query("SELECT 1 AS one"))
    end)
  end)

  it("a parameter of another type is an error naming it", function()
    with_store(function()
      assert.equals("store:exec: parameter 2 is a table (nil, boolean, number or string expected)",
        select(2, pcall(s.exec, s, "SELECT ?, ?", 1, {})))
      assert.matches("store:query: parameter 1 is a function",
        select(2, pcall(s.query, s, "SELECT ?", print)))
      assert.matches("store:transaction: statement 2: parameter 1 is a table",
        select(2, pcall(s.transaction, s, { { "SELECT 1" }, { "SELECT ?", {} } })))
      assert.matches("store:transaction: statement 1 is a string",
        select(2, pcall(s.transaction, s, { "SELECT 1" })))
      assert.matches("statement 1: its first element is a nil %(the SQL text expected%)",
        select(2, pcall(s.transaction, s, { {} })))
      assert.matches("bad argument #1 to 'exec'", select(2, pcall(function() s:exec(1) end)))
    end)
  end)

  it("a transaction writes all its statements, or none of them", function()
    with_store(function()
      assert.is_true(s:transaction({
        { "CREATE TABLE t(a, b)" },
        { "INSERT INTO t VALUES (?, ?)", 1, "x" },
        { "INSERT INTO t VALUES (?, ?)", 2, nil, n = 3 }, -- n as table.pack gives
      }))
      assert.same({ { a = 1, b = "x" }, { a = 2 } }, s:query("SELECT * FROM t ORDER BY a"))
      local ok, err = s:transaction({
        { "INSERT INTO t VALUES (?, ?)", 3, "y" },
        { "UPDATE t SET b = 'changed'" },
        { "INSERT INTO nope VALUES (1)" },
      })
      assert.is_nil(ok)
      assert.equals("store " .. dir .. "/s.db: statement 3 of the transaction: no such table: "
        .. "nope (in: INSERT INTO nope VALUES (1))", err)
      assert.same({ { a = 1, b = "x" }, { a = 2 } }, s:query("SELECT * FROM t ORDER BY a"))
      -- a missing parameter fails it as a whole too
      assert.matches("statement 2 of the transaction: the statement has 2 parameter",
        select(2, s:transaction({ { "DELETE FROM t" }, { "INSERT INTO t VALUES (?, ?)", 1 } })))
      assert.equals(2, #s:query("SELECT * FROM t"))
      assert.is_true(s:transaction({}))
    end)
  end)

  it("statements of one store run in the order they were asked for", function()
    with_store(function()
      assert(s:exec("CREATE TABLE t(i)"))
      local tasks = {}
      for i = 1, 20 do
        tasks[i] = core.spawn(function()
          assert.equals(1, s:exec("INSERT INTO t VALUES (?)", i))
        end)
      end
      for _, t in ipairs(tasks) do assert.is_true((until_final(t))) end
      local order = {}
      for _, row in ipairs(s:query("SELECT i FROM t ORDER BY rowid")) do
        order[#order + 1] = row.i
      end
      assert.same({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20 }, order)
    end)
  end)

  it("the loop keeps turning while a long statement runs", function()
    with_store(function()
      local ticks, done = 0, false
      local ticker = core.spawn(function()
        while not done do
          core.sleep(0.01)
          ticks = ticks + 1
        end
      end)
      local t0 = core.now()
      local rows = assert(s:query(LONG))
      local took = core.now() - t0
      done = true
      assert.equals(600000, rows[1].n)
      until_final(ticker)
      assert.is_true(ticks >= 5, ("%d ticks in %.3f s"):format(ticks, took))
    end)
  end)

  it("bounds what one call may hold", function()
    with_store(function()
      local n, err = s:query("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
        .. "WHERE x < 100001) SELECT x FROM c")
      assert.is_nil(n)
      assert.matches("the result has more rows than a query may return %(100000%)", err)
      n, err = s:exec("SELECT 1 -- " .. string.rep("x", 65536))
      assert.is_nil(n)
      assert.equals("store " .. dir .. "/s.db: the statement is longer than 65536 bytes", err)
      n, err = s:exec("SELECT ?", string.rep("x", 16 * 1024 * 1024 + 1))
      assert.is_nil(n)
      assert.matches("a string parameter is longer than 16 MiB$", err)
      local list = {}
      for i = 1, 10001 do list[i] = { "SELECT 1" } end
      n, err = s:transaction(list)
      assert.is_nil(n)
      assert.matches("a transaction takes at most 10000 statements$", err)
      assert.equals(100000, #s:query("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 "
        .. "FROM c WHERE x < 100000) SELECT x FROM c"))
    end)
  end)

  -- A full disk gives SQLite's SQLITE_FULL, which max_page_count brings
  -- about without root or a small file system.
  it("a full database is nil and a message, and the transaction is undone", function()
    with_store(function()
      assert(s:exec("CREATE TABLE t(a)"))
      assert(s:exec("INSERT INTO t VALUES ('before')"))
      assert(s:query("PRAGMA max_page_count = 8"))
      local n, err = s:exec("INSERT INTO t VALUES (?)", string.rep("x", 100000))
      assert.is_nil(n)
      assert.matches("database or disk is full", err)
      local ok
      ok, err = s:transaction({ { "INSERT INTO t VALUES ('small')" },
        { "INSERT INTO t VALUES (?)", string.rep("y", 100000) } })
      assert.is_nil(ok)
      assert.matches("statement 2 of the transaction: database or disk is full", err)
      assert.same({ { a = "before" } }, s:query("SELECT a FROM t"))
    end)
  end)

  it("after close every call is nil, 'store is closed'; close is idempotent", function()
    with_store(function()
      assert.is_true(s:close())
      assert.is_true(s:close())
      assert.same({ nil, "store is closed" }, { s:exec("SELECT 1") })
      assert.same({ nil, "store is closed" }, { s:query("SELECT 1") })
      assert.same({ nil, "store is closed" }, { s:transaction({ { "SELECT 1" } }) })
      assert.equals("moonwatch.store (closed)", tostring(s))
    end)
    -- outside a task too
    assert.same({ nil, "store is closed" }, { s:exec("SELECT 1") })
  end)

  it("closes as a to-be-closed variable, and when collected", function()
    core.run(function()
      local kept
      do
        local t <close> = assert(core.store_open(dir .. "/c.db"))
        kept = t
        assert(t:exec("CREATE TABLE t(a)"))
      end
      assert.same({ nil, "store is closed" }, { kept:exec("SELECT 1") })
      assert(core.store_open(dir .. "/g.db")) -- dropped at once
      collectgarbage()
      collectgarbage()
    end)
  end)

  it("a statement queued behind close still runs; close waits for it", function()
    core.run(function()
      s = assert(core.store_open(dir .. "/s.db"))
      assert(s:exec("CREATE TABLE t(a)"))
      local long = core.spawn(function() return s:query(LONG) end)
      local writer = core.spawn(function() return s:exec("INSERT INTO t VALUES (1)") end)
      until_waiting(long)
      until_waiting(writer) -- queued behind the long query
      s:close()
      assert.same({ true, 1 }, { until_final(writer) })
      assert.same({ true, { { n = 600000 } } }, { until_final(long) })
    end)
    core.run()
    core.run(function()
      s = assert(core.store_open(dir .. "/s.db"))
      assert.same({ { a = 1 } }, s:query("SELECT a FROM t"))
      s:close()
    end)
  end)

  it("a cancelled task's statement completes on the pool, its result dropped", function()
    core.run(function()
      s = assert(core.store_open(dir .. "/s.db"))
      local waiter = core.spawn(function() return s:query(LONG) end)
      until_waiting(waiter)
      assert.is_true(waiter:cancel())
      assert.equals("cancelled", waiter:status())
      -- the next statement runs after it, in order
      assert.same({ { n = 1 } }, s:query("SELECT 1 AS n"))
      s:close()
    end)
  end)

  it("core.cancel_all releases tasks waiting on a store, which then closes", function()
    local opener = core.spawn(function()
      local t = assert(core.store_open(dir .. "/s.db"))
      t:query(LONG)
      error("never resumed")
    end)
    local store_task = core.spawn(function()
      s = assert(core.store_open(dir .. "/x.db"))
      return s:query(LONG)
    end)
    core.run(function()
      until_waiting(opener)
      until_waiting(store_task)
    end)
    assert.equals(2, core.cancel_all())
    assert.equals("cancelled", opener:status())
    s:close()
    collectgarbage() -- the opener's store, closed when collected
    core.run() -- the pool finishes both; nothing resumes, nothing leaks
  end)

  it("a store whose state closes while a statement runs frees it all", function()
    local bin = os.getenv("MOONWATCH_BIN") or "build/moonwatch"
    local script = dir .. "/exit.lua"
    write_file(script, string.format([[
      local core = require("moonwatch.core")
      core.run(function()
        local s = assert(core.store_open(%q))
        assert(s:exec("CREATE TABLE t(a)"))
        local t = core.spawn(function() s:query(%q) end)
        while t:status() ~= "waiting" do core.sleep(0) end
        core.spawn(function() s:exec("INSERT INTO t VALUES (1)") end)
        io.write("exiting\n")
      end)
    ]], dir .. "/s.db", LONG))
    local p = assert(io.popen(bin .. " -l " .. script .. " 2>&1"))
    local out = p:read("a")
    local ok = p:close()
    assert.equals("exiting\n", out)
    assert.is_true(ok)
  end)
end)
