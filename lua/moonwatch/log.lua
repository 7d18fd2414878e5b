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
local core = require("moonwatch.core")

local gsub, format, select, type = string.gsub, string.format, select, type
local plain = core.log_plain -- the arguments string.format may take as they are
local getmetatable, tostring = getmetatable, tostring

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
local Logger = {}
Logger.__index = Logger

local loggers = {}

--- The logger of this name (one object per name).
---@param name string
---@return moonwatch.Logger
function M.get(name)
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
  local n = #captures
  if n > 0 then
    local cap = captures[n]
    cap[#cap + 1] = { level = level, name = self.name, message = msg,
                      text = lg:format(level, self.name, msg) }
    if not cap.passthrough then return true end
  end
  return lg:log(level, self.name, msg)
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

---@class moonwatch.LogCapture
---@field [integer] {level: string|integer, name: string, message: string, text: string}
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
