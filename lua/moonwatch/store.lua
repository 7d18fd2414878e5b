--- The durable store: monitor states, the alerts sent and the undelivered
--- outbox, in one SQLite file, so that alerts survive a restart.
---
---     local Store = require("moonwatch.store")
---     local store, notice = Store.open("/var/lib/moonwatch/moonwatch.db")
---     if not store then error(notice) end    -- the path and SQLite's error
---     if notice then log:warning(notice) end -- a corrupt file was moved aside
---     store:save_state({ name = "example", state = "DOWN", since = t, ... })
---
--- Every method waits in the calling task (statements run on libuv's thread
--- pool, never on the loop) and returns `nil, message` when SQLite fails.
--- Write on events (a state change, a delivery), never per check. The
--- schema is versioned: `schema_version` holds the version, and MIGRATIONS
--- below bring an older file up to date in one transaction each.
local core = require("moonwatch.core")

local M = {}

--- MIGRATIONS[v] makes version v from version v - 1; append, never edit.
M.MIGRATIONS = {
  {
    [[CREATE TABLE monitor_state(name TEXT PRIMARY KEY, state TEXT, since REAL,
      consecutive INTEGER, reason TEXT, updated REAL)]],
    [[CREATE TABLE alert_sent(monitor TEXT, notifier TEXT, state TEXT, at REAL,
      PRIMARY KEY(monitor, notifier))]],
    [[CREATE TABLE outbox(id INTEGER PRIMARY KEY, notifier TEXT, monitor TEXT, seq INTEGER,
      payload TEXT, created REAL, attempts INTEGER, next_at REAL)]],
  },
  -- the alerts engine records one "down" per monitor (the incident it told
  -- about), whatever the notifiers: since, reason and when it went out
  {
    [[CREATE TABLE alert_incident(monitor TEXT PRIMARY KEY, since REAL, reason TEXT,
      at REAL)]],
  },
}

--- The writing statements, as { sql, args..., n = count } (the form of
--- db:transaction), so a caller can batch them (Store:batch).
M.statements = {}

---@param entry moonwatch.StoredState
function M.statements.save_state(entry)
  return { [[INSERT INTO monitor_state(name, state, since, consecutive, reason, updated)
      VALUES (?, ?, ?, ?, ?, ?)
    ON CONFLICT(name) DO UPDATE SET state = excluded.state, since = excluded.since,
      consecutive = excluded.consecutive, reason = excluded.reason, updated = excluded.updated]],
    entry.name, entry.state, entry.since, entry.consecutive, entry.reason, entry.updated, n = 7 }
end

--- An outbox row; `entry.id` nil lets SQLite choose it.
---@param entry moonwatch.OutboxEntry
function M.statements.outbox_add(entry)
  return { [[INSERT INTO outbox(id, notifier, monitor, seq, payload, created, attempts,
      next_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)]],
    entry.id, entry.notifier, entry.monitor, entry.seq, entry.payload, entry.created,
    entry.attempts or 0, entry.next_at, n = 9 }
end

function M.statements.outbox_remove(id)
  return { "DELETE FROM outbox WHERE id = ?", id, n = 2 }
end

--- The incident of a monitor told about ({ since, reason, at }), or nil:
--- resolved, forgotten.
function M.statements.incident(monitor, rec)
  if rec == nil then return { "DELETE FROM alert_incident WHERE monitor = ?", monitor, n = 2 } end
  return { [[INSERT INTO alert_incident(monitor, since, reason, at) VALUES (?, ?, ?, ?)
    ON CONFLICT(monitor) DO UPDATE SET since = excluded.since, reason = excluded.reason,
      at = excluded.at]], monitor, rec.since, rec.reason, rec.at, n = 5 }
end

---@class moonwatch.Store
---@field db userdata the core store (core.store_open)
---@field path string
local Store = {}
Store.__index = Store
M.Store = Store

local function migrate(db, path)
  local ok, err = db:exec("CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL)")
  if not ok then return nil, err end
  local rows
  rows, err = db:query("SELECT max(version) AS version FROM schema_version")
  if not rows then return nil, err end
  local version = rows[1].version or 0
  if version > #M.MIGRATIONS then
    return nil, string.format("store %s: its schema version %d is newer than this moonwatch's "
      .. "(%d)", path, version, #M.MIGRATIONS)
  end
  for v = version + 1, #M.MIGRATIONS do
    local list = {}
    for i, sql in ipairs(M.MIGRATIONS[v]) do list[i] = { sql } end
    list[#list + 1] = { "DELETE FROM schema_version" }
    list[#list + 1] = { "INSERT INTO schema_version(version) VALUES (?)", v }
    ok, err = db:transaction(list)
    if not ok then return nil, err end
  end
  return true
end

--- Opens (creating) the store at path and brings its schema up to date.
--- options: { timeout = seconds } (core.store_open's; 10 s by default).
--- Returns the store and, when the file was corrupt and started afresh, a
--- message to log; or nil and a message naming the path.
---@param path string
---@param options {timeout?: number}?
---@return moonwatch.Store?, string?
function M.open(path, options)
  local db, notice = core.store_open(path, options)
  if not db then return nil, notice end
  local ok, err = migrate(db, path)
  if not ok then
    db:close()
    return nil, err
  end
  return setmetatable({ db = db, path = path }, Store), notice
end

--- The schema version of the open file.
function Store:version()
  local rows, err = self.db:query("SELECT max(version) AS version FROM schema_version")
  if not rows then return nil, err end
  return rows[1].version
end

---@class moonwatch.StoredState
---@field name string
---@field state string
---@field since number?
---@field consecutive integer?
---@field reason string?
---@field updated number?

--- Writes a monitor's state (replacing the one stored under its name).
---@param entry moonwatch.StoredState
---@return true?, string?
function Store:save_state(entry)
  local ok, err = self.db:exec(table.unpack(M.statements.save_state(entry), 1, 7))
  if not ok then return nil, err end
  return true
end

--- Every stored state, by monitor name: { [name] = StoredState }.
---@return table<string, moonwatch.StoredState>?, string?
function Store:load_states()
  local rows, err = self.db:query("SELECT * FROM monitor_state")
  if not rows then return nil, err end
  local states = {}
  for _, row in ipairs(rows) do states[row.name] = row end
  return states
end

--- Forgets the state of a monitor that is gone from the configuration.
function Store:forget_state(name)
  local ok, err = self.db:exec("DELETE FROM monitor_state WHERE name = ?", name)
  if not ok then return nil, err end
  return true
end

---@class moonwatch.OutboxEntry
---@field id integer?  given by outbox_add
---@field notifier string
---@field monitor string
---@field seq integer?
---@field payload string  the notification, encoded by its notifier
---@field created number?
---@field attempts integer?
---@field next_at number?

--- Adds an undelivered notification; returns its id.
---@param entry moonwatch.OutboxEntry
---@return integer?, string?
function Store:outbox_add(entry)
  local st = M.statements.outbox_add(entry)
  local rows, err = self.db:query(st[1] .. " RETURNING id", table.unpack(st, 2, st.n))
  if not rows then return nil, err end
  return rows[1].id
end

--- Records a failed attempt: its count and when to try again.
function Store:outbox_retry(id, attempts, next_at)
  local ok, err = self.db:exec("UPDATE outbox SET attempts = ?, next_at = ? WHERE id = ?",
    attempts, next_at, id)
  if not ok then return nil, err end
  return true
end

--- Removes a notification (delivered, or given up).
function Store:outbox_remove(id)
  local ok, err = self.db:exec("DELETE FROM outbox WHERE id = ?", id)
  if not ok then return nil, err end
  return true
end

--- The undelivered notifications, oldest first.
---@return moonwatch.OutboxEntry[]?, string?
function Store:outbox_load()
  return self.db:query("SELECT * FROM outbox ORDER BY id")
end

--- Records that notifier told about monitor's state at `at`.
function Store:mark_sent(monitor, notifier, state, at)
  local ok, err = self.db:exec([[INSERT INTO alert_sent(monitor, notifier, state, at)
    VALUES (?, ?, ?, ?) ON CONFLICT(monitor, notifier) DO UPDATE SET state = excluded.state,
      at = excluded.at]], monitor, notifier, state, at)
  if not ok then return nil, err end
  return true
end

--- A delivery in one transaction: the notification leaves the outbox and
--- its alert is marked sent, or neither happens.
function Store:delivered(id, monitor, notifier, state, at)
  return self.db:transaction({
    { "DELETE FROM outbox WHERE id = ?", id },
    { [[INSERT INTO alert_sent(monitor, notifier, state, at) VALUES (?, ?, ?, ?)
      ON CONFLICT(monitor, notifier) DO UPDATE SET state = excluded.state, at = excluded.at]],
      monitor, notifier, state, at, n = 5 },
  })
end

--- The alerts sent: { [monitor] = { [notifier] = { state =, at = } } }.
function Store:sent()
  local rows, err = self.db:query("SELECT * FROM alert_sent")
  if not rows then return nil, err end
  local sent = {}
  for _, row in ipairs(rows) do
    local by = sent[row.monitor] or {}
    sent[row.monitor] = by
    by[row.notifier] = { state = row.state, at = row.at }
  end
  return sent
end

--- The incidents told about: { [monitor] = { since, reason, at } }.
function Store:incidents()
  local rows, err = self.db:query("SELECT * FROM alert_incident")
  if not rows then return nil, err end
  local out = {}
  for _, row in ipairs(rows) do
    out[row.monitor] = { since = row.since, reason = row.reason, at = row.at }
  end
  return out
end

--- Runs statements (as made by M.statements) in one transaction: all or none.
---@param list table[]
function Store:batch(list)
  return self.db:transaction(list)
end

--- Closes the file once the statements already asked for have run;
--- idempotent. A closed store answers nil, "store is closed".
function Store:close()
  return self.db:close()
end

Store.__close = Store.close

return M
