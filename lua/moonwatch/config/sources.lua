--- Where settings come from besides Lua tables: settings files, environment
--- variables and `key.path=value` strings. Bad input is an expected failure
--- (it comes from operators): these return `nil, message`.
local core = require("moonwatch.core")
local tables = require("moonwatch.config.tables")

local M = {}

local ENOENT = 2

--- Evaluate a settings file in an empty environment: its global assignments
--- (`log = { level = "DEBUG" }`) are the settings. Reading a name it has not
--- assigned is an error (a misspelt or unquoted value), and so is returning a
--- value. Messages name the file and line.
---@param path string
---@return table|nil settings, string? message, boolean? missing
function M.read_file(path)
  local f, err, code = io.open(path, "rb")
  if not f then return nil, "cannot read settings file " .. err, code == ENOENT end
  local source = f:read("a")
  f:close()
  local env = setmetatable({}, {
    __index = function(_, name)
      error(string.format("undefined variable '%s'", tostring(name)), 2)
    end,
  })
  local chunk, load_err = load(source, "@" .. path, "t", env)
  if not chunk then return nil, load_err end
  local ok, result = pcall(chunk)
  if not ok then return nil, tostring(result) end
  if result ~= nil then
    return nil, path
      .. ": a settings file assigns globals (log = { ... }) and must not return a value"
  end
  return setmetatable(env, nil)
end

--- "true"/"false" become booleans, numerals numbers, anything else stays.
---@param s string
---@return any
function M.scalar(s)
  if s == "true" then return true end
  if s == "false" then return false end
  return tonumber(s) or s
end

local function segment(s)
  if s:match("^%d+$") then return math.tointeger(tonumber(s)) end
  return s
end

--- Split `a.b.1` into {"a", "b", 1}; nil on an empty segment.
---@param key string
---@return any[]?
function M.split_path(key)
  local path = {}
  for part in (key .. "."):gmatch("(.-)%.") do
    if part == "" then return nil end
    path[#path + 1] = segment(part)
  end
  return path
end

---@class moonwatch.config.Entry
---@field path any[]
---@field value any
---@field source string what an error applying it names: `setting "a.b=1"`, ...
---@field name string the key as typed (`a.b`) or the variable's name

--- Parse `key.path=value` strings (value verbatim after the first `=`,
--- converted by `scalar`).
---@param list string[]
---@return moonwatch.config.Entry[]|nil entries, string? message
function M.parse_strings(list)
  local entries = {}
  for _, s in ipairs(list) do
    if type(s) ~= "string" then
      return nil, "invalid setting: expected a \"key.path=value\" string, got " .. type(s)
    end
    local key, value = s:match("^([^=]*)=(.*)$")
    key = key and key:match("^%s*(.-)%s*$")
    local path = key and key ~= "" and M.split_path(key)
    if not path then
      return nil, string.format("invalid setting %q: expected key.path=value", s)
    end
    entries[#entries + 1] = {
      path = path, value = M.scalar(value), source = string.format("setting %q", s), name = key,
    }
  end
  return entries
end

--- The prefix of the variables `parse_env` reads: "MOONWATCH" and
--- "MOONWATCH_" both give "MOONWATCH_".
---@param prefix string
---@return string
function M.env_prefix(prefix)
  return (prefix:gsub("_+$", "")) .. "_"
end

--- Collect `PREFIX_LOG__LEVEL=value` variables as `log.level = value`:
--- double underscores separate levels, keys are lowercased. Only names that
--- are the prefix, its underscore and at least one more character count;
--- names in `ignore` (a set of whole names, such as a program's own
--- `MOONWATCH_BIN`) are skipped. `environ` (name -> value) stands in for the
--- process environment (`core.environ()`).
---@param prefix string
---@param environ table<string, string>?
---@param ignore table<string, boolean>?
---@return moonwatch.config.Entry[]|nil entries, string? message
function M.parse_env(prefix, environ, ignore)
  prefix = M.env_prefix(prefix)
  ignore = ignore or {}
  environ = environ or core.environ()
  local names = {}
  for name in pairs(environ) do names[#names + 1] = name end
  table.sort(names)
  local entries = {}
  for _, name in ipairs(names) do
    local value = environ[name]
    if value ~= nil and name:sub(1, #prefix) == prefix and #name > #prefix
        and not ignore[name] then
      local rest = name:sub(#prefix + 1):lower()
      local path = {}
      for part in (rest .. "__"):gmatch("(.-)__") do
        if part == "" then path = nil break end
        path[#path + 1] = segment(part)
      end
      if not path then
        return nil, string.format("environment variable %s: empty level in the name", name)
      end
      entries[#entries + 1] = {
        path = path, value = M.scalar(value), source = "environment variable " .. name,
        name = name,
      }
    end
  end
  return entries
end

--- Apply parsed entries to a copy of `values`; the copy, or `nil, message`
--- (and `values` untouched) when a path runs through a non-table.
---@param values table
---@param entries moonwatch.config.Entry[]
---@return table|nil, string?
function M.apply(values, entries)
  local work = tables.deepcopy(values)
  for _, e in ipairs(entries) do
    local ok, err = tables.set(work, e.path, e.value)
    if not ok then return nil, e.source .. ": " .. err end
  end
  return work
end

return M
