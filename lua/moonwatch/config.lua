--- Configuration provider and lazy option references.
---
---     local config = Configuration { log = { level = "INFO" } }
---     config.log.level            -- an option reference (a provider)
---     config.log.level()          -- its current value
---     config.monitors.example     -- a subtree; injected as a deep copy
---     config.monitors.example.timeout:as_duration():required()
---
--- References are usable before any value is loaded: they are read when
--- called (when the consumer is built), never when written.
---
--- Loading merges into the current values, in the order called:
--- `from_table`, `from_file`, `from_env`, `from_strings`. Tables merge key by
--- key, arrays and scalars replace. Loading does not reset singletons that
--- were already built: load settings before building, override in specs.
---
--- Overriding: `config:override(t)` replaces the whole tree while active;
--- `config.a.b:override(v)` replaces one option, and is seen through every
--- reference that covers it (`config.a()` includes it). Either resets the
--- singletons built from an overlapping option, on apply and on removal.
---
--- A Configuration created outside the container builder (as in
--- monitors.lua) is shared by every container instance built from it.
---
--- Option names that clash with a method (`required`, `override`, `as_int`,
--- ...) are reached with `ref:option("required")`.
local core = require("moonwatch.providers.core")
local tables = require("moonwatch.config.tables")
local sources = require("moonwatch.config.sources")
local convert = require("moonwatch.config.convert")

local STATE = core.STATE
local M = {}

local DEFAULT_NAME = "config"

---@class moonwatch.Option : moonwatch.Provider
---@overload fun(): any
---@field [string] moonwatch.Option
local OptionMethods = {}

---@class moonwatch.Configuration : moonwatch.Option
---@overload fun(): table
---@field [string] moonwatch.Option
local ConfigMethods = setmetatable({}, { __index = OptionMethods })

local function path_of(st)
  return tables.path_string(st.root.name or DEFAULT_NAME, st.path)
end

local OptionMT, DerivedMT

local function new_ref(mt, root, fields)
  fields.root = root
  local ref = core.new(mt, fields)
  root.refs[ref] = true
  return ref
end

local function child(self, key)
  local st = rawget(self, STATE)
  if st.derived then
    error(string.format("option %s: cannot index a converted option reference (with %q)",
      path_of(st), tostring(key)), 3)
  end
  if type(key) ~= "string" and math.type(key) ~= "integer" then
    error(string.format("option %s: keys are strings or integers, got %s",
      path_of(st), type(key)), 3)
  end
  local ref = st.children[key]
  if not ref then
    local path = table.move(st.path, 1, #st.path, 1, {})
    path[#path + 1] = key
    ref = new_ref(OptionMT, st.root, { path = path, children = {} })
    rawget(ref, STATE).canonical = ref
    st.children[key] = ref
  end
  return ref
end

local function overlaps(a, b)
  for i = 1, math.min(#a, #b) do
    if a[i] ~= b[i] then return false end
  end
  return true
end

--- The settings tree with every active override applied. Returns the stored
--- tree itself when nothing is overridden (callers copy what they hand out).
local function effective_tree(root)
  local base = root.values
  local top = core.top_override(root.object)
  if top then base = core.override_value(top) end
  local active = {}
  for ref in pairs(root.overridden) do
    local entry = core.top_override(ref)
    if entry then active[#active + 1] = { path = rawget(ref, STATE).path, entry = entry } end
  end
  if #active == 0 then return base end
  table.sort(active, function(a, b) return a.entry.seq < b.entry.seq end)
  local tree = tables.deepcopy(base)
  for _, a in ipairs(active) do
    local value = tables.deepcopy(core.override_value(a.entry))
    if #a.path == 0 then
      tree = value
    else
      if type(tree) ~= "table" then tree = {} end
      local t = tree
      for i = 1, #a.path - 1 do  -- an override makes its own way through
        local k = a.path[i]
        if type(t[k]) ~= "table" then t[k] = {} end
        t = t[k]
      end
      t[a.path[#a.path]] = value
    end
  end
  return tree
end

local function provide_option(_, st)
  local root = st.root
  local value, blocked = tables.get(effective_tree(root), st.path)
  if value == nil then
    if st.required or root.strict then
      local why = ""
      if blocked then
        why = string.format(" (%s is not a table)", tables.path_string(root.name or DEFAULT_NAME,
          st.path, blocked))
      end
      error(string.format("required option %s is not set%s", path_of(st), why), 0)
    end
    return nil
  end
  if st.convert then
    local converted, msg = st.convert(value)
    if converted == nil then error(string.format("option %s: %s", path_of(st), msg), 0) end
    value = converted
  end
  if type(value) == "table" then return tables.deepcopy(value) end
  return value
end

local function invalidate(ref)
  local st = rawget(ref, STATE)
  local root = st.root
  if ref ~= root.object then  -- the root's own override is the base tree
    root.overridden[ref] = core.is_overridden(ref) or nil
  end
  local seen = {}
  for other in pairs(root.refs) do
    if overlaps(rawget(other, STATE).path, st.path) then core.reset_dependents(other, seen) end
  end
end

local function make_index(methods)
  return function(self, key)
    local m = methods[key]
    if m ~= nil then return m end
    return child(self, key)
  end
end

local function option_tostring(ref)
  local st = rawget(ref, STATE)
  return "Option " .. path_of(st)
end

local hooks = {
  provide = provide_option,
  custom_override = true,
  invalidate = invalidate,
  silent = true,
  __tostring = option_tostring,
}

OptionMT = core.class("Option", nil, hooks)
OptionMT.__index = make_index(OptionMethods)
DerivedMT = core.class("Option", nil, hooks)
DerivedMT.__index = make_index(OptionMethods)

local function canonical(self) return rawget(self, STATE).canonical end

--- Override this option's value (a plain value as is, a provider called);
--- seen by every reference covering it. Returns a handle.
---@param value any
---@return moonwatch.OverrideHandle
function OptionMethods:override(value)
  local ref = canonical(self)
  return core.handle({ { ref, core.push_override(ref, value) } })
end

--- Remove every override of this option.
function OptionMethods:reset_override() core.reset_override(canonical(self)) end

---@return boolean
function OptionMethods:is_overridden() return core.is_overridden(canonical(self)) end

--- The option at `key` below this one, for names that clash with methods.
--- A dotted string goes several levels down: `config:option("log.level")`.
---@param key string|integer
---@return moonwatch.Option
function OptionMethods:option(key)
  if type(key) == "string" and key:find(".", 1, true) then
    local ref = self
    for part in (key .. "."):gmatch("(.-)%.") do ref = child(ref, part) end
    return ref
  end
  return child(self, key)
end


local function derive(self, changes)
  local st = rawget(self, STATE)
  local fields = {
    path = st.path, canonical = st.canonical, convert = st.convert,
    required = st.required, derived = true,
  }
  for k, v in pairs(changes) do fields[k] = v end
  return new_ref(DerivedMT, st.root, fields)
end

--- A reference whose missing value is an error naming the full path.
---@return moonwatch.Option
function OptionMethods:required() return derive(self, { required = true }) end

--- A reference converting the value to an integer ("5" -> 5).
---@return moonwatch.Option
function OptionMethods:as_int() return derive(self, { convert = convert.integer }) end

--- A reference converting the value to a number.
---@return moonwatch.Option
function OptionMethods:as_number() return derive(self, { convert = convert.number }) end

--- A reference converting the value to a boolean (true/false, yes/no, on/off, 1/0).
---@return moonwatch.Option
function OptionMethods:as_bool() return derive(self, { convert = convert.boolean }) end

--- A reference converting the value to a string (numbers, booleans).
---@return moonwatch.Option
function OptionMethods:as_string() return derive(self, { convert = convert.string }) end

--- A reference converting a duration to seconds: 5 -> 5, "250ms" -> 0.25, "1m30s" -> 90.
---@return moonwatch.Option
function OptionMethods:as_duration() return derive(self, { convert = convert.duration }) end

---------------------------------------------------------------------------
-- The root

--- Merge a Lua table into the settings. Returns the configuration.
---@param t table
---@return moonwatch.Configuration
function ConfigMethods:from_table(t)
  if type(t) ~= "table" or core.is_provider(t) then
    error("from_table: expected a table, got " .. core.describe_value(t), 2)
  end
  local root = rawget(self, STATE).root
  tables.merge(root.values, t)
  return self
end

---@class moonwatch.FromFileOptions
---@field optional boolean? a missing file is not an error

--- Merge a Lua settings file: evaluated in an empty environment, its
--- global assignments are the settings (`log = { level = "DEBUG" }`).
--- Returns the configuration, or `nil, message` naming the file and line.
---@param path string
---@param opts moonwatch.FromFileOptions?
---@return moonwatch.Configuration|nil, string?
function ConfigMethods:from_file(path, opts)
  if type(path) ~= "string" then error("from_file: expected a path, got " .. type(path), 2) end
  local settings, err, missing = sources.read_file(path)
  if not settings then
    if missing and opts and opts.optional then return self end
    return nil, err
  end
  tables.merge(rawget(self, STATE).root.values, settings)
  return self
end

local function apply(self, entries, err)
  if not entries then return nil, err end
  local root = rawget(self, STATE).root
  local values, apply_err = sources.apply(root.values, entries)
  if not values then return nil, apply_err end
  root.values = values
  return self
end

--- Merge environment variables `PREFIX_A__B=value` as `a.b = value`
--- (double underscore between levels, keys lowercased, "true"/"false" and
--- numerals converted). `environ` (name -> value) replaces the process
--- environment, for tests. Returns the configuration, or `nil, message`.
---@param prefix string such as "MOONWATCH"
---@param environ table<string, string>?
---@return moonwatch.Configuration|nil, string?
function ConfigMethods:from_env(prefix, environ)
  if type(prefix) ~= "string" or prefix == "" then
    error("from_env: expected a non-empty prefix, got " .. core.describe_value(prefix), 2)
  end
  if environ ~= nil and type(environ) ~= "table" then
    error("from_env: environ must be a table, got " .. type(environ), 2)
  end
  return apply(self, sources.parse_env(prefix, environ))
end

--- Merge `key.path=value` strings ("true"/"false" and numerals converted).
--- All or nothing: returns the configuration, or `nil, message`.
---@param list string[]|string
---@return moonwatch.Configuration|nil, string?
function ConfigMethods:from_strings(list)
  if type(list) == "string" then list = { list } end
  if type(list) ~= "table" then
    error("from_strings: expected a list of strings, got " .. type(list), 2)
  end
  return apply(self, sources.parse_strings(list))
end

local RootMT = core.class("Configuration", nil, {
  provide = function(_, st) return tables.deepcopy(effective_tree(st.root)) end,
  custom_override = true,
  invalidate = invalidate,
  __tostring = function(p) return "Configuration " .. (rawget(p, STATE).name or DEFAULT_NAME) end,
  on_named = function(p, name)
    local root = rawget(p, STATE).root
    if root.name == nil then root.name = name end
  end,
})
RootMT.__index = make_index(ConfigMethods)

---@class moonwatch.ConfigurationOptions
---@field strict boolean? every missing option is an error, as if required
---@field name string? name in option paths (default: the container name, else "config")

--- A configuration provider holding a settings tree, initially a copy of
--- `defaults`.
---@param defaults table?
---@param opts moonwatch.ConfigurationOptions?
---@return moonwatch.Configuration
function M.Configuration(defaults, opts)
  if defaults ~= nil and (type(defaults) ~= "table" or core.is_provider(defaults)) then
    error("Configuration: defaults must be a table, got " .. core.describe_value(defaults), 2)
  end
  opts = opts or {}
  local root = {
    values = tables.deepcopy(defaults or {}),
    refs = setmetatable({}, { __mode = "k" }),
    overridden = {},
    strict = opts.strict and true or false,
    name = opts.name,
  }
  local p = core.new(RootMT, { root = root, path = {}, children = {}, name = opts.name })
  local st = rawget(p, STATE)
  st.canonical = p
  root.object = p
  root.refs[p] = true
  return p
end

--- The full name of an option reference, such as `config.monitors.example.url`.
---@param ref moonwatch.Option
---@return string
function M.path_of(ref)
  return path_of(rawget(ref, STATE))
end

---@param x any
---@return boolean
function M.is_configuration(x)
  return core.is_provider(x) and getmetatable(x) == RootMT
end

return M
