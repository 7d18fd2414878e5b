--- The `moonwatch` command: loads monitors.lua, applies settings from the
--- environment and --set, builds the container and runs the dispatcher.
local core = require("moonwatch.core")
local container = require("moonwatch.container")
local providers = require("moonwatch.providers")
local log = require("moonwatch.log")

local M = {}

M.USAGE = [[
Usage: moonwatch [options] [monitors.lua]
       moonwatch test [dir] [busted options]   run dir's specs (see test --help)

Runs the monitors declared in monitors.lua (default: ./monitors.lua) until
SIGTERM or SIGINT.

Options:
  --set key.path=value  override a setting (repeatable), e.g. --set log.level=DEBUG
  --check               load the config, build every monitor, report errors, exit
  --once                run every monitor once, print the records, exit 1 if any failed
  --stats               at exit, print the schedule's figures as one JSON line on stderr
  --load-timeout S      CPU seconds monitors.lua may take to load and build (default
                        10; 0: no limit)
  -l script.lua [args]  run a Lua script with moonwatch's modules (like lua5.4)
  --help                show this help
  --version             show the version

Every setting can also come from the environment: MOONWATCH_ then the path
in upper case with "__" between levels, e.g. MOONWATCH_LOG__LEVEL=DEBUG or
MOONWATCH_MONITORS__EXAMPLE__TIMEOUT=2. --set wins over the environment.
]]

--- CPU seconds that loading and building monitors.lua may take by default.
M.LOAD_TIMEOUT = 10

local function say(fmt, ...) io.stderr:write("moonwatch: ", string.format(fmt, ...), "\n") end

--- Parses argv; returns options or nil, message.
function M.parse(argv)
  -- `moonwatch test ...`: every later argument is the test command's.
  if argv[1] == "test" then return { test = table.move(argv, 2, #argv, 1, {}) } end
  local opts = { sets = {}, path = nil }
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if a == "--help" or a == "-h" then opts.help = true
    elseif a == "--version" then opts.version = true
    elseif a == "--check" then opts.check = true
    elseif a == "--once" then opts.once = true
    elseif a == "--stats" then opts.stats = true
    elseif a == "--set" then
      local v = argv[i + 1]
      if not v then return nil, "--set needs key.path=value" end
      opts.sets[#opts.sets + 1] = v
      i = i + 1
    elseif a:match("^%-%-set=") then opts.sets[#opts.sets + 1] = a:sub(7)
    elseif a == "--load-timeout" or a:match("^%-%-load%-timeout=") then
      local v = a:match("=(.*)$")
      if not v then
        v = argv[i + 1]
        i = i + 1
      end
      local n = tonumber(v)
      if not n or n ~= n or n < 0 or n > 86400 or (n > 0 and n < 0.01) then
        return nil, "--load-timeout needs 0 (no limit) or a number of seconds from 0.01, got "
          .. (v and ("'" .. v .. "'") or "nothing")
      end
      opts.load_timeout = n
    elseif a:sub(1, 1) == "-" then return nil, "unknown option '" .. a .. "' (see --help)"
    elseif opts.path then return nil, "only one monitors file may be given, got '"
      .. opts.path .. "' and '" .. a .. "'"
    else opts.path = a end
    i = i + 1
  end
  if opts.check and opts.once then return nil, "--check and --once cannot be combined" end
  for _, s in ipairs(opts.sets) do
    if not s:match("^[%w_][%w_.]*=") then
      return nil, "--set '" .. s .. "' must look like key.path=value"
    end
  end
  opts.path = opts.path or "monitors.lua"
  opts.load_timeout = opts.load_timeout or M.LOAD_TIMEOUT
  return opts
end

local function traceback(err)
  if type(err) ~= "string" then return err end
  return debug.traceback(err, 2)
end

--- Runs fn(...) under the CPU limit of the loading phase (none when 0).
local limit = 0
local function bounded(fn, ...)
  if limit == 0 then return fn(...) end
  return core.cpu_limit(limit, fn, ...)
end
--- (a reload's loading is bounded alike)
M.bounded = bounded

--- The directory part of a path: "a/b.lua" -> "a", "b.lua" -> ".".
local function dirname(path)
  return path:match("^(.*[^/])/+[^/]*$") or (path:sub(1, 1) == "/" and "/") or "."
end

--- Puts dir's modules first on package.path (once), so that a config's own
--- helpers load whatever the working directory. A directory with ';' or '?'
--- in its name would change what the path means: it is left off.
local function add_module_dir(dir)
  if dir:find("[;?]") then return end
  local prefix = dir == "/" and "/" or dir .. "/"
  local entries = prefix .. "?.lua;" .. prefix .. "?/init.lua"
  if (";" .. package.path .. ";"):find(";" .. entries .. ";", 1, true) then return end
  package.path = entries .. ";" .. package.path
end

--- Loads the monitors file: the container definition, or nil, message.
--- The modules beside the file can be required from it.
function M.load(path)
  add_module_dir(dirname(path))
  local chunk, err = loadfile(path, "t")
  if not chunk then
    -- Errors raised outside the parser proper (too deep a nesting of tables
    -- or parentheses) carry neither the file name nor a line.
    err = tostring(err):match("^[^\n]*")
    if err:sub(1, #path + 1) ~= path .. ":" then
      err = path .. ": " .. err .. (err:find("stack overflow", 1, true)
        and " (nested too deeply: tables, calls or parentheses)" or "")
    end
    return nil, err
  end
  local ok, def = bounded(xpcall, chunk, traceback)
  if not ok then
    local msg = tostring(def)
    if msg:find("CPU limit exceeded", 1, true) then
      msg = msg .. "\n(" .. path .. " was still running; --load-timeout sets the limit)"
    end
    return nil, "error while loading " .. path .. ": " .. msg
  end
  if not container.is_definition(def) then
    return nil, path .. " must return mw.container(function(c) ... end), got "
      .. (type(def) == "table" and "a table" or type(def))
  end
  return def
end

--- Builds an instance with settings applied: instance or nil, message.
--- A --set path or MOONWATCH_* variable that no option reference of the
--- instance reads is an error (a typo), one line each.
function M.instantiate(def, path, sets)
  local ok, c = pcall(bounded, def)
  if not ok then return nil, path .. ": " .. tostring(c) end
  local has = {}
  for _, name in ipairs(c:provider_names()) do has[name] = true end
  if has.config and providers.kind_of(c.config) == "Configuration" then
    -- The project's own variables (the executable's, the specs' and the
    -- build's) share the prefix and are never settings.
    local own = { "MOONWATCH_LUA_DIR", "MOONWATCH_LUA_PATH", "MOONWATCH_BIN",
                  "MOONWATCH_BUILD", "MOONWATCH_SANITIZE", "MOONWATCH_FIXTURE_PYTHON",
                  "MOONWATCH_VERSION" }
    local cfg, err = c.config:from_env("MOONWATCH", nil, { ignore = own })
    if not cfg then return nil, "environment: " .. tostring(err) end
    cfg, err = c.config:from_strings(sets)
    if not cfg then return nil, "--set: " .. tostring(err) end
    local unread = c.config:unread(require("moonwatch.config").readers(c))
    if #unread > 0 then
      local lines = {}
      for i, u in ipairs(unread) do lines[i] = u.message end
      -- main prints "moonwatch: " before the message: one error a line
      return nil, table.concat(lines, "\nmoonwatch: ")
    end
  elseif #sets > 0 then
    return nil, "--set: " .. path .. " has no provider named 'config' to apply settings to"
  end
  local checked, err = pcall(bounded, c.check_dependencies, c)
  if not checked then return nil, path .. ": " .. tostring(err) end
  return c, has
end

--- Builds every provider; the errors, each root cause once. A provider that
--- fails is met again through every provider built from it, as a chain
--- ending in its own error (`dispatcher → monitors[1] → example_monitor:
--- ...` after `example_monitor: ...`): such a chain is left out.
local function build_all(c, path)
  local errors = {}
  for _, name in ipairs(c:provider_names()) do
    local kind = providers.kind_of(c[name])
    if kind ~= "Resource" and kind ~= "Configuration" then
      local ok, err = pcall(bounded, c[name])
      if not ok then errors[#errors + 1] = tostring(err) end
    end
  end
  local out = {}
  for _, e in ipairs(errors) do
    local repeated = false
    for _, other in ipairs(errors) do
      local tail = " → " .. other
      if #e > #tail and e:sub(-#tail) == tail then
        repeated = true
        break
      end
    end
    if not repeated then out[#out + 1] = path .. ": " .. e end
  end
  return out
end

--- One line per monitor after --once's records: name, UP or DOWN, and the
--- check's time or the reason it is down.
function M.once_summary(dispatcher, results)
  local width = 0
  for _, check in ipairs(dispatcher.checks) do width = math.max(width, #check.name) end
  local lines = {}
  for i, r in ipairs(results) do
    local name = dispatcher.checks[i].name
    local detail = r.up and string.format("%.3f s", r.duration or 0) or tostring(r.reason)
    lines[i] = string.format("%-" .. width .. "s  %-4s  %s\n", name, r.up and "UP" or "DOWN",
      detail)
  end
  return table.concat(lines)
end

--- Runs every monitor once; returns how many are down.
local function run_once(dispatcher)
  local results = dispatcher:check_once()
  log.flush()
  io.stdout:write(M.once_summary(dispatcher, results))
  io.stdout:flush()
  local down = 0
  for _, r in ipairs(results) do
    if not r.up then down = down + 1 end
  end
  return down
end

--- The figures `--stats` prints: counters, lateness, CPU, memory, times.
function M.stats_line(dispatcher, t0)
  local st, ru = dispatcher:stats(), core.rusage()
  local now = core.now()
  local started = dispatcher.started_at or now
  return string.format('{"monitors":%d,"scheduled":%d,"run":%d,"skipped":%d,"failed":%d,'
    .. '"down":%d,"cancelled":%d,"lateness_ms":{"p50":%.3f,"p99":%.3f,"max":%.3f},'
    .. '"startup_s":%.3f,"elapsed_s":%.3f,"cpu_user_s":%.3f,"cpu_system_s":%.3f,'
    .. '"maxrss_kb":%d}\n',
    st.monitors, st.scheduled, st.run, st.skipped, st.failed, st.down, st.cancelled,
    st.lateness.p50, st.lateness.p99, st.lateness.max, started - t0, now - started,
    ru.user, ru.system, ru.maxrss)
end

M.TEST_USAGE = [[
Usage: moonwatch test [dir] [busted options]

Runs busted on the *_spec.lua files under dir/spec/ (dir: the working
directory when not given), inside moonwatch: Lua 5.4, moonwatch's modules and
moonwatch.core are there, whatever Lua the plain busted command would start,
and so are the modules beside dir/monitors.lua. busted runs in dir: it reads
dir/.busted if there is one (not its lua setting), and the paths among the
busted options are relative to dir. The exit status is busted's: 0 when every
spec passes.

In a spec, require("moonwatch.testing").load("monitors.lua") stands for
dofile("monitors.lua"): it finds the file beside the spec or in its parent
directory. busted's own options: moonwatch test . --help
]]

--- `moonwatch test`: runs busted in this process; returns the exit status
--- when busted does not exit itself (it does on a failure or an error).
function M.test(args)
  if args[1] == "--help" or args[1] == "-h" then
    io.stdout:write(M.TEST_USAGE)
    return 0
  end
  local dir, rest = ".", args
  if args[1] and args[1]:sub(1, 1) ~= "-" then
    dir, rest = args[1], table.move(args, 2, #args, 1, {})
  end
  if not package.searchpath("busted.runner", package.path) then
    say("test: busted is not installed (Debian: apt-get install lua-busted; "
      .. "elsewhere: luarocks --lua-version=5.4 install busted)")
    return 1
  end
  -- Penlight comes with busted, which needs it.
  local path = require("pl.path")
  if not path.isdir(dir) then
    say("test: %s is not a directory", dir)
    return 1
  end
  if not path.isdir(path.join(dir, "spec")) and not path.isfile(path.join(dir, ".busted")) then
    say("test: %s has no spec/ folder (busted runs the *_spec.lua files in it)", dir)
    return 1
  end
  local root = path.abspath(dir)
  add_module_dir(root)
  -- -C: busted runs in the project and reads its .busted. --ignore-lua: a
  -- .busted naming another interpreter is not followed, this one has the
  -- Lua 5.4 and the core the specs need.
  local argv = { [0] = "moonwatch test", "--ignore-lua", "-C", root }
  table.move(rest, 1, #rest, #argv + 1, argv)
  _ENV.arg = argv
  -- busted names itself after the file that calls its runner: this chunk.
  local run = assert(load("local runner = ...; runner({ standalone = false })",
    "@moonwatch test", "t"))
  run(require("busted.runner"))
  return 0
end

--- The command; returns the exit status.
---@param argv string[]
---@return integer
function M.main(argv)
  local t0 = core.now()
  -- Checks make garbage at a steady rate next to a long-lived set (the
  -- monitors), and nearly all of it dies within the check: the generational
  -- collector's minor cycles touch only young objects. Measured with 10,000
  -- monitors at 1 s (bench/run.sh scale): 36-38 % of a core and p99 lateness
  -- 1.9-2.6 ms, against 45 % and 6-9 ms for the best incremental settings,
  -- whose every cycle marks and sweeps the whole heap. The price: a major
  -- cycle, rare, is not incremental (about 35 ms at that scale).
  collectgarbage("generational", 20, 100)
  local opts, err = M.parse(argv)
  if not opts then
    say("%s", err)
    return 2
  end
  if opts.test then return M.test(opts.test) end
  if opts.help then
    io.stdout:write(M.USAGE)
    return 0
  end
  if opts.version then
    io.stdout:write("moonwatch ", core.version, "\n")
    return 0
  end
  limit = opts.load_timeout
  local def
  def, err = M.load(opts.path)
  if not def then
    say("%s", err)
    return 1
  end
  local c, has = M.instantiate(def, opts.path, opts.sets)
  if not c then
    say("%s", has)
    return 1
  end
  local ok
  ok, err = pcall(bounded, c.init_resources, c)
  if not ok then
    say("%s: %s", opts.path, tostring(err))
    return 1
  end
  if opts.check then
    local errors = build_all(c, opts.path)
    for _, e in ipairs(errors) do say("%s", e) end
    if #errors > 0 then return 1 end
    io.stdout:write(opts.path, ": OK\n")
    return 0
  end
  if not has.dispatcher then
    say("%s: no provider named 'dispatcher' to run", opts.path)
    return 1
  end
  local dispatcher
  ok, dispatcher = pcall(bounded, c.dispatcher)
  if not ok then
    say("%s: %s", opts.path, tostring(dispatcher))
    return 1
  end
  local status = 0
  local daemon
  if opts.once then
    status = run_once(dispatcher) > 0 and 1 or 0
  elseif type(dispatcher) == "table" and type(dispatcher.reload) == "function" then
    daemon = require("moonwatch.daemon").new{ path = opts.path, sets = opts.sets,
                                              container = c, dispatcher = dispatcher }
    daemon:run()
  else
    dispatcher:run() -- not a moonwatch.Dispatcher: it cannot be reloaded
  end
  if opts.stats and dispatcher.stats then io.stderr:write(M.stats_line(dispatcher, t0)) end
  if daemon then
    ok, err = daemon:shutdown_resources()
    if not ok then say("%s", tostring(err)) end
  end
  ok, err = pcall(c.shutdown_resources, c)
  if not ok then
    say("%s", tostring(err))
    return 1
  end
  return status
end

return M
