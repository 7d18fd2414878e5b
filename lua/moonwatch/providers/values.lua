--- Providers that compose values rather than construct objects: Object,
--- List, Dict, Dependency (an abstract slot) and Selector.
local core = require("moonwatch.providers.core")

local M = {}

---------------------------------------------------------------------------

---@class moonwatch.Object : moonwatch.Provider
---@overload fun(...): any
local ObjectMethods = core.methods()

local ObjectMT = core.class("Object", ObjectMethods, {
  provide = function(_, st) return st.value end,
})

--- Always the given value, as is (call-time arguments are ignored).
---@param value any
---@return moonwatch.Object
function M.Object(value)
  return core.new(ObjectMT, { value = value })
end

---------------------------------------------------------------------------

---@class moonwatch.List : moonwatch.Provider
---@overload fun(...): any[]
local ListMethods = core.methods()

local ListMT = core.class("List", ListMethods, {
  provide = function(_, st, ...)
    local out = {}
    for i = 1, st.n do out[i] = core.resolve_at(st.items[i], i, true) end
    local extra = select("#", ...)
    for i = 1, extra do out[st.n + i] = (select(i, ...)) end
    return out
  end,
})

--- A new array per call, each provider item resolved, plain items as they
--- are; call-time arguments are appended.
---@param ... any items
---@return moonwatch.List
function M.List(...)
  return core.new(ListMT, { items = { ... }, n = select("#", ...) })
end

---------------------------------------------------------------------------

---@class moonwatch.Dict : moonwatch.Provider
---@overload fun(kwargs?: table): table
local DictMethods = core.methods()

local DictMT = core.class("Dict", DictMethods, {
  provide = function(_, st, ...)
    local call = core.call_kwargs(...)
    local out = {}
    for _, k in ipairs(st.keys) do out[k] = core.resolve_at(st.items[k], k, true) end
    if call then
      for k, v in pairs(call) do out[k] = v end
    end
    return out
  end,
})

--- A new table per call with each provider value resolved; a call-time
--- table is laid over it.
---@param items table
---@return moonwatch.Dict
function M.Dict(items)
  if type(items) ~= "table" or core.is_provider(items) then
    error("Dict: expected a table, got " .. core.describe_value(items), 2)
  end
  local copy = {}
  for k, v in pairs(items) do copy[k] = v end
  return core.new(DictMT, { items = copy, keys = core.ordered_keys(copy) })
end

---------------------------------------------------------------------------

---@class moonwatch.Dependency : moonwatch.Provider
---@overload fun(...): any
local DependencyMethods = core.methods()

--- Whether a value will be there: overridden, or has a default.
---@return boolean
function DependencyMethods:is_defined()
  local st = core.state(self)
  return core.is_overridden(self) or st.default ~= nil
end

local function run_check(check, value)
  if check == nil then return true end
  if type(check) == "string" then
    if type(value) == check then return true end
    return false, string.format("expected %s, got %s", check, type(value))
  end
  local ok, msg = check(value)
  if ok then return true end
  return false, msg and tostring(msg) or ("got " .. core.describe_value(value))
end

local DependencyMT = core.class("Dependency", DependencyMethods, {
  custom_override = true,  -- the check applies to the provided value too
  provide = function(p, st, ...)
    local value
    local top = core.top_override(p)
    if top then
      value = core.override_value(top, ...)
    elseif core.is_provider(st.default) then
      value = core.resolve(st.default, ...)
    elseif st.default ~= nil then
      value = st.default
    else
      error("dependency is not provided (override it, or give it a default)", 0)
    end
    local ok, msg = run_check(st.check, value)
    if not ok then error("dependency check failed: " .. msg, 0) end
    return value
  end,
})

--- An abstract slot that must be provided by overriding it
--- (`c.db:override(x)`, `container:override_providers{db = x}`).
--- `check` is a Lua type name ("table") or a function `check(value) ->
--- ok[, message]`; it applies to the provided value and to the default.
---@param check (string|fun(value: any): boolean, string?)?
---@param default any a value or a provider used when not overridden
---@return moonwatch.Dependency
function M.Dependency(check, default)
  if check ~= nil and type(check) ~= "string" and not core.is_callable(check) then
    error("Dependency: check must be a type name or a function, got " .. type(check), 2)
  end
  return core.new(DependencyMT, { check = check, default = default })
end

---------------------------------------------------------------------------

---@class moonwatch.Selector : moonwatch.Provider
---@overload fun(...): any
local SelectorMethods = core.methods()

local SelectorMT = core.class("Selector", SelectorMethods, {
  provide = function(_, st, ...)
    local key
    if core.is_provider(st.option) then key = core.resolve(st.option) else key = st.option() end
    if key == nil then
      error("selector option is not set (choices: " .. st.choices .. ")", 0)
    end
    local chosen = st.map[key]
    if chosen == nil then
      error(string.format("no provider for %s (choices: %s)",
        core.describe_value(key), st.choices), 0)
    end
    return core.resolve_at(chosen, key, true, ...)
  end,
})

--- Call the provider named by the current value of `option` (a provider,
--- usually a configuration option, or a function).
---@param option table|function
---@param map table<string, any> choice -> provider (or plain value)
---@return moonwatch.Selector
function M.Selector(option, map)
  if not core.is_provider(option) and not core.is_callable(option) then
    error("Selector: option must be a provider or a function, got "
      .. core.describe_value(option), 2)
  end
  if type(map) ~= "table" or core.is_provider(map) then
    error("Selector: expected a table of choices, got " .. core.describe_value(map), 2)
  end
  local copy, names = {}, {}
  for k, v in pairs(map) do
    copy[k] = v
    names[#names + 1] = tostring(k)
  end
  table.sort(names)
  return core.new(SelectorMT, { option = option, map = copy, choices = table.concat(names, ", ") })
end

return M
