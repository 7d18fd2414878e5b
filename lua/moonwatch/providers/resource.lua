--- Resource: something initialised once and shut down explicitly (log
--- setup, a connection pool). `container:init_resources()` initialises the
--- container's resources in dependency order (a resource's injected
--- resources are initialised while resolving its arguments, so they finish
--- first); `container:shutdown_resources()` shuts them down in reverse order.
---
--- Unlike a Singleton, a Resource is not re-initialised when a provider it
--- was built from is overridden (shutting down has side effects): specs that
--- initialise resources shut them down afterwards (`local c <close> = def()`).
--- Overriding a Resource itself resets the singletons built from it and
--- keeps it initialised, for after the override.
local core = require("moonwatch.providers.core")

local M = {}

---@class moonwatch.ResourceSpec
---@field init function|table callable `init(kwargs) -> resource[, shutdown]`
---@field shutdown (function|table)? callable `shutdown(resource)`

---@class moonwatch.Resource : moonwatch.Provider
---@overload fun(): any
local Methods = core.methods()

--- Initialise now if not yet initialised; returns the resource.
---@return any
function Methods:init() return self() end

--- Shut the resource down (no-op when not initialised) and reset the
--- singletons built from it, transitively, so that none keeps the closed
--- resource; the resources and singletons it was built from are kept.
--- (dependency-injector's `shutdown()` resets no singleton.) Errors from the
--- shutdown function propagate; the resource counts as shut down either way.
function Methods:shutdown()
  local st = core.state(self)
  if not st.initialized then return end
  local resource, finalizer = st.resource, st.finalizer
  st.initialized, st.resource, st.finalizer, st.init_seq = false, nil, nil, nil
  core.reset_dependents(self)
  if finalizer then finalizer(resource) end
end

---@return boolean
function Methods:is_initialized() return core.state(self).initialized end

--- Order in which it was initialised (nil when not initialised).
---@return integer?
function Methods:init_order() return core.state(self).init_seq end

local MT = core.class("Resource", Methods, {
  provide = function(_, st, ...)
    if select("#", ...) > 0 then error("a Resource takes no call-time arguments", 0) end
    if st.initialized then return st.resource end
    local resource, finalizer = st.init(core.resolve_kwargs(st.kwargs, st.keys, nil))
    if resource == nil and type(finalizer) == "string" then
      error("init failed: " .. finalizer, 0)  -- the `nil, message` convention
    end
    if finalizer ~= nil and not core.is_callable(finalizer) then
      error("init returned a second value that is not a shutdown function: "
        .. core.describe_value(finalizer), 0)
    end
    st.initialized, st.resource = true, resource
    st.finalizer = finalizer or st.shutdown
    st.init_seq = core.next_seq()
    return resource
  end,
  owned = true,
})

--- `Resource(init, kwargs)`: `init(kwargs)` returns the resource and,
--- optionally, a shutdown function `shutdown(resource)` as second value.
--- `Resource({init = ..., shutdown = ...}, kwargs)`: the same with the shutdown
--- function given up front (a shutdown function returned by init wins).
--- An init returning `nil, message` fails with that message.
---@param init function|table|moonwatch.ResourceSpec
---@param kwargs table? injected keyword arguments
---@return moonwatch.Resource
function M.Resource(init, kwargs)
  local shutdown
  if not core.is_callable(init) then
    if type(init) ~= "table" or core.is_provider(init) then
      error("Resource: expected an init function or {init = ..., shutdown = ...}, got "
        .. core.describe_value(init), 2)
    end
    init, shutdown = init.init, init.shutdown
    if not core.is_callable(init) then
      error("Resource: init must be callable, got " .. type(init), 2)
    end
    if shutdown ~= nil and not core.is_callable(shutdown) then
      error("Resource: shutdown must be callable, got " .. type(shutdown), 2)
    end
  end
  if kwargs ~= nil and (type(kwargs) ~= "table" or core.is_provider(kwargs)) then
    error("Resource: keyword arguments must be a plain table, got "
      .. core.describe_value(kwargs), 2)
  end
  local copy = {}
  for k, v in pairs(kwargs or {}) do copy[k] = v end
  return core.new(MT, {
    init = init, shutdown = shutdown, kwargs = copy, keys = core.ordered_keys(copy),
    initialized = false,
  })
end

return M
