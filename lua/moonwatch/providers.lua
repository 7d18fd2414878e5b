--- Provider kinds for monitors.lua (exposed as `mw.providers`).
---
--- A provider is called to get its value: `p()` or `p{key = value}` for
--- call-time keyword arguments. Providers are recognised by identity (their
--- metatable), never by their fields: any other value injected as a keyword
--- argument, a luassert spy included, is passed as it is.
---
--- Every provider has `:override(x)`, `:reset_override()` and
--- `:is_overridden()`; see moonwatch.providers.core for the rules. Unlike
--- dependency-injector, overriding a provider (and removing the override)
--- resets the singletons already built from it, so a spec override reaches
--- them; "Resetting singletons" in moonwatch.providers.core has the details.
local core = require("moonwatch.providers.core")
local factory = require("moonwatch.providers.factory")
local resource = require("moonwatch.providers.resource")
local values = require("moonwatch.providers.values")
local config = require("moonwatch.config")

---@class moonwatch.providers
local M = {
  Factory = factory.Factory,
  Singleton = factory.Singleton,
  Callable = factory.Callable,
  Object = values.Object,
  List = values.List,
  Dict = values.Dict,
  Dependency = values.Dependency,
  Selector = values.Selector,
  Resource = resource.Resource,
  Configuration = config.Configuration,
}

--- Whether `x` is a provider.
---@param x any
---@return boolean
M.is_provider = core.is_provider

--- The kind of a provider: "Factory", "Singleton", ..., "Option".
---@param p table
---@return string
M.kind_of = core.kind_of

return M
