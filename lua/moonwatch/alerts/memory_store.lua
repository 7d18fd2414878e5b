--- The store of the alerts, in memory (lost on exit): what a durable store
--- (SQLite) provides too, so the engine takes either.
---
---     store:mark_sent(monitor, record)   -- a "down" went out: {since, reason, at}
---     store:mark_sent(monitor, nil)      -- resolved: forget it
---     store:sent(monitor)                --> record or nil
---     store:save_state(monitor, entry)   -- {state, since, reason} on a change
---     store:load_states()                --> { [monitor] = {state, since, reason} }
---     store:outbox_add(notifier, item)   --> id (item: a table of plain values)
---     store:outbox_remove(notifier, id)
---     store:outbox_load(notifier)        --> { {id = id, item = item}, ... } oldest first
---
--- The engine calls them on a change or a delivery, never per check.
local Store = {}
Store.__index = Store

local M = {}

function M.new()
  return setmetatable({ states = {}, sent_by = {}, outboxes = {}, next_id = 0 }, Store)
end

function Store:save_state(monitor, entry)
  self.states[monitor] = { state = entry.state, since = entry.since, reason = entry.reason }
end

function Store:load_states()
  local out = {}
  for k, v in pairs(self.states) do out[k] = v end
  return out
end

function Store:mark_sent(monitor, record) self.sent_by[monitor] = record end
function Store:sent(monitor) return self.sent_by[monitor] end

-- A notifier's outbox: id -> item (ids grow, so their order is the order
-- of arrival).
local function box(self, notifier)
  local b = self.outboxes[notifier]
  if not b then
    b = {}
    self.outboxes[notifier] = b
  end
  return b
end

function Store:outbox_add(notifier, item)
  self.next_id = self.next_id + 1
  box(self, notifier)[self.next_id] = item
  return self.next_id
end

function Store:outbox_remove(notifier, id) box(self, notifier)[id] = nil end

function Store:outbox_load(notifier)
  local out = {}
  for id, item in pairs(box(self, notifier)) do out[#out + 1] = { id = id, item = item } end
  table.sort(out, function(a, b) return a.id < b.id end)
  return out
end

M.METHODS = { "save_state", "load_states", "mark_sent", "sent", "outbox_add",
  "outbox_remove", "outbox_load" }

return setmetatable(M, { __call = function() return M.new() end })
