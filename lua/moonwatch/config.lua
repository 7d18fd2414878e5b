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
---
--- Where values came from: the configuration remembers the source of every
--- value it merged, and the tables it injects, so that a consumer can name
--- both in its errors:
---
---     config.where(options)             --> "monitors.example"
---     config.source(options, "timeout") --> "--set", "file settings.lua",
---                                       --  "environment MOONWATCH_X", or nil
---                                       --  for the defaults and code
---
--- Typos: `config:unread(config.readers(container))` lists the values from
--- `from_strings` and `from_env` that no option reference of the container
--- reads, each with the closest known path.
local core = require("moonwatch.providers.core")
local tables = require("moonwatch.config.tables")
local sources = require("moonwatch.config.sources")
local convert = require("moonwatch.config.convert")
local suggest = require("moonwatch.suggest")

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

---------------------------------------------------------------------------
-- Where values came from
--
-- `root.origins` mirrors the settings tree with a node, `{source, kids}`,
-- for each key a source other than the defaults wrote. Writing a value
-- replaces the node's subtree, as merging replaces the value, so the deepest
-- source on a path is the latest to have written it. `source = false` is
-- code (`from_table`), which is reported like the defaults.

local function new_node() return { kids = {} } end

local function note_value(root, path, source)
  local node = root.origins
  for _, k in ipairs(path) do
    local kid = node.kids[k]
    if not kid then
      kid = new_node()
      node.kids[k] = kid
    end
    node = kid
  end
  node.source, node.kids = source, {}
end

-- Mirrors tables.merge; called before it, while `dst` holds the old values.
local function note_merge(node, dst, src, source)
  for k, v in pairs(src) do
    local kid = node.kids[k]
    if not kid then
      kid = new_node()
      node.kids[k] = kid
    end
    if type(v) == "table" and type(dst[k]) == "table" and not tables.is_sequence(v) then
      note_merge(kid, dst[k], v, source)
    else
      kid.source, kid.kids = source, {}
    end
  end
end

local function source_at(root, path)
  -- an overridden value comes from code (a spec), whatever was loaded
  if core.top_override(root.object) then return nil end
  for ref in pairs(root.overridden) do
    if core.top_override(ref) then
      local p = rawget(ref, STATE).path
      if #p <= #path and overlaps(p, path) then return nil end
    end
  end
  local node, found = root.origins, nil
  for _, k in ipairs(path) do
    node = node.kids[k]
    if not node then break end
    if node.source ~= nil then found = node.source end
  end
  return found or nil
end

-- Tables handed out by a reference (deep copies) -> {root, path}; weak, so
-- the providers' tables stay plain and are forgotten with them.
local injected = setmetatable({}, { __mode = "k" })

local function inject(root, path, value)
  local copy = tables.deepcopy(value)
  local function note(t, p)
    if injected[t] then return end  -- shared or cyclic: the first path stays
    injected[t] = { root = root, path = p }
    for k, v in pairs(t) do
      if type(v) == "table" and (type(k) == "string" or math.type(k) == "integer") then
        local sub = table.move(p, 1, #p, 1, {})
        sub[#sub + 1] = k
        note(v, sub)
      end
    end
  end
  note(copy, path)
  return copy
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
    local converted, msg = st.convert(value, source_at(root, st.path))
    if converted == nil then error(string.format("option %s: %s", path_of(st), msg), 0) end
    value = converted
  end
  if type(value) == "table" then return inject(root, st.path, value) end
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
  note_merge(root.origins, root.values, t, false)
  tables.merge(root.values, t)
  return self
end

---@class moonwatch.FromFileOptions
---@field optional boolean? a missing file is not an error

--- Merge a Lua settings file: evaluated in an empty environment, its
--- global assignments are the settings (`log = { level = "DEBUG" }`).
--- Returns the configuration, or `nil, message` naming the file and line.
--- Its values' source is "file <path>".
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
  local root = rawget(self, STATE).root
  note_merge(root.origins, root.values, settings, "file " .. path)
  tables.merge(root.values, settings)
  return self
end

-- A value given by from_strings or from_env, for `unread`: the same setting
-- given again replaces the first.
local function remember(root, given)
  local i = root.given_at[given.setting] or #root.given + 1
  root.given[i], root.given_at[given.setting] = given, i
end

-- `origin(entry)` says where an entry came from: its source (for
-- `config.source`), the setting as errors name it ("--set a.b") and how
-- that source spells another path (for "did you mean").
local function apply(self, entries, err, origin)
  if not entries then return nil, err end
  local root = rawget(self, STATE).root
  local values, apply_err = sources.apply(root.values, entries)
  if not values then return nil, apply_err end
  root.values = values
  for _, e in ipairs(entries) do
    local source, setting, spell = origin(e)
    note_value(root, e.path, source)
    remember(root, { path = e.path, setting = setting, spell = spell })
  end
  return self
end

local function dotted(path)
  local parts = {}
  for i, k in ipairs(path) do parts[i] = tostring(k) end
  return table.concat(parts, ".")
end

---@class moonwatch.FromEnvOptions
---@field ignore string[]? whole names that are never settings (a program's own variables)

--- Merge environment variables `PREFIX_A__B=value` as `a.b = value`
--- (double underscore between levels, keys lowercased, "true"/"false" and
--- numerals converted). Only names that go on after `PREFIX_` count, and
--- not those in `opts.ignore`. `environ` (name -> value) replaces the process
--- environment, for tests. Returns the configuration, or `nil, message`.
--- Its values' source is "environment <NAME>".
---@param prefix string such as "MOONWATCH"
---@param environ table<string, string>?
---@param opts moonwatch.FromEnvOptions?
---@return moonwatch.Configuration|nil, string?
function ConfigMethods:from_env(prefix, environ, opts)
  if type(prefix) ~= "string" or prefix == "" then
    error("from_env: expected a non-empty prefix, got " .. core.describe_value(prefix), 2)
  end
  if environ ~= nil and type(environ) ~= "table" then
    error("from_env: environ must be a table, got " .. type(environ), 2)
  end
  local ignore = {}
  for _, name in ipairs(opts and opts.ignore or {}) do ignore[name] = true end
  local start = sources.env_prefix(prefix)
  local function spell(path) return start .. dotted(path):upper():gsub("%.", "__") end
  local entries, err = sources.parse_env(prefix, environ, ignore)
  return apply(self, entries, err, function(e)
    local source = "environment " .. e.name
    return source, source, spell
  end)
end

--- Merge `key.path=value` strings ("true"/"false" and numerals converted).
--- All or nothing: returns the configuration, or `nil, message`. `source`
--- names where the strings came from, in errors and `config.source`
--- (default "--set").
---@param list string[]|string
---@param source string?
---@return moonwatch.Configuration|nil, string?
function ConfigMethods:from_strings(list, source)
  if type(list) == "string" then list = { list } end
  if type(list) ~= "table" then
    error("from_strings: expected a list of strings, got " .. type(list), 2)
  end
  if source ~= nil and type(source) ~= "string" then
    error("from_strings: source must be a string, got " .. type(source), 2)
  end
  source = source or "--set"
  local entries, err = sources.parse_strings(list)
  return apply(self, entries, err, function(e)
    return source, source .. " " .. e.name, dotted
  end)
end

-- Calls `add(path)` for each leaf of a settings tree; an array is a leaf.
local function leaves(tree, path, add, seen)
  if type(tree) ~= "table" or tables.is_sequence(tree) or next(tree) == nil then
    if #path > 0 then add(path) end
    return
  end
  if seen[tree] then return end
  seen[tree] = true
  for k, v in pairs(tree) do
    if type(k) == "string" or math.type(k) == "integer" then
      local sub = table.move(path, 1, #path, 1, {})
      sub[#sub + 1] = k
      leaves(v, sub, add, seen)
    end
  end
end

---@class moonwatch.UnreadSetting
---@field setting string as the source names it: "--set a.b", "environment MOONWATCH_A__B"
---@field path any[]
---@field suggestion string? the closest known path, spelt as that source spells it
---@field message string "<setting>: no provider reads this setting (did you mean <suggestion>?)"

--- The values given by `from_strings` and `from_env` that none of `readers`
--- reads, in the order given. A reference reads a value when its path is a
--- prefix of the value's (it reads the subtree holding it) or the value's
--- path is a prefix of its own (the value replaces a subtree it reads).
--- References to another configuration are ignored. The suggestion is the
--- closest known path: the readers' paths and the leaves of the settings
--- tree, the unread values excepted, compared one level at a time
--- (`suggest.closest` on the first name that is not known there, and so on
--- below it); none when some level has nothing close. A setting given
--- twice (the same key or variable) is listed once. Returns an empty list
--- when every value is read.
---@param readers moonwatch.Option[] such as `config.readers(container)`
---@return moonwatch.UnreadSetting[]
function ConfigMethods:unread(readers)
  if type(readers) ~= "table" or core.is_provider(readers) then
    error("unread: expected a list of option references, got "
      .. core.describe_value(readers), 2)
  end
  local root = rawget(self, STATE).root
  local read = {}
  for _, ref in ipairs(readers) do
    local st = core.is_provider(ref) and rawget(ref, STATE)
    if st and st.root == root then read[#read + 1] = st.path end
  end
  local unread = {}
  for _, given in ipairs(root.given) do
    local covered = false
    for _, path in ipairs(read) do
      if overlaps(path, given.path) then
        covered = true
        break
      end
    end
    if not covered then unread[#unread + 1] = given end
  end
  if #unread == 0 then return {} end

  -- The known paths as a tree of names. A typo is looked for one level at
  -- a time: comparing whole paths, "monitors.helth.url" is as close to
  -- "monitors.httpbin.url" as to "monitors.health.url".
  local skip, known = {}, { kids = {}, names = {} }
  for _, given in ipairs(unread) do skip[dotted(given.path)] = true end
  local function add(path)
    if skip[dotted(path)] then return end
    local node = known
    for _, k in ipairs(path) do
      local kid = node.kids[k]
      if not kid then
        kid = { kids = {}, names = {} }
        node.kids[k] = kid
        node.names[#node.names + 1] = tostring(k)
      end
      node = kid
    end
  end
  for _, path in ipairs(read) do add(path) end
  leaves(root.values, {}, add, {})
  local function closest(path)
    local out, node = {}, known
    for i, k in ipairs(path) do
      if node.kids[k] == nil then
        table.sort(node.names)  -- ties go to the first: not to pairs' order
        local name = suggest.closest(tostring(k), node.names)
        if not name then return nil end
        k = math.tointeger(tonumber(name)) or name
        if node.kids[k] == nil then k = name end
      end
      out[i], node = k, node.kids[k]
    end
    return out
  end

  local out = {}
  for i, given in ipairs(unread) do
    local best = closest(given.path)
    local suggestion = best and given.spell(best)
    -- environment names are lowercased, so MOONWATCH_MYAPI cannot reach
    -- myApi: a suggestion spelt as the setting itself would not help
    if suggestion == given.spell(given.path) then suggestion = nil end
    out[i] = {
      setting = given.setting, path = given.path, suggestion = suggestion,
      message = given.setting .. ": no provider reads this setting"
        .. (suggestion and (" (did you mean " .. suggestion .. "?)") or ""),
    }
  end
  return out
end

local RootMT = core.class("Configuration", nil, {
  provide = function(_, st) return inject(st.root, {}, effective_tree(st.root)) end,
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
    origins = new_node(),
    given = {},      -- values from from_strings and from_env, for unread
    given_at = {},   -- setting -> index in given
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

--- For a table a reference injected (the deep copy a provider gets from
--- `config.monitors.example`, or a table inside it), the path of its subtree
--- without the configuration's name: "monitors.example" ("" for the whole
--- tree). nil for any other table. The table itself carries nothing: it is
--- looked up in a weak table.
---@param t any
---@return string?
function M.where(t)
  local info = type(t) == "table" and injected[t]
  if not info then return nil end
  return tables.path_string(nil, info.path)
end

--- Where `t[key]` came from, for a table a reference injected: "--set",
--- "environment MOONWATCH_MONITORS__EXAMPLE__TIMEOUT", "file settings.lua"
--- (as from_file was given it); nil for the defaults, `from_table`, an
--- override or a key the settings do not hold, and for any other table.
---@param t any
---@param key any
---@return string?
function M.source(t, key)
  local info = type(t) == "table" and injected[t]
  if not info then return nil end
  local path = table.move(info.path, 1, #info.path, 1, {})
  path[#path + 1] = key
  return source_at(info.root, path)
end

-- The state fields of a provider that are not its wiring: the container it
-- belongs to (it would reach every provider), what was built from it, and
-- what it built.
local NOT_WIRING = { owner = true, container = true, dependents = true,
                     instance = true, resource = true, finalizer = true }

--- The option references the providers of container instance `c` are wired
--- with, for `config:unread`: found in their arguments (keyword tables,
--- list items, defaults, active overrides) and in the providers nested
--- there; a name used before its definition is followed to its provider.
--- An option (or configuration) registered in the container counts; a
--- Configuration registered there does not, as settings are loaded into
--- it: it reads the whole tree only when it is passed to a provider. An
--- option read only inside a function is not seen (pass the reference).
---@param c moonwatch.Container
---@return moonwatch.Option[]
function M.readers(c)
  local by_name, found, seen = {}, {}, {}
  for name, p in pairs(c) do by_name[name] = p end
  local function visit(v)
    if type(v) ~= "table" or seen[v] then return end
    seen[v] = true
    if not core.is_provider(v) then
      for k, x in next, v do
        visit(k)
        visit(x)
      end
      return
    end
    local kind = core.kind_of(v)
    if kind == "Option" or kind == "Configuration" then
      found[#found + 1] = v
      return
    end
    local st = rawget(v, STATE)
    if kind == "Ref" then return visit(by_name[st.ref_name]) end
    for k, x in next, st do
      if not NOT_WIRING[k] then visit(x) end
    end
  end
  for _, name in ipairs(c:provider_names()) do
    local p = by_name[name]
    if core.kind_of(p) ~= "Configuration" then visit(p) end
  end
  return found
end

---@param x any
---@return boolean
function M.is_configuration(x)
  return core.is_provider(x) and getmetatable(x) == RootMT
end

return M
