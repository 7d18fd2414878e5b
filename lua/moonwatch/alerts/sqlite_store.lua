--- The alerts' durable store (`mw.Alerts.SqliteStore`): the interface of
--- moonwatch.alerts.memory_store, kept in a SQLite file (moonwatch.store),
--- so that after a restart no "down" is sent twice and no resolve is lost.
---
---     local store = mw.Alerts.SqliteStore.open("moonwatch.db")
---     mw.Alerts{ state = ..., notifiers = ..., store = store }
---
--- The engine calls its store synchronously, from a check's task (a state
--- change) or outside any task (its construction), and expects an answer at
--- once (`sent`, `outbox_add`'s id). SQLite statements make the calling task
--- wait, so: everything is read once, at open, into memory, which answers
--- the engine; every write goes, in order, to a queue that one writer task
--- drains, a batch per transaction. A check never waits for the disk, and a
--- storm of changes costs one transaction per batch. The loop keeps running
--- while the writer has work, so what was queued before a stop is written.
local Store = require("moonwatch.store")
local core = require("moonwatch.core")
local log = require("moonwatch.log")

local M = {}

-- lua-cjson encodes the outbox's events; loaded with the first store.
local cjson

---@class moonwatch.alerts.SqliteStore
local SqliteStore = {}
SqliteStore.__index = SqliteStore

-- Runs fn in a task: the current one, or a new one on a loop run to its end
-- (a container is built outside any task, before the dispatcher runs).
local function in_task(fn)
  if core.current() then return fn() end
  return core.run(fn)
end

local function load(db)
  local states, err = db:load_states()
  if not states then return nil, err end
  local incidents
  incidents, err = db:incidents()
  if not incidents then return nil, err end
  local rows
  rows, err = db:outbox_load()
  if not rows then return nil, err end
  local outboxes, max_id = {}, 0
  for _, row in ipairs(rows) do
    local ok, event = pcall(cjson.decode, row.payload)
    if ok and type(event) == "table" then
      local box = outboxes[row.notifier] or {}
      outboxes[row.notifier] = box
      box[row.id] = { event = event, created = row.created }
    end
    if row.id > max_id then max_id = row.id end
  end
  local by_name = {}
  for name, s in pairs(states) do
    by_name[name] = { state = s.state, since = s.since, reason = s.reason,
                      consecutive = s.consecutive }
  end
  return { states = by_name, incidents = incidents, outboxes = outboxes, next_id = max_id }
end

--- Opens (creating) the store at path and loads it. A corrupt file is moved
--- aside (WARNING naming both files) and started afresh; a file that cannot
--- be opened at all leaves the alerts in memory (ERROR): the monitors run
--- either way. options: { logger, timeout } (moonwatch.store's).
---@param path string
---@param options {logger?: table, timeout?: number}?
---@return moonwatch.alerts.SqliteStore
function M.open(path, options)
  if type(path) ~= "string" or path == "" then
    error("SqliteStore.open: path must be a non-empty file name, got " .. tostring(path), 0)
  end
  options = options or {}
  cjson = cjson or require("cjson")
  local logger = options.logger or log.get("Alerts")
  local self = setmetatable({ path = path, logger = logger, queue = {}, head = 1, tail = 0,
                              states = {}, incidents = {}, outboxes = {}, next_id = 0 },
                            SqliteStore)
  local loaded, err = in_task(function()
    local db, notice = Store.open(path, { timeout = options.timeout })
    if not db then return nil, notice end
    if notice then logger:warning("alerts store: %s; started afresh", notice) end
    local data, lerr = load(db)
    if not data then
      db:close()
      return nil, lerr
    end
    data.db = db
    return data
  end)
  if not loaded then
    logger:error("alerts store %s cannot be used (%s): alerts are kept in memory only, "
      .. "and a restart forgets them", path, tostring(err))
    return self
  end
  self.db, self.states, self.incidents = loaded.db, loaded.states, loaded.incidents
  self.outboxes, self.next_id = loaded.outboxes, loaded.next_id
  return self
end

-- The writer: one task at a time, started by the first write queued; it
-- takes everything queued so far and writes it in one transaction.
local function write_all(self)
  while self.head <= self.tail do
    local list, n = {}, 0
    for i = self.head, self.tail do
      n = n + 1
      list[n] = self.queue[i]
      self.queue[i] = nil
    end
    self.head, self.tail = 1, 0
    local ok, err = self.db:batch(list)
    if not ok then
      self.logger:error("alerts store %s: %d writes failed: %s", self.path, n, tostring(err))
    end
  end
  self.writer = nil
  if self.closing then self:close() end
end

local function queue(self, statement)
  if not self.db then return end
  self.tail = self.tail + 1
  self.queue[self.tail] = statement
  if not self.writer then self.writer = core.spawn(write_all, self) end
end

--- Writes not yet in the file.
function SqliteStore:pending() return self.tail - self.head + 1 end

function SqliteStore:save_state(monitor, entry)
  local s = { state = entry.state, since = entry.since, reason = entry.reason,
              consecutive = entry.consecutive }
  self.states[monitor] = s
  queue(self, Store.statements.save_state{ name = monitor, state = s.state, since = s.since,
    consecutive = s.consecutive, reason = s.reason, updated = core.time() })
end

function SqliteStore:load_states()
  local out = {}
  for k, v in pairs(self.states) do out[k] = v end
  return out
end

function SqliteStore:mark_sent(monitor, rec)
  self.incidents[monitor] = rec
  queue(self, Store.statements.incident(monitor, rec))
end

function SqliteStore:sent(monitor) return self.incidents[monitor] end

function SqliteStore:outbox_add(notifier, item)
  self.next_id = self.next_id + 1
  local id = self.next_id
  local box = self.outboxes[notifier] or {}
  self.outboxes[notifier] = box
  box[id] = item
  queue(self, Store.statements.outbox_add{ id = id, notifier = notifier,
    monitor = item.event.monitor, payload = cjson.encode(item.event), created = item.created })
  return id
end

function SqliteStore:outbox_remove(notifier, id)
  local box = self.outboxes[notifier]
  if box then box[id] = nil end
  queue(self, Store.statements.outbox_remove(id))
end

function SqliteStore:outbox_load(notifier)
  local out = {}
  for id, item in pairs(self.outboxes[notifier] or {}) do
    out[#out + 1] = { id = id, item = item }
  end
  table.sort(out, function(a, b) return a.id < b.id end)
  return out
end

--- Closes the file once the writes queued are in it (the container's
--- shutdown, after the loop ended). Idempotent.
function SqliteStore:close()
  if not self.db then return end
  if self.writer then
    self.closing = true
    return
  end
  self.db:close()
  self.db = nil
end

--- For a Resource provider: `{ path = ..., logger = ..., timeout = ... }`
--- -> store, close; path "" keeps the alerts in memory (moonwatch.alerts.memory_store).
function M.resource(kwargs)
  if kwargs.path == "" then return require("moonwatch.alerts.memory_store").new() end
  local store = M.open(kwargs.path, { logger = kwargs.logger, timeout = kwargs.timeout })
  return store, function(s) s:close() end
end

M.SqliteStore = SqliteStore

return M
