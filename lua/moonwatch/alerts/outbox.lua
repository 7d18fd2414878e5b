--- One notifier's outbox: events wait here, in order, and up to
--- `concurrency` tasks of the notifier's deliver them, so a check never
--- waits for a receiver.
---
--- Bounded: at most `size` events wait (those being delivered aside); a
--- new one beyond that drops the oldest waiting (a lost "down" whose "up"
--- still goes is better than a lost resolve), logged and counted.
--- A failed delivery is retried after a backoff with full jitter,
--- `random() * min(backoff_max, backoff_base * 2 ^ (attempt - 1))`, until
--- the event is `max_age` seconds old: then it is dropped, logged and
--- counted. Oldest first, and one event of a monitor at a time: per
--- monitor, down then up, whatever is retried.
local core = require("moonwatch.core")
local M = {}

M.SIZE = 10000 -- every monitor of a large setup going down together
M.CONCURRENCY = 4
M.MAX_AGE = 3600
M.BACKOFF_BASE = 1
M.BACKOFF_MAX = 300

---@class moonwatch.alerts.Outbox
local Outbox = {}
Outbox.__index = Outbox

local function number_option(v, default, what, min)
  if v == nil then return default end
  if type(v) ~= "number" or v ~= v or v < min then
    error(string.format("%s must be a number of at least %s, got %s", what, min, tostring(v)), 0)
  end
  return v
end

--- The settings of an outbox, checked: size, max_age, backoff_base,
--- backoff_max, random (a function returning a number in [0, 1);
--- math.random), concurrency (deliveries at once).
function M.options(kwargs)
  local size = number_option(kwargs.size, M.SIZE, "outbox size", 1)
  if math.type(size) ~= "integer" then
    error("outbox size must be an integer, got " .. tostring(size), 0)
  end
  local random = kwargs.random or math.random
  if type(random) ~= "function" then
    error("outbox random must be a function returning a number in [0, 1)", 0)
  end
  local concurrency = number_option(kwargs.concurrency, M.CONCURRENCY, "outbox concurrency", 1)
  if math.type(concurrency) ~= "integer" then
    error("outbox concurrency must be an integer, got " .. tostring(concurrency), 0)
  end
  return {
    size = size,
    concurrency = concurrency,
    max_age = number_option(kwargs.max_age, M.MAX_AGE, "outbox max_age", 0),
    backoff_base = number_option(kwargs.backoff_base, M.BACKOFF_BASE, "outbox backoff_base", 0),
    backoff_max = number_option(kwargs.backoff_max, M.BACKOFF_MAX, "outbox backoff_max", 0),
    random = random,
  }
end

--- kwargs: notifier (with name and send), clock, store, logger, and the
--- options above.
function M.new(kwargs)
  local o = M.options(kwargs)
  return setmetatable({
    notifier = kwargs.notifier,
    name = kwargs.notifier.name,
    clock = kwargs.clock,
    store = kwargs.store,
    logger = kwargs.logger,
    size = o.size,
    concurrency = o.concurrency,
    max_age = o.max_age,
    backoff_base = o.backoff_base,
    backoff_max = o.backoff_max,
    random = o.random,
    queue = {},     -- items from head to tail; false where one was taken out
    head = 1,
    tail = 0,
    waiting = 0,
    busy = {},      -- monitor -> true while one of its events is being delivered
    workers = {},   -- task -> true
    nworkers = 0,
    delivering = 0,
    counters = { sent = 0, retried = 0, dropped = 0, dropped_overflow = 0,
                 dropped_max_age = 0 },
  }, Outbox)
end

--- The wait before attempt `attempt + 1`, after `attempt` failures.
---@param attempt integer
---@return number seconds
function Outbox:backoff(attempt)
  local cap = math.min(self.backoff_max, self.backoff_base * 2 ^ (attempt - 1))
  return self.random() * cap
end

--- Events waiting, and those being delivered.
function Outbox:length() return self.waiting + self.delivering end

local function drop(self, item, why, counter)
  local c = self.counters
  c.dropped = c.dropped + 1
  c[counter] = c[counter] + 1
  if item.id ~= nil then self.store:outbox_remove(self.name, item.id) end
  local e = item.event
  self.logger:error_with({ notifier = self.name, monitor = e.monitor, state = e.state },
    "notifier %s dropped the %s event of %s: %s", self.name, tostring(e.state),
    tostring(e.monitor), why)
end

-- Takes the item at i out of the queue: O(1) at the head, where it nearly
-- always is (a storm of 10,000 events stays linear).
local function take_at(self, i)
  local q = self.queue
  local item = q[i]
  q[i] = false
  self.waiting = self.waiting - 1
  local head, tail = self.head, self.tail
  while head <= tail and q[head] == false do
    q[head] = nil
    head = head + 1
  end
  if head > tail then head, tail = 1, 0 end
  self.head, self.tail = head, tail
  return item
end

-- The oldest waiting event of a monitor with none being delivered.
local function take(self)
  local q, busy = self.queue, self.busy
  for i = self.head, self.tail do
    local item = q[i]
    if item and not busy[item.event.monitor] then return take_at(self, i) end
  end
  return nil
end

-- The oldest waiting event.
local function oldest(self)
  local q = self.queue
  for i = self.head, self.tail do
    if q[i] then return take_at(self, i) end
  end
  return nil
end

local function attempt(self, item)
  local clock = self.clock
  while true do
    local ok, sent, err = pcall(self.notifier.send, self.notifier, item.event)
    if ok and sent then
      self.counters.sent = self.counters.sent + 1
      if item.id ~= nil then self.store:outbox_remove(self.name, item.id) end
      return
    end
    if not ok then err = sent end
    item.attempts = item.attempts + 1
    local wait = self:backoff(item.attempts)
    if clock:now() - item.created + wait > self.max_age then
      drop(self, item, string.format("not delivered in %d attempts within max_age %gs (%s)",
        item.attempts, self.max_age, tostring(err)), "dropped_max_age")
      return
    end
    self.counters.retried = self.counters.retried + 1
    self.logger:warning_with({ notifier = self.name, monitor = item.event.monitor },
      "notifier %s failed to deliver the %s event of %s (attempt %d, next in %.1fs): %s",
      self.name, tostring(item.event.state), tostring(item.event.monitor), item.attempts,
      wait, tostring(err))
    clock:sleep(wait)
  end
end

local function deliver(self, me)
  while true do
    local item = take(self)
    if not item then break end
    local monitor = item.event.monitor
    self.busy[monitor] = true
    self.delivering = self.delivering + 1
    attempt(self, item)
    self.busy[monitor] = nil
    self.delivering = self.delivering - 1
  end
  self.workers[me.task] = nil
  self.nworkers = self.nworkers - 1
end

local function start(self)
  if self.stopped then return end
  while self.nworkers < self.concurrency and self.nworkers < self.waiting do
    local me = {}
    me.task = core.spawn(deliver, self, me)
    self.workers[me.task] = true
    self.nworkers = self.nworkers + 1
  end
end

--- Queues an event; `item` fields (created, attempts, id) come from a store
--- when the outbox is reloaded after a restart.
---@param event table
---@param item table?
function Outbox:push(event, item)
  item = item or { created = self.clock:now(), attempts = 0 }
  item.event = event
  if item.id == nil then
    item.id = self.store:outbox_add(self.name, { event = event, created = item.created })
  end
  if self.waiting >= self.size then
    drop(self, oldest(self), string.format("the outbox is full (size %d)", self.size),
      "dropped_overflow")
  end
  self.tail = self.tail + 1
  self.queue[self.tail] = item
  self.waiting = self.waiting + 1
  start(self)
end

--- Loads what the store kept of this outbox (after a restart).
function Outbox:restore()
  for _, row in ipairs(self.store:outbox_load(self.name)) do
    self:push(row.item.event, { id = row.id, created = row.item.created, attempts = 0 })
  end
end

--- Ends delivery (the daemon stops): the task is cancelled, the events stay
--- in the store.
function Outbox:stop()
  self.stopped = true
  local workers = self.workers
  self.workers = {}
  for task in pairs(workers) do task:cancel() end
end

return M
