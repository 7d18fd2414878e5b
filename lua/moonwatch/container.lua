--- Containers: named providers wired by a builder function.
---
---     local definition = mw.container(function(c)
---       c.http_client = providers.Singleton(Client)
---       c.monitor = providers.Factory(HttpMonitor, { http_client = c.http_client })
---     end)
---     local container = definition()      -- or definition:new()
---     container.monitor()                 -- builds; container.monitor is the provider
---
--- `mw.container(builder)` returns a DEFINITION; each call of it (`def()`,
--- `def:new(...)`) runs the builder on a fresh INSTANCE and returns it. Extra
--- arguments are passed to the builder after `c`. So `dofile("monitors.lua")`
--- gives a definition, and a spec makes a fresh instance per test.
---
--- Because the builder runs once per instance, every provider created inside
--- it belongs to that instance: its singletons, resources and overrides are
--- its own. Providers created outside the builder (the module-level
--- `config` in monitors.lua) are shared by all instances, overrides included;
--- that is meant for a Configuration. A Singleton or Resource registered in
--- a second instance is an error, since its state cannot be shared safely.
---
--- In the builder, `c.x` is the provider when `x` is already defined, else a
--- reference resolved by name when called, so a provider may use one defined
--- later. A name still undefined when the builder returns is an error.
--- On an instance, `c.x` for an unknown name is an error; instances cannot
--- be assigned to after the builder: override instead.
local core = require("moonwatch.providers.core")

local M = {}

local INSTANCE = setmetatable({}, { __name = "moonwatch.container.state" })

---@class moonwatch.Container
---@field [string] moonwatch.Provider
local Instance = {}

local function state_of(c)
  local st = type(c) == "table" and rawget(c, INSTANCE)
  if not st then
    error("expected a container instance (use container:method(), not container.method())", 3)
  end
  return st
end

local function quote(name) return "'" .. tostring(name) .. "'" end

---------------------------------------------------------------------------
-- References to providers by name

local RefMethods = {}

local function ref_target(ref, level)
  local st = core.state(ref)
  local target = st.container.providers[st.ref_name]
  if not target then error("unknown provider " .. quote(st.ref_name), level) end
  return target
end

--- Override the provider this reference names.
---@return moonwatch.OverrideHandle
function RefMethods:override(value)
  local target = ref_target(self, 2)
  return core.handle({ { target, core.push_override(target, value) } })
end
function RefMethods:reset_override() core.reset_override(ref_target(self, 2)) end
function RefMethods:is_overridden() return core.is_overridden(ref_target(self, 2)) end

local RefMT = core.class("Ref", RefMethods, {
  provide = function(p, _, ...) return core.resolve(ref_target(p, 0), ...) end,
  custom_override = true,
  silent = true,
  __tostring = function(p) return "Ref " .. core.state(p).ref_name end,
})
RefMT.__index = function(self, key)
  local m = RefMethods[key]
  if m ~= nil then return m end
  error(string.format("%s is used before it is defined in the builder: "
    .. "only calling or overriding it is supported there (not .%s)",
    quote(core.state(self).ref_name), tostring(key)), 2)
end

---------------------------------------------------------------------------
-- Instances

local function instance_index(c, key)
  local method = Instance[key]
  if method ~= nil then return method end
  local st = rawget(c, INSTANCE)
  local p = st.providers[key]
  if p ~= nil then return p end
  if st.building then
    local ref = st.refs[key]
    if not ref then
      ref = core.new(RefMT, { container = st, ref_name = key })
      st.refs[key] = ref
    end
    return ref
  end
  error("unknown provider " .. quote(key), 2)
end

local function instance_newindex(c, key, value)
  local st = rawget(c, INSTANCE)
  if not st.building then
    error(string.format("cannot assign %s after the container is built; "
      .. "override it instead: container.%s:override(value)", quote(key), tostring(key)), 2)
  end
  if type(key) ~= "string" then
    error("provider names are strings, got " .. type(key), 2)
  end
  if Instance[key] ~= nil then error(quote(key) .. " is a reserved name", 2) end
  if st.providers[key] ~= nil then error("provider " .. quote(key) .. " is already defined", 2) end
  if not core.is_provider(value) then
    error(string.format("%s must be a provider, got %s (wrap plain values in providers.Object)",
      quote(key), core.describe_value(value)), 2)
  end
  local pst = core.state(value)
  if getmetatable(value).owned then
    if pst.owner and pst.owner ~= st then
      error(string.format("provider %s (%s) already belongs to another container instance; "
        .. "declare Singletons and Resources inside the builder",
        quote(key), core.kind_of(value)), 2)
    end
    pst.owner = st
  end
  core.set_name(value, key)
  st.providers[key] = value
  st.order[#st.order + 1] = key
end

local function instance_pairs(c)
  local st = rawget(c, INSTANCE)
  local i = 0
  return function()
    i = i + 1
    local name = st.order[i]
    if name ~= nil then return name, st.providers[name] end
  end, c, nil
end

local InstanceMT = {
  __name = "moonwatch.Container",
  __index = instance_index,
  __newindex = instance_newindex,
  __pairs = instance_pairs,
  __tostring = function(c) return "Container (" .. #rawget(c, INSTANCE).order .. " providers)" end,
}

local function providers_of_kind(st, kind)
  local out = {}
  for _, name in ipairs(st.order) do
    local p = st.providers[name]
    if core.kind_of(p) == kind then out[#out + 1] = p end
  end
  return out
end

--- Names of the providers, in declaration order.
---@return string[]
function Instance:provider_names()
  return table.move(state_of(self).order, 1, #state_of(self).order, 1, {})
end

--- Initialise every Resource of the container, dependencies first.
--- A failure is raised with its chain (`logging: message`).
function Instance:init_resources()
  for _, p in ipairs(providers_of_kind(state_of(self), "Resource")) do p() end
end

--- Shut down the initialised resources in reverse order of initialisation.
--- Every resource is shut down even if one fails; failures are then raised
--- together (`shutdown failed: name: message; ...`).
function Instance:shutdown_resources()
  local list = {}
  for _, p in ipairs(providers_of_kind(state_of(self), "Resource")) do
    if p:is_initialized() then list[#list + 1] = p end
  end
  table.sort(list, function(a, b) return a:init_order() > b:init_order() end)
  local failures = {}
  for _, p in ipairs(list) do
    local ok, err = pcall(p.shutdown, p)
    if not ok then failures[#failures + 1] = core.describe(p) .. ": " .. tostring(err) end
  end
  if #failures > 0 then error("shutdown failed: " .. table.concat(failures, "; "), 2) end
end

--- Raise an error listing every Dependency that is neither overridden nor
--- has a default; returns true when all are defined.
---@return true
function Instance:check_dependencies()
  local missing = {}
  for _, p in ipairs(providers_of_kind(state_of(self), "Dependency")) do
    if not p:is_defined() then missing[#missing + 1] = core.describe(p) end
  end
  if #missing > 0 then error("missing dependencies: " .. table.concat(missing, ", "), 2) end
  return true
end

--- Override several providers by name (`{name = value_or_provider}`); an
--- unknown name is an error and then nothing is overridden. The one handle
--- returned removes them all.
---@param map table<string, any>
---@return moonwatch.OverrideHandle
function Instance:override_providers(map)
  local st = state_of(self)
  if type(map) ~= "table" or core.is_provider(map) then
    error("override_providers: expected a table of name = override, got "
      .. core.describe_value(map), 2)
  end
  local names = core.ordered_keys(map)
  for _, name in ipairs(names) do
    if st.providers[name] == nil then
      error("override_providers: unknown provider " .. quote(name), 2)
    end
  end
  local entries = {}
  for _, name in ipairs(names) do
    local p = st.providers[name]
    entries[#entries + 1] = { p, core.push_override(p, map[name]) }
  end
  return core.handle(entries)
end

--- Remove every override of every provider registered in the container,
--- resetting the singletons built from each one that was overridden (as
--- `p:reset_override()` does). Overrides of nested providers and of
--- configuration options (`config.a.b:override(v)`) are kept: remove those
--- by their handle or `config.a.b:reset_override()`.
function Instance:reset_override()
  local st = state_of(self)
  for _, name in ipairs(st.order) do core.reset_override(st.providers[name]) end
end

--- Reset every Singleton registered in the container by name, and so
--- (`Singleton:reset`) every singleton built from one of them, anonymous
--- ones included. An anonymous Singleton in another provider's arguments
--- that was built from none of them keeps its instance, where
--- dependency-injector's `reset_singletons()` reaches it too. Overrides and
--- Resources are left alone.
function Instance:reset_singletons()
  for _, p in ipairs(providers_of_kind(state_of(self), "Singleton")) do p:reset() end
end

--- `local c <close> = def()` shuts the resources down at the end of scope.
InstanceMT.__close = function(c) Instance.shutdown_resources(c) end

---------------------------------------------------------------------------
-- Definitions

---@class moonwatch.ContainerDefinition
---@overload fun(...): moonwatch.Container
local Definition = {}

local DefinitionMT = {
  __name = "moonwatch.ContainerDefinition",
  __index = function(_, key)
    local m = Definition[key]
    if m ~= nil then return m end
    error(string.format("this is a container definition; make an instance first "
      .. "(def() or def:new()) to reach %s", quote(key)), 2)
  end,
  __newindex = function(_, key)
    error("cannot assign " .. quote(key) .. " to a container definition", 2)
  end,
}

--- A fresh instance: runs the builder as `builder(c, ...)`.
---@param ... any passed to the builder
---@return moonwatch.Container
function Definition:new(...)
  local st = { providers = {}, order = {}, refs = {}, building = true }
  local c = setmetatable({ [INSTANCE] = st }, InstanceMT)
  rawget(self, INSTANCE).builder(c, ...)
  st.building = false
  local undefined = {}
  for name in pairs(st.refs) do
    if st.providers[name] == nil then undefined[#undefined + 1] = quote(name) end
  end
  if #undefined > 0 then
    table.sort(undefined)
    error("unknown provider " .. table.concat(undefined, ", ")
      .. " (used in the builder but never defined)", 2)
  end
  return c
end

DefinitionMT.__call = Definition.new

--- Define a container.
---@param builder fun(c: moonwatch.Container, ...)
---@return moonwatch.ContainerDefinition
function M.new(builder)
  if type(builder) ~= "function" then
    error("container: expected a builder function, got " .. core.describe_value(builder), 2)
  end
  return setmetatable({ [INSTANCE] = { builder = builder } }, DefinitionMT)
end

---@param x any
---@return boolean
function M.is_definition(x)
  return type(x) == "table" and getmetatable(x) == DefinitionMT
end

---@param x any
---@return boolean
function M.is_container(x)
  return type(x) == "table" and getmetatable(x) == InstanceMT
end

return setmetatable(M, {
  __call = function(_, builder)
    if type(builder) ~= "function" then
      error("container: expected a builder function, got " .. core.describe_value(builder), 2)
    end
    return M.new(builder)
  end,
})
