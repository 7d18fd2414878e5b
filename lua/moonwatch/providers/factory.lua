--- Providers that call a constructor with injected keyword arguments:
--- Factory (a new object per call), Callable (same, for plain functions) and
--- Singleton (built once, then cached on the provider).
---
--- The constructor is called with ONE table: the injected keyword arguments,
--- resolved at call time (providers called, plain values as they are), with
--- the call-time table laid over them: `ctor{http_client = ..., options = ...}`.
--- Write classes as callable tables (`HttpMonitor{...}`) or pass a function.
local core = require("moonwatch.providers.core")

local M = {}

local function check_ctor(kind, ctor, what)
  if not core.is_callable(ctor) then
    error(string.format("%s: %s must be callable (a function or a table with __call), got %s",
      kind, what, type(ctor)), 4)
  end
end

local function check_kwargs(kind, kwargs)
  if kwargs ~= nil and (type(kwargs) ~= "table" or core.is_provider(kwargs)) then
    error(string.format("%s: keyword arguments must be a plain table, got %s",
      kind, core.describe_value(kwargs)), 4)
  end
end

local function new_state(kind, ctor, kwargs, what)
  check_ctor(kind, ctor, what)
  check_kwargs(kind, kwargs)
  local copy = {}
  for k, v in pairs(kwargs or {}) do copy[k] = v end
  return { ctor = ctor, kwargs = copy, keys = core.ordered_keys(copy) }
end

local function build(st, call)
  return st.ctor(core.resolve_kwargs(st.kwargs, st.keys, call))
end

---------------------------------------------------------------------------

-- Factory and Callable are one implementation under two kind names. Lua has
-- no class/function split for them to differ on; both names stay because
-- monitors.lua reads like the dependency-injector container it is modelled
-- on, and the kind shows in chains (`<Callable>`) and error messages.
local function calling_kind(kind, what)
  local mt = core.class(kind, core.methods(), {
    provide = function(_, st, ...) return build(st, core.call_kwargs(...)) end,
  })
  return function(ctor, kwargs)
    return core.new(mt, new_state(kind, ctor, kwargs, what))
  end
end

---@class moonwatch.Factory : moonwatch.Provider
---@overload fun(kwargs?: table): any

---@class moonwatch.Callable : moonwatch.Provider
---@overload fun(kwargs?: table): any

--- A new object per call: `ctor(kwargs)`, injected providers resolved at call
--- time, call-time keyword arguments winning over injected ones.
---@type fun(ctor: function|table, kwargs?: table): moonwatch.Factory
M.Factory = calling_kind("Factory", "constructor")

--- Call `fn(kwargs)` on every call and return its result: Factory, for a
--- plain function.
---@type fun(fn: function|table, kwargs?: table): moonwatch.Callable
M.Callable = calling_kind("Callable", "function")

---------------------------------------------------------------------------

---@class moonwatch.Singleton : moonwatch.Provider
---@overload fun(): any
local SingletonMethods = core.methods()

--- Drop the built instance (the next call builds again) and reset the
--- singletons built from it, transitively, so none keeps the dropped one.
--- The singletons it was built from keep theirs. dependency-injector's
--- `reset()` drops this instance only, and `full_reset()` also those it was
--- built from; there is no `full_reset()` here (`container:reset_singletons()`
--- resets them all).
function SingletonMethods:reset()
  local st = core.state(self)
  st.built, st.instance = false, nil
  core.reset_dependents(self)
end

---@return boolean
function SingletonMethods:is_built() return core.state(self).built end

local SingletonMT = core.class("Singleton", SingletonMethods, {
  provide = function(_, st, ...)
    if select("#", ...) > 0 then error("a Singleton takes no call-time arguments", 0) end
    if st.built then return st.instance end
    core.mark_builder()
    local instance = build(st, nil)
    st.built, st.instance = true, instance
    return instance
  end,
  reset = function(p)  -- core.reset_dependents walks on to the dependents itself
    local st = core.state(p)
    st.built, st.instance = false, nil
  end,
  owned = true,
})

--- Built once, on first call, then the same object. Per container instance
--- when declared inside the builder (the builder runs once per instance).
---@param ctor function|table callable
---@param kwargs table?
---@return moonwatch.Singleton
function M.Singleton(ctor, kwargs)
  local st = new_state("Singleton", ctor, kwargs, "constructor")
  st.built = false
  return core.new(SingletonMT, st)
end

return M
