--- Machinery shared by every provider kind.
---
--- * Identity: a value is a provider when its metatable is one registered
---   here. Nothing else is probed, because settings proxies answer any key and
---   luassert spies are callable tables.
--- * Resolution context: each coroutine keeps a stack of the providers being
---   resolved and of the keyword/index keys that led to them. It yields the
---   error chain (`dispatcher → monitors[1] → example_monitor: boom`), detects
---   cycles before they overflow the C stack, and records which singletons
---   are being built so that overriding a provider can reset its dependents.
---   The stack is per coroutine because a constructor may yield.
--- * Overriding: a stack of entries per provider, removed by handle.
local M = {}

local ARROW = " → "

--- Private key of a provider's state. A table key cannot collide with the
--- string or integer keys a configuration option answers to.
local STATE = setmetatable({}, { __name = "moonwatch.provider.state" })
M.STATE = STATE

local classes = {}  -- metatable -> true, for every provider kind

local seq = 0
--- A process-wide increasing number (override order, resource init order).
---@return integer
function M.next_seq()
  seq = seq + 1
  return seq
end

---@param x any
---@return boolean
function M.is_provider(x)
  return type(x) == "table" and classes[getmetatable(x)] == true
end

---@param p any
---@return string? kind "Factory", "Singleton", ... ("Option" for option references),
---  nil when `p` is not a provider
function M.kind_of(p)
  if not M.is_provider(p) then return nil end
  return getmetatable(p).kind
end

---@param p table a provider
---@return table state
function M.state(p)
  return rawget(p, STATE)
end

---@param p table a provider
---@return string # its name, or `<Kind>` when anonymous
function M.describe(p)
  local st = rawget(p, STATE)
  return st.name or ("<" .. getmetatable(p).kind .. ">")
end

--- Describe a plain value in an error message.
---@param v any
---@return string
function M.describe_value(v)
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) == "number" or type(v) == "boolean" or v == nil then return tostring(v) end
  if M.is_provider(v) then return getmetatable(v).kind .. " " .. M.describe(v) end
  return type(v)
end

---@param f any
---@return boolean
function M.is_callable(f)
  if type(f) == "function" then return true end
  if type(f) ~= "table" and type(f) ~= "userdata" then return false end
  local mt = getmetatable(f)
  return type(mt) == "table" and mt.__call ~= nil
end

---------------------------------------------------------------------------
-- Errors carrying the resolution chain

local ChainError = { __name = "moonwatch.ChainError" }
ChainError.__tostring = function(e)
  if e.chain == "" then return e.message end
  return e.chain .. ": " .. e.message
end

---------------------------------------------------------------------------
-- Resolution context

local stacks = setmetatable({}, { __mode = "k" })  -- coroutine -> stack

local function current_stack()
  local co = coroutine.running()
  local s = stacks[co]
  if not s then
    s = { n = 0, active = {} }
    stacks[co] = s
  end
  return s
end

--- Render entries [from, to] of a stack as a chain. Provider entries carry
--- `label` (named), `kind` (anonymous) or `silent` (references and options,
--- which never add a segment); key entries carry `key` and `suffix`. A key is
--- shown only when it leads to an anonymous provider (or to the failure
--- itself): when it leads to a named provider the name says more.
local function render(entries, from, to)
  local out, pending = {}, nil
  for i = from, to do
    local e = entries[i]
    if e.key ~= nil then
      if e.suffix then
        if pending then out[#out + 1], pending = pending, nil end
        if #out == 0 then out[1] = "" end
        out[#out] = out[#out] .. e.key
      else
        if pending then out[#out + 1] = pending end
        pending = e.key
      end
    elseif e.label then
      pending = nil
      out[#out + 1] = e.label
    elseif not e.silent then
      if pending then
        out[#out + 1], pending = pending, nil
      elseif #out == 0 or e.force then
        out[#out + 1] = "<" .. e.kind .. ">"
      end
    end
  end
  if pending then out[#out + 1] = pending end
  return table.concat(out, ARROW)
end

local function frame_for(p)
  local mt = getmetatable(p)
  return { p = p, label = rawget(p, STATE).name, kind = mt.kind, silent = mt.silent }
end

local function cycle_error(s, p)
  local start = s.active[p]
  local cycle = {}
  for i = start, s.n do cycle[#cycle + 1] = s[i] end
  local last = frame_for(p)
  last.force = true
  cycle[#cycle + 1] = last
  return setmetatable({
    chain = render(s, 1, start - 1),
    message = "dependency cycle: " .. render(cycle, 1, #cycle),
  }, ChainError)
end

local resolve

local function provide(p, mt, st, ...)
  if not mt.custom_override then
    local top = st.overrides[#st.overrides]
    if top then
      if top.provider then return resolve(top.value, ...) end
      return top.value
    end
  end
  return mt.provide(p, st, ...)
end

--- Resolve a provider: the value of `p(...)`.
---@param p table a provider
---@param ... any call-time arguments
---@return any
function resolve(p, ...)
  local s = current_stack()
  if s.active[p] then error(cycle_error(s, p)) end
  local mt = getmetatable(p)
  local st = rawget(p, STATE)
  local base = s.n
  for i = 1, base do  -- p is a dependency of every singleton being built
    local e = s[i]
    if e.builder then
      local deps = st.dependents
      if not deps then
        -- weak keys: a dependent that is gone is forgotten. Made on first
        -- use, as every weak table is traversed again in the collector's
        -- atomic phase, and 10,000 empty ones cost 3 ms of pause per cycle.
        deps = setmetatable({}, { __mode = "k" })
        st.dependents = deps
      end
      deps[e.p] = true
    end
  end
  local n = base + 1
  s[n], s.n, s.active[p] = frame_for(p), n, n
  local ok, result = pcall(provide, p, mt, st, ...)
  if not ok and getmetatable(result) ~= ChainError then
    result = setmetatable({ chain = render(s, 1, n), message = tostring(result) }, ChainError)
  end
  for i = s.n, n, -1 do s[i] = nil end  -- also drops keys an error left behind
  s.n, s.active[p] = base, nil
  if ok then return result end
  if base == 0 then error(tostring(result), 0) end
  error(result, 0)
end
M.resolve = resolve

--- Mark the provider being resolved as a singleton under construction: every
--- provider resolved until it returns is recorded as one of its dependencies.
function M.mark_builder()
  local s = current_stack()
  s[s.n].builder = true
end

local function is_identifier(k)
  return type(k) == "string" and k:match("^[%a_][%w_]*$") ~= nil
end

--- How a table key reads after its container: `[1]`, `.name` or `["a b"]`.
---@param k any
---@return string
function M.key_suffix(k)
  if math.type(k) == "integer" then return "[" .. k .. "]" end
  if is_identifier(k) then return "." .. k end
  if type(k) == "string" then return string.format("[%q]", k) end
  return "[" .. tostring(k) .. "]"
end

--- Resolve `v` if it is a provider, noting in the chain the key it sits at.
---@param v any
---@param key any
---@param as_suffix boolean? render the key after the previous segment (`[1]`, `.x`)
---@param ... any call-time arguments
---@return any
function M.resolve_at(v, key, as_suffix, ...)
  if not M.is_provider(v) then return v end
  local s = current_stack()
  local n = s.n + 1
  local label
  if as_suffix then
    label = M.key_suffix(key)
  elseif type(key) == "string" then
    label = key
  else
    label, as_suffix = M.key_suffix(key), true
  end
  s[n], s.n = { key = label, suffix = as_suffix }, n
  local value = resolve(v, ...)
  s[n], s.n = nil, n - 1
  return value
end

--- Keys of a table in a stable order: integers ascending, then the others
--- sorted by their string form. Resolution order must not depend on `pairs`.
---@param t table
---@return any[]
function M.ordered_keys(t)
  local ints, others = {}, {}
  for k in pairs(t) do
    if math.type(k) == "integer" then ints[#ints + 1] = k else others[#others + 1] = k end
  end
  table.sort(ints)
  table.sort(others, function(a, b)
    local ta, tb = type(a), type(b)
    if ta ~= tb then return ta < tb end
    return tostring(a) < tostring(b)
  end)
  table.move(others, 1, #others, #ints + 1, ints)
  return ints
end

--- Resolve a keyword table: providers resolved, plain values as they are,
--- then the call-time table (which wins) laid over it.
---@param kwargs table
---@param keys any[] ordered keys of kwargs
---@param call table? call-time keyword arguments
---@return table
function M.resolve_kwargs(kwargs, keys, call)
  local out = {}
  for _, k in ipairs(keys) do out[k] = M.resolve_at(kwargs[k], k) end
  if call then
    for k, v in pairs(call) do out[k] = v end
  end
  return out
end

--- Check call-time arguments: nothing, nil, or one table of keyword arguments.
---@return table?
function M.call_kwargs(...)
  local n, call = select("#", ...), ...
  if n > 1 or (call ~= nil and type(call) ~= "table") then
    error(string.format(
      "call-time arguments must be one table of keyword arguments, got %s",
      n > 1 and (n .. " values") or type(call)), 0)
  end
  return call
end

---------------------------------------------------------------------------
-- Classes

local function tostring_provider(p)
  local st = rawget(p, STATE)
  return getmetatable(p).kind .. " " .. (st.name or "(anonymous)")
end

--- Register a provider kind.
---@param kind string
---@param methods table? methods of its instances
---@param hooks table `provide(p, state, ...)` and optional `reset`, `invalidate`,
---  `custom_override`, `silent`, `__index`, `__tostring`
---@return table metatable
function M.class(kind, methods, hooks)
  local mt = {
    __name = "moonwatch." .. kind,
    __index = methods,
    __call = resolve,
    __tostring = tostring_provider,
    kind = kind,
  }
  for k, v in pairs(hooks) do mt[k] = v end
  classes[mt] = true
  return mt
end

--- Create a provider of a registered kind.
---@param mt table
---@param st table initial state
---@return table provider
function M.new(mt, st)
  st.overrides = {}
  return setmetatable({ [STATE] = st }, mt)
end

--- Give a provider its container name, unless it already has one.
---@param p table
---@param name string
function M.set_name(p, name)
  local st = rawget(p, STATE)
  if st.name == nil then
    st.name = name
    local mt = getmetatable(p)
    if mt.on_named then mt.on_named(p, name) end
  end
end

---------------------------------------------------------------------------
-- Resetting singletons
--
-- The DEPENDENTS of a provider are the singletons built from it: those whose
-- construction resolved it, directly or through other providers (a cached
-- singleton counts, so a reset travels on through it).
-- Overriding a provider, removing the override (a handle or reset_override),
-- Singleton:reset and Resource:shutdown each reset the provider's dependents
-- (for an option, those of every option overlapping it), transitively, and
-- never the singletons it was built from. An override keeps the provider's
-- own instance (a built Singleton, an initialised Resource) for after it.
-- A Resource is never a dependent: it is shut down explicitly, not reset.
--
-- dependency-injector resets nothing on override, so a singleton built
-- before it keeps the real dependency; its `reset()` drops one singleton and
-- `full_reset()` that one and the singletons it was built from. Resetting
-- dependents on override is what makes a spec override reach a singleton
-- that is already built.

--- Reset every singleton that was built from `p`, and theirs in turn.
---@param p table
---@param seen table? providers already reset in this sweep
function M.reset_dependents(p, seen)
  seen = seen or {}
  for d in pairs(rawget(p, STATE).dependents or {}) do
    if not seen[d] then
      seen[d] = true
      local mt = getmetatable(d)
      if mt.reset then mt.reset(d) end
      M.reset_dependents(d, seen)
    end
  end
end

local function invalidate(p)
  local mt = getmetatable(p)
  if mt.invalidate then mt.invalidate(p) else M.reset_dependents(p) end
end

---------------------------------------------------------------------------
-- Overriding

---@class moonwatch.OverrideHandle
---Removes exactly the override entries it was made for; idempotent.
---Works as a to-be-closed variable: `local _ <close> = p:override(x)`.
local Handle = { __name = "moonwatch.OverrideHandle" }
Handle.__index = Handle

local function remove_entry(p, entry)
  local list = rawget(p, STATE).overrides
  for i = #list, 1, -1 do
    if list[i] == entry then
      table.remove(list, i)
      invalidate(p)
      return
    end
  end
end

--- Remove this handle's overrides (later calls do nothing), resetting the
--- singletons built from each overridden provider.
function Handle:remove()
  local entries = self.entries
  self.entries = {}
  for i = #entries, 1, -1 do remove_entry(entries[i][1], entries[i][2]) end
end
Handle.__close = Handle.remove

---@return boolean # whether the handle still holds an override
function Handle:active()
  for _, pe in ipairs(self.entries) do
    for _, e in ipairs(rawget(pe[1], STATE).overrides) do
      if e == pe[2] then return true end
    end
  end
  return false
end

--- Push an override without making a handle.
---@return table entry
function M.push_override(p, value)
  if value == nil then
    error(string.format(
      "%s: cannot override with nil (use providers.Object(nil) for a nil value)",
      M.describe(p)), 3)
  end
  local list = rawget(p, STATE).overrides
  local entry = { value = value, provider = M.is_provider(value), seq = M.next_seq() }
  list[#list + 1] = entry
  invalidate(p)
  return entry
end

--- Make a handle for a list of `{provider, entry}` pairs.
---@return moonwatch.OverrideHandle
function M.handle(entries)
  return setmetatable({ entries = entries }, Handle)
end

--- Remove every override of `p`; when there was one, reset its dependents.
function M.reset_override(p)
  local st = rawget(p, STATE)
  if #st.overrides > 0 then
    st.overrides = {}
    invalidate(p)
  end
end

---@return boolean
function M.is_overridden(p)
  return #rawget(p, STATE).overrides > 0
end

--- The top override entry of `p`, if any.
---@return table?
function M.top_override(p)
  local list = rawget(p, STATE).overrides
  return list[#list]
end

--- Value of an override entry: a provider is called, a plain value used as is.
function M.override_value(entry, ...)
  if entry.provider then return resolve(entry.value, ...) end
  return entry.value
end

--- Methods every ordinary provider shares.
---@class moonwatch.Provider
local Base = {}
M.Base = Base

--- Override this provider: a plain value is returned as is, a provider is
--- called instead. Overrides stack; the handle removes exactly this one.
--- The singletons built from this provider (its dependents, transitively)
--- are reset now and again on removal, so an override reaches a singleton
--- already built and does not outlive its handle in one. The provider's own
--- instance (a built Singleton, an initialised Resource) is kept for after
--- the override. dependency-injector resets nothing on override.
---@param value any
---@return moonwatch.OverrideHandle
function Base:override(value) return M.handle({ { self, M.push_override(self, value) } }) end

--- Remove every override of this provider and, when there was one, reset
--- the singletons built from it (as removing each handle would). Nothing is
--- reset when it was not overridden.
function Base:reset_override() M.reset_override(self) end

---@return boolean
function Base:is_overridden() return M.is_overridden(self) end

--- Build a methods table inheriting the shared provider methods.
---@param methods table?
---@return table
function M.methods(methods)
  methods = methods or {}
  for k, v in pairs(Base) do
    if methods[k] == nil then methods[k] = v end
  end
  return methods
end

return M
