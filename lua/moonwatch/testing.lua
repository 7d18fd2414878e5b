--- Helpers for the specs of a monitors.lua.
---
---     local testing = require("moonwatch.testing")   -- or mw.testing
---     local c = testing.load("monitors.lua")()       -- a fresh container
---
--- testing.load stands for dofile("monitors.lua") and works from any working
--- directory: a relative name is looked for beside the calling spec, then in
--- that spec's parent directory (a project's spec/ sits beside its
--- monitors.lua). The file is loaded as the daemon loads it (cli.load): the
--- modules beside it can be required, and a file that does not return
--- mw.container(...) is an error.
---@class moonwatch.testing
local M = {}

local function dirname(path)
  return path:match("^(.*[^/])/+[^/]*$") or (path:sub(1, 1) == "/" and "/") or "."
end

local function join(dir, name)
  if dir == "." then return name end
  return (dir == "/" and "" or dir) .. "/" .. name
end

-- Textual, so that messages name "monitors.lua" rather than "spec/../monitors.lua".
local function parent(dir)
  if dir == "/" then return nil end
  local last = dir:match("[^/]+$")
  if dir == "." then return ".." end
  if last == "." or last == ".." then return dir .. "/.." end
  return dirname(dir)
end

local function exists(path)
  local f = io.open(path, "r")
  if not f then return false end
  f:close()
  return true
end

-- The path of name, from the chunk source of the code asking (a file when it
-- starts with "@"), or nil and a message naming the places tried.
local function locate(name, source)
  if name:sub(1, 1) == "/" then
    if exists(name) then return name end
    return nil, "cannot find " .. name
  end
  if not (source and source:sub(1, 1) == "@") then
    -- Not called from a file (load()ed code): the working directory.
    if exists(name) then return name end
    return nil, "cannot find " .. name .. " in the working directory"
  end
  local dir = dirname(source:sub(2))
  local tried = {}
  for _, d in ipairs({ dir, parent(dir) }) do
    local path = join(d, name)
    if exists(path) then return path end
    tried[#tried + 1] = path
  end
  return nil, string.format("cannot find %s beside the spec or in its parent directory "
    .. "(tried %s)", name, table.concat(tried, ", "))
end

local function source_of(level)
  local info = debug.getinfo(level + 1, "S")
  return info and info.source
end

local function check_args(fn, name, level)
  if type(name) ~= "string" or name == "" then
    error(string.format("moonwatch.testing.%s: expected a file name, got %s", fn,
      name == "" and "an empty string" or type(name)), 3)
  end
  if level ~= nil and (math.type(level) ~= "integer" or level < 1) then
    error("moonwatch.testing." .. fn .. ": level must be an integer from 1", 3)
  end
  return level or 1
end

--- Where testing.load would find `name`: its path, or nil and a message.
--- `level` works as error()'s does: 1 (the default) resolves against the
--- file of the function calling find, 2 against that function's caller...
---@param name string
---@param level? integer
---@return string? path
---@return string? message
function M.find(name, level)
  level = check_args("find", name, level)
  return locate(name, source_of(level + 1))
end

--- Loads a monitors.lua (found as testing.find does) and returns its
--- container definition, and the path it was loaded from. Raises, as dofile
--- does, when the file cannot be found or loaded.
---@param name string
---@param level? integer
---@return moonwatch.ContainerDefinition def
---@return string path
function M.load(name, level)
  level = check_args("load", name, level)
  local path, err = locate(name, source_of(level + 1))
  if not path then error("moonwatch.testing.load: " .. err, level + 1) end
  local def
  -- cli.load's messages name the file and the line already.
  def, err = require("moonwatch.cli").load(path)
  if not def then error(err, 0) end
  return def, path
end

return M
