--- Alerts (`mw.Alerts`): one notification when a monitor goes DOWN, one when
--- it is UP again, through notifiers whose deliveries never hold a check.
---
---     c.alerts = providers.Singleton(mw.Alerts, {
---       state = c.state,
---       notifiers = providers.List(c.webhook),
---       rules = { app = { depends_on = { "gateway" }, reminder = 3600 } },
---     })
---     c.dispatcher = providers.Factory(mw.Dispatcher, { monitors = ...,
---       consumers = providers.List(c.state, c.alerts) })
---
--- It listens to the State's changes (State:on_change; one Alerts per State,
--- a new one replaces the one before), so a check that
--- changes nothing costs it nothing; it is listed among the Dispatcher's
--- consumers only to learn the monitors (on_monitor) and to stop its tasks
--- (on_stop), and has no on_result. Each notifier has an Outbox (its own
--- task, a bound, retries; moonwatch.alerts.outbox).
local Clock = require("moonwatch.alerts.clock")
local MemoryStore = require("moonwatch.alerts.memory_store")
local Outbox = require("moonwatch.alerts.outbox")
local SqliteStore = require("moonwatch.alerts.sqlite_store")
local notifiers = require("moonwatch.alerts.notifiers")
local State = require("moonwatch.state")
local log = require("moonwatch.log")
local suggest = require("moonwatch.suggest")

local M = {
  clock = Clock,
  notifiers = notifiers,
  Outbox = Outbox,
  MemoryStore = MemoryStore,
  SqliteStore = SqliteStore,
  RESEND = 60,
}

local rfc3339 = notifiers.rfc3339

---@class moonwatch.Alerts
local Alerts = {}
Alerts.__index = Alerts

local RULE_KEYS = { "notifiers", "depends_on", "reminder", "send_on_resolved", "labels" }
local KWARGS = { "state", "notifiers", "default", "rules", "store", "windows", "clock",
  "resend", "outbox", "send_on_resolved", "reminder", "labels" }

local function known(keys, what, t)
  local set = {}
  for _, k in ipairs(keys) do set[k] = true end
  for k in pairs(t) do
    if not set[k] then
      error(string.format("%s: unknown option %s%s", what, tostring(k),
        suggest.hint(tostring(k), keys)), 0)
    end
  end
end

local function seconds(v, what)
  if v == nil then return nil end
  if type(v) ~= "number" or v ~= v or v <= 0 then
    error(string.format("%s must be a number of seconds greater than 0, got %s", what,
      tostring(v)), 0)
  end
  return v
end

local function boolean(v, default, what)
  if v == nil then return default end
  if type(v) ~= "boolean" then error(what .. " must be true or false, got " .. tostring(v), 0) end
  return v
end

-- Notifiers as a list (each with its name) or a map name -> notifier.
local function notifier_map(given)
  local by_name, order = {}, {}
  if given == nil then return by_name, order end
  if type(given) ~= "table" then error("Alerts: notifiers must be a list of notifiers", 0) end
  local function add(n, key)
    if type(n) ~= "table" or type(n.send) ~= "function" then
      error(string.format("Alerts: notifiers[%s] is not a notifier (an object with a name "
        .. "and send(self, event))", tostring(key)), 0)
    end
    local name = type(key) == "string" and key or n.name
    if type(name) ~= "string" then
      error(string.format("Alerts: notifiers[%s] has no name", tostring(key)), 0)
    end
    if by_name[name] then error("Alerts: two notifiers are named " .. name, 0) end
    by_name[name] = n
    order[#order + 1] = name
  end
  if #given > 0 then
    for i, n in ipairs(given) do add(n, i) end
  else
    local keys = {}
    for k in pairs(given) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do add(given[k], k) end
  end
  return by_name, order
end

local function names_of(list, what, by_name, order)
  if list == nil then return nil end
  if type(list) ~= "table" then error(what .. " must be a list of notifier names", 0) end
  for _, n in ipairs(list) do
    if not by_name[n] then
      error(string.format("%s: no notifier is named %s%s", what, tostring(n),
        suggest.hint(tostring(n), order)), 0)
    end
  end
  return list
end

--- kwargs: state (the State whose changes it hears; required), notifiers
--- (a list, or a map name -> notifier), default (the names every monitor
--- uses; all of them when not given), rules ({ [monitor] = { notifiers,
--- depends_on, reminder, send_on_resolved, labels } }), send_on_resolved
--- (default true), reminder (seconds between reminders while DOWN; default
--- none), labels (for every event), store (default in memory), windows
--- (anything with in_maintenance(name, t) and next_change(t)), clock
--- (moonwatch.alerts.clock), resend (Alertmanager's interval, 60 s), outbox
--- ({ size, max_age, backoff_base, backoff_max, random, concurrency } for
--- every notifier).
---@return moonwatch.Alerts
function M.new(kwargs)
  if type(kwargs) ~= "table" then error("Alerts: expected a table of options", 0) end
  known(KWARGS, "Alerts", kwargs)
  if not State.is_state(kwargs.state) then
    error("Alerts: state must be the State whose changes raise alerts (state = c.state)", 0)
  end
  local clock = kwargs.clock or Clock.real()
  if not Clock.is_clock(clock) then
    error("Alerts: clock must have now(), after(s, fn) and sleep(s) (moonwatch.alerts.clock)", 0)
  end
  local store = kwargs.store or MemoryStore.new()
  for _, m in ipairs(MemoryStore.METHODS) do
    if type(store[m]) ~= "function" then error("Alerts: the store has no " .. m .. " method", 0) end
  end
  local windows = kwargs.windows
  if windows ~= nil
    and (type(windows) ~= "table" or type(windows.in_maintenance) ~= "function") then
    error("Alerts: windows must have in_maintenance(name, t)", 0)
  end
  local by_name, order = notifier_map(kwargs.notifiers)
  local rules = kwargs.rules or {}
  if type(rules) ~= "table" then error("Alerts: rules must be a table monitor = rule", 0) end
  for name, rule in pairs(rules) do
    local what = "Alerts: rules." .. tostring(name)
    if type(rule) ~= "table" then error(what .. " must be a table", 0) end
    known(RULE_KEYS, what, rule)
    names_of(rule.notifiers, what .. ".notifiers", by_name, order)
    seconds(rule.reminder, what .. ".reminder")
    boolean(rule.send_on_resolved, true, what .. ".send_on_resolved")
    if rule.depends_on ~= nil and type(rule.depends_on) ~= "table" then
      error(what .. ".depends_on must be a list of monitors (or their names)", 0)
    end
  end
  local outbox_opts = kwargs.outbox or {}
  if type(outbox_opts) ~= "table" then error("Alerts: outbox must be a table", 0) end
  known({ "size", "max_age", "backoff_base", "backoff_max", "random", "concurrency" },
    "Alerts: outbox", outbox_opts)
  Outbox.options(outbox_opts)
  local self = setmetatable({
    state = kwargs.state,
    clock = clock,
    store = store,
    windows = windows,
    notifier_by_name = by_name,
    notifier_order = order,
    default = names_of(kwargs.default, "Alerts: default", by_name, order) or order,
    rules = rules,
    send_on_resolved = boolean(kwargs.send_on_resolved, true, "Alerts: send_on_resolved"),
    reminder = seconds(kwargs.reminder, "Alerts: reminder"),
    labels = kwargs.labels,
    resend = seconds(kwargs.resend, "Alerts: resend") or M.RESEND,
    logger = log.get("Alerts"),
    outboxes = {},
    monitors = {},    -- name -> the alert record of a monitor (below)
    name_of = {},     -- monitor object -> name
    children = nil,   -- parent name -> { child names }, built on first use
  }, Alerts)
  for _, name in ipairs(order) do
    local n = by_name[name]
    self.outboxes[name] = Outbox.new{
      notifier = n, clock = clock, store = store, logger = self.logger,
      size = outbox_opts.size, max_age = outbox_opts.max_age,
      backoff_base = outbox_opts.backoff_base, backoff_max = outbox_opts.backoff_max,
      random = outbox_opts.random, concurrency = outbox_opts.concurrency,
    }
    if type(n.start) == "function" then
      n:start{ clock = clock, resend = self.resend, logger = self.logger }
    end
    self.outboxes[name]:restore()
  end
  -- One Alerts per State: a new one (a Singleton rebuilt after a spec's
  -- override) replaces the one before, which would otherwise alert too.
  for _, l in ipairs(kwargs.state.listeners) do
    if getmetatable(l) == Alerts then
      l:on_stop()
      kwargs.state:off_change(l)
      break
    end
  end
  kwargs.state:on_change(self)
  return self
end

-- A monitor's record: name, rule, url, sent (the store's record of the
-- "down" that went out: since, reason, at), held ("dependency" with
-- held_by, or "maintenance"), reminder (its timer).
local function record(self, name)
  local a = self.monitors[name]
  if not a then
    a = { name = name, rule = self.rules[name] or {}, sent = self.store:sent(name) }
    self.monitors[name] = a
  end
  return a
end

local function url_of(monitor)
  if type(monitor) ~= "table" then return nil end
  local req = rawget(monitor, "request")
  return type(req) == "table" and req.url or monitor.url or monitor.target
end

--- The Dispatcher names a monitor: its URL is kept for the events.
function Alerts:on_monitor(monitor, name)
  local a = record(self, name)
  a.url = url_of(monitor)
  self.name_of[monitor] = name
  self.children = nil
end

-- A parent by name, or by monitor: the very object the Dispatcher runs, or
-- one of the same name (a Factory builds a new object per call).
local function dep_name(self, d)
  if type(d) == "string" then return d end
  local name = self.name_of[d]
  if name == nil and type(d) == "table" and d.name ~= nil then name = tostring(d.name) end
  return name
end

-- The parent of a that is DOWN, if any.
local function down_parent(self, a)
  local deps = a.rule.depends_on
  if not deps then return nil end
  for _, d in ipairs(deps) do
    local name = dep_name(self, d)
    local e = name and self.state:get(name)
    if e and e.state == "DOWN" then return name end
  end
  return nil
end

local function children_of(self, parent)
  if not self.children then
    local map = {}
    for child, rule in pairs(self.rules) do
      for _, d in ipairs(rule.depends_on or {}) do
        local name = dep_name(self, d)
        if name then
          map[name] = map[name] or {}
          table.insert(map[name], child)
        end
      end
    end
    self.children = map
  end
  return self.children[parent] or {}
end

local function rule_value(self, a, key)
  local v = a.rule[key]
  if v == nil then return self[key] end
  return v
end

local function enqueue(self, a, event)
  local names = a.rule.notifiers or self.default
  for _, n in ipairs(names) do self.outboxes[n]:push(event) end
end

local function event_of(self, a, state, now)
  local sent = a.sent
  local e = self.state:get(a.name)
  local since = rfc3339(sent and sent.since or e and e.since or now)
  local ev = {
    -- the same for every delivery of this event, across restarts too: a
    -- receiver drops a repeat by it (delivery is at least once)
    id = state .. " " .. since .. " " .. a.name,
    monitor = a.name,
    state = state,
    reason = state == "down" and (e and e.reason or sent and sent.reason) or nil,
    since = since,
    at = rfc3339(now),
    url = a.url,
  }
  if self.labels or a.rule.labels then -- plain values: stored and encoded as they are
    local plain = {}
    for k, v in pairs(self.labels or {}) do plain[k] = v end
    for k, v in pairs(a.rule.labels or {}) do plain[k] = v end
    ev.labels = plain
  end
  return ev
end

local function cancel_reminder(a)
  if a.reminder then
    a.reminder:cancel()
    a.reminder = nil
  end
end

local function arm_reminder(self, a)
  local every = rule_value(self, a, "reminder")
  if not every then return end
  cancel_reminder(a)
  a.reminder = self.clock:after(every, function()
    a.reminder = nil
    local e = self.state:get(a.name)
    if not a.sent or not e or e.state ~= "DOWN" then return end
    local ev = event_of(self, a, "down", self.clock:now())
    ev.reminder = true
    ev.id = "reminder " .. ev.at .. " " .. a.name
    enqueue(self, a, ev)
    arm_reminder(self, a)
  end)
end

local function fire_down(self, a, now)
  local e = self.state:get(a.name)
  a.held, a.held_by = nil, nil
  a.sent = { since = e.since, reason = e.reason, at = now }
  self.store:mark_sent(a.name, a.sent)
  enqueue(self, a, event_of(self, a, "down", now))
  arm_reminder(self, a)
end

local arm_maintenance

-- A DOWN monitor whose down has not gone out: now, or held, and why.
local function evaluate(self, a, now)
  local e = self.state:get(a.name)
  if a.sent or not e or e.state ~= "DOWN" then
    a.held, a.held_by = nil, nil
    return
  end
  if self.windows and self.windows:in_maintenance(a.name, now) then
    a.held, a.held_by = "maintenance", nil
    arm_maintenance(self, now)
    return
  end
  local parent = down_parent(self, a)
  if parent then
    a.held, a.held_by = "dependency", parent
    return
  end
  fire_down(self, a, now)
end

-- One timer, at the windows' next change, for the monitors maintenance holds.
arm_maintenance = function(self, now)
  local w = self.windows
  if type(w.next_change) ~= "function" then return end
  local at = w:next_change(now)
  if not at then return end
  if self.maintenance_timer then
    if self.maintenance_at <= at then return end
    self.maintenance_timer:cancel()
  end
  self.maintenance_at = at
  self.maintenance_timer = self.clock:after(at - now, function()
    self.maintenance_timer, self.maintenance_at = nil, nil
    local t = self.clock:now()
    for _, a in pairs(self.monitors) do
      if a.held == "maintenance" then evaluate(self, a, t) end
    end
  end)
end

--- A change of the State (State:on_change).
function Alerts:on_change(entry, from, to)
  local now = self.clock:now()
  local a = record(self, entry.name)
  self.store:save_state(entry.name, entry)
  if to == "DOWN" then
    if a.sent then
      -- after a restart, the "down" of this incident already went out:
      -- notifiers that keep alerts alive (Alertmanager) take it up again
      local ev = event_of(self, a, "down", now)
      for _, n in ipairs(a.rule.notifiers or self.default) do
        local notifier = self.notifier_by_name[n]
        if type(notifier.resume) == "function" then notifier:resume(ev) end
      end
      arm_reminder(self, a)
    else
      evaluate(self, a, now)
    end
  elseif to == "UP" then
    cancel_reminder(a)
    a.held, a.held_by = nil, nil
    if a.sent then
      -- resolves are never held: not by a parent, not by maintenance
      if rule_value(self, a, "send_on_resolved") then
        local ev = event_of(self, a, "up", now)
        ev.down_for_s = math.max(0, now - a.sent.since)
        enqueue(self, a, ev)
      end
      a.sent = nil
      self.store:mark_sent(a.name, nil)
    end
    if from == "DOWN" then
      for _, child in ipairs(children_of(self, entry.name)) do
        local c = self.monitors[child]
        if c and c.held == "dependency" then evaluate(self, c, now) end
      end
    end
  end
end

--- A reload removed the monitor (or replaced it by one of another kind):
--- an alert open for it is resolved, as an "up" event with `removed = true`
--- and the reason, since no check will ever close it; its reminder stops
--- and the engine forgets it. why: "removed" or "replaced".
function Alerts:on_remove(monitor, name, why)
  local a = self.monitors[name]
  if not a then return end
  cancel_reminder(a)
  if a.sent then
    if rule_value(self, a, "send_on_resolved") then
      local now = self.clock:now()
      local ev = event_of(self, a, "up", now)
      ev.removed = true
      ev.reason = why == "replaced" and "replaced by a monitor of another kind in a reload"
        or "removed from the configuration"
      ev.down_for_s = math.max(0, now - a.sent.since)
      enqueue(self, a, ev)
    end
    self.store:mark_sent(name, nil)
  end
  self.monitors[name] = nil
  if monitor ~= nil then self.name_of[monitor] = nil end
  self.children = nil
end

--- What a monitor's state reads with its alerts: "down (gateway is down)",
--- "maintenance", or the State's ("up", "down", "pending").
---@param name string
---@return string?
function Alerts:status(name)
  local e = self.state:get(name)
  if not e then return nil end
  if self.windows and self.windows:in_maintenance(name, self.clock:now()) then
    return "maintenance"
  end
  local a = self.monitors[name]
  if e.state == "DOWN" and a and a.held == "dependency" then
    return string.format("down (%s is down)", a.held_by)
  end
  return e.state:lower()
end

--- Counters per notifier: sent, retried, dropped (dropped_overflow,
--- dropped_max_age), queued.
---@return table<string, table>
function Alerts:counters()
  local out = {}
  for name, box in pairs(self.outboxes) do
    local c = {}
    for k, v in pairs(box.counters) do c[k] = v end
    c.queued = box:length()
    out[name] = c
  end
  return out
end

--- The Dispatcher stops: timers and deliveries end (the outboxes stay in
--- the store).
function Alerts:on_stop()
  for _, a in pairs(self.monitors) do cancel_reminder(a) end
  if self.maintenance_timer then self.maintenance_timer:cancel() end
  for _, name in ipairs(self.notifier_order) do
    self.outboxes[name]:stop()
    local n = self.notifier_by_name[name]
    if type(n.stop) == "function" then n:stop() end
  end
end
Alerts.stop = Alerts.on_stop

return setmetatable(M, { __call = function(_, kwargs) return M.new(kwargs) end })
