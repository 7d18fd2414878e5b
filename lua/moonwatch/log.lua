--- Logging: named loggers over the C logger of moonwatch.core.
---
---     local log = require("moonwatch.log")
---     log.setup{ level = "INFO", format = log.DEFAULT_FORMAT }
---     local logger = log.get("HttpMonitor")
---     logger:info("Check\n    %s %s", "GET", url)
---
--- Records are formatted and written by C, never blocking the loop. Specs
--- capture records with `log.capture()` instead of parsing stdout.
---
--- In the text formats a record starts a line, so an argument must not be
--- able to start one: line breaks in string arguments are written as \n and
--- \r (C escapes the other control bytes). The format string is the
--- record's own text and keeps its lines; `log.lines(s)` marks an argument
--- as trusted multi-line text, like a traceback.
---
--- Records can carry fields beside the message, for `jq` and log shippers:
---
---     local logger = log.get("HttpMonitor", { monitor = "example" })
---     logger:warning_with({ status = 500, up = false,
---                           time = { dns = 0.001, total = 0.01 } }, "Check failed")
---
--- The JSON format writes each field as a member after time, level, logger
--- and message (a field named like one of these four as "field_<name>");
--- text formats show only `monitor`, through `%(monitor)s` ("-" without it).
local core = require("moonwatch.core")

local gsub, format, select, type = string.gsub, string.format, select, type
local plain = core.log_plain -- the arguments string.format may take as they are
local getmetatable, tostring, pairs, next = getmetatable, tostring, pairs, next

local M = {}

M.DEFAULT_FORMAT = "[%(asctime)s] [%(levelname)s] [%(name)s]: %(message)s"
M.levels = core.log_levels

local sink = nil      -- the core logger records go to
local text_sink = true -- sink writes a text format (not JSON)
local captures = {}   -- active captures, innermost last

local function root()
  if not sink then
    sink = core.logger{ level = "INFO", format = M.DEFAULT_FORMAT, batch = true }
  end
  return sink
end

---@class moonwatch.LogOptions
---@field level? string|integer  DEBUG, INFO, WARNING, ERROR or CRITICAL
---@field format? string          Python logging style, or "json"
---@field file? string            append to this file instead of stdout

--- Configures where and how records are written; returns the core logger.
--- Meant as the init of a `providers.Resource`.
---@param opts? moonwatch.LogOptions
function M.setup(opts)
  opts = opts or {}
  local ok, lg = pcall(core.logger, {
    level = opts.level or "INFO",
    format = opts.format or M.DEFAULT_FORMAT,
    file = opts.file,
    -- the records of one loop turn go out in one write, flushed before
    -- the loop waits for I/O
    batch = true,
  })
  if not ok then
    error((tostring(lg):gsub("^logger: ", "log: ")), 0)
  end
  if sink then sink:flush() end
  sink = lg
  text_sink = (opts.format or M.DEFAULT_FORMAT) ~= "json"
  return lg
end

--- Opens the log file again, for logrotate (SIGUSR1): true, or nil and a
--- message ("not a file logger" when records go to stdout or an fd).
---@return true|nil ok
---@return string? message
function M.reopen()
  return root():reopen()
end

--- Writes out the records queued so far (they otherwise go before the loop
--- next waits), for output that must come after them.
function M.flush()
  if sink then sink:flush() end
end

local Lines = {}
Lines.__index = Lines
function Lines:__tostring() return self.indented end

--- Marks trusted multi-line text (a traceback) as an argument whose line
--- breaks stay: each continuation line not already starting with a space
--- or tab is indented by 4 spaces, so it cannot pass for a record.
---@param s any
---@return table  an argument for the logging methods (tostring gives the text)
function M.lines(s)
  s = tostring(s)
  return setmetatable({ text = s, indented = (gsub(s, "\n([^ \t\n])", "\n    %1")) }, Lines)
end

---@class moonwatch.Logger
---@field name string
---@field fields? table  the static fields of its records (nil without any)
local Logger = {}
Logger.__index = Logger

-- The class of loggers with static fields: its plain methods pass them on,
-- so that those of Logger stay as cheap as before there were fields.
local FieldLogger = setmetatable({}, { __index = Logger })
FieldLogger.__index = FieldLogger

local loggers = {}

---@alias moonwatch.LogFields table<string, string|number|boolean|table<string, number>>

local function field_error(where, k, what)
  error(format("%s: field '%s' must be a string, number, boolean or table of numbers, got %s",
               where, tostring(k), what), 4)
end

-- A checked copy: the logger's fields must not change under it.
local function copy_fields(fields, where)
  if type(fields) ~= "table" then
    error(format("%s: fields must be a table, got %s", where, type(fields)), 3)
  end
  local copy = {}
  for k, v in pairs(fields) do
    if type(k) ~= "string" then
      error(format("%s: field names must be strings, got %s", where, type(k)), 3)
    end
    local t = type(v)
    if t == "table" then
      local nums = {}
      for nk, nv in pairs(v) do
        if type(nk) ~= "string" or type(nv) ~= "number" then
          field_error(where, k, "a table with a " .. type(nk) .. " key and a "
                      .. type(nv) .. " value")
        end
        nums[nk] = nv
      end
      v = nums
    elseif t ~= "string" and t ~= "number" and t ~= "boolean" then
      field_error(where, k, t)
    end
    copy[k] = v
  end
  return copy
end

--- The logger of this name. Without fields (or with none in the table) one
--- object per name; with fields, a new logger whose every record carries
--- them: `log.get("HttpMonitor", { monitor = "example" })`.
---@param name string
---@param fields? moonwatch.LogFields
---@return moonwatch.Logger
function M.get(name, fields)
  local own = fields ~= nil and copy_fields(fields, "log.get") or nil
  if own and next(own) ~= nil then
    return setmetatable({ name = name, fields = own }, FieldLogger)
  end
  local lg = loggers[name]
  if not lg then
    lg = setmetatable({ name = name }, Logger)
    loggers[name] = lg
  end
  return lg
end

local BREAKS = { ["\n"] = "\\n", ["\r"] = "\\r" }

local function safe_args(...)
  local args = table.pack(...)
  for i = 1, args.n do
    local a = args[i]
    local t = type(a)
    if getmetatable(a) == Lines then
      args[i] = text_sink and a.indented or a.text
    elseif text_sink and t ~= "number" and t ~= "boolean" and t ~= "nil" then
      args[i] = (gsub(tostring(a), "[\r\n]", BREAKS))
    end
  end
  return table.unpack(args, 1, args.n)
end

-- The fields a captured record shows: the logger's, then the record's over them.
local function merged(static, fields)
  local all = {}
  if static then
    for k, v in pairs(static) do all[k] = v end
  end
  if fields then
    for k, v in pairs(fields) do all[k] = v end
  end
  return all
end

-- The text of a record.
local function message(fmt, ...)
  if select("#", ...) == 0 then return tostring(fmt) end
  if plain(...) then return format(fmt, ...) end
  return format(fmt, safe_args(...))
end

-- Keeps a record in the innermost capture; true when it is not written.
local function captured(self, lg, level, msg, fields, static)
  local cap = captures[#captures]
  cap[#cap + 1] = { level = level, name = self.name, message = msg,
                    fields = merged(static, fields),
                    text = lg:format(level, self.name, msg, nil, fields, static) }
  return not cap.passthrough
end

-- The plain methods of a logger without fields: as before there were any.
local function emit(self, level, fmt, ...)
  local lg = root()
  if not lg:enabled(level) then return false end
  local msg
  if select("#", ...) == 0 then
    msg = tostring(fmt)
  elseif plain(...) then
    msg = format(fmt, ...)
  else
    msg = format(fmt, safe_args(...))
  end
  if #captures > 0 and captured(self, lg, level, msg) then return true end
  return lg:log(level, self.name, msg)
end

-- The *_with methods, and the plain ones of a FieldLogger: fields are this
-- record's (nil for none); C merges them over the logger's, without a table
-- per record.
local function emit_with(self, level, fields, fmt, ...)
  local lg = root()
  if not lg:enabled(level) then return false end
  local msg = message(fmt, ...)
  local static = self.fields
  if #captures > 0 and captured(self, lg, level, msg, fields, static) then return true end
  return lg:log(level, self.name, msg, fields, static)
end

--- Logs `fmt` (with `string.format` arguments, if any) at a level.
---@param level string|integer
---@param fmt string
function Logger:log(level, fmt, ...) return emit(self, level, fmt, ...) end
function Logger:debug(fmt, ...) return emit(self, "DEBUG", fmt, ...) end
function Logger:info(fmt, ...) return emit(self, "INFO", fmt, ...) end
function Logger:warning(fmt, ...) return emit(self, "WARNING", fmt, ...) end
function Logger:error(fmt, ...) return emit(self, "ERROR", fmt, ...) end
function Logger:critical(fmt, ...) return emit(self, "CRITICAL", fmt, ...) end

function FieldLogger:log(level, fmt, ...) return emit_with(self, level, nil, fmt, ...) end
function FieldLogger:debug(fmt, ...) return emit_with(self, "DEBUG", nil, fmt, ...) end
function FieldLogger:info(fmt, ...) return emit_with(self, "INFO", nil, fmt, ...) end
function FieldLogger:warning(fmt, ...) return emit_with(self, "WARNING", nil, fmt, ...) end
function FieldLogger:error(fmt, ...) return emit_with(self, "ERROR", nil, fmt, ...) end
function FieldLogger:critical(fmt, ...) return emit_with(self, "CRITICAL", nil, fmt, ...) end

--- Logs like `log`, with fields for this record over the logger's own
--- (name -> string, number, boolean, or a table of name -> number).
---@param level string|integer
---@param fields moonwatch.LogFields|nil
---@param fmt string
function Logger:log_with(level, fields, fmt, ...)
  return emit_with(self, level, fields, fmt, ...)
end
function Logger:debug_with(fields, fmt, ...) return emit_with(self, "DEBUG", fields, fmt, ...) end
function Logger:info_with(fields, fmt, ...) return emit_with(self, "INFO", fields, fmt, ...) end
function Logger:warning_with(fields, fmt, ...)
  return emit_with(self, "WARNING", fields, fmt, ...)
end
function Logger:error_with(fields, fmt, ...) return emit_with(self, "ERROR", fields, fmt, ...) end
function Logger:critical_with(fields, fmt, ...)
  return emit_with(self, "CRITICAL", fields, fmt, ...)
end

---@class moonwatch.LogRecord
---@field level string|integer
---@field name string
---@field message string
---@field fields moonwatch.LogFields  the logger's and the record's ({} without any)
---@field text string                 the record as it would have been written

---@class moonwatch.LogCapture
---@field [integer] moonwatch.LogRecord
local Capture = {}
Capture.__index = Capture

--- All captured records as the text they would have been written as.
---@return string
function Capture:text()
  local out = {}
  for i, rec in ipairs(self) do out[i] = rec.text end
  return table.concat(out)
end

--- Stops capturing (also done by a to-be-closed variable).
function Capture:close()
  for i = #captures, 1, -1 do
    if captures[i] == self then table.remove(captures, i) end
  end
end
Capture.__close = Capture.close

--- Starts capturing records (like pytest's caplog): they are kept in the
--- returned list instead of written, unless `passthrough` is true.
---@param passthrough? boolean
---@return moonwatch.LogCapture
function M.capture(passthrough)
  local cap = setmetatable({ passthrough = passthrough or false }, Capture)
  captures[#captures + 1] = cap
  return cap
end

return M
