--- Logging: named loggers over the C logger of moonwatch.core.
---
---     local log = require("moonwatch.log")
---     log.setup{ level = "INFO", format = log.DEFAULT_FORMAT }
---     local logger = log.get("HttpMonitor")
---     logger:info("Check\n    %s %s", "GET", url)
---
--- Records are formatted and written by C, one write(2) each. Specs capture
--- records with `log.capture()` instead of parsing stdout.
local core = require("moonwatch.core")

local M = {}

M.DEFAULT_FORMAT = "[%(asctime)s] [%(levelname)s] [%(name)s]: %(message)s"
M.levels = core.log_levels

local sink = nil      -- the core logger records go to
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
  return lg
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

local function emit(self, level, fmt, ...)
  local lg = root()
  if not lg:enabled(level) then return false end
  local msg = select("#", ...) > 0 and string.format(fmt, ...) or tostring(fmt)
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
