-- Runs the `moonwatch` executable (MOONWATCH_BIN, else build/moonwatch) in
-- the background for specs, with only the MOONWATCH_* settings a test gives:
--
--   local daemon = require("support.daemon")
--   local d = daemon.start({ "spec/fixtures/configs/good.lua" }, { FIXTURE_URL = base })
--   d:wait_output("content length: 648")
--   d:signal("TERM"); local rc = d:wait_exit(); d:cleanup()
local fixture = require("support.fixture")

local M = {}

local BIN = os.getenv("MOONWATCH_BIN") or "build/moonwatch"
local q = fixture.shell_quote

local read_file = fixture.read_file
M.BIN = BIN

local function now()
  local p = assert(io.popen("date +%s.%N"))
  local t = tonumber(p:read("l"))
  p:close()
  return t
end

-- `env` arguments that drop the MOONWATCH_* settings of this process, so
-- every run sees only the settings a test gives.
local function clean_env()
  local args = { "env" }
  local data = read_file("/proc/self/environ") or ""
  for name in data:gmatch("%f[^%z](MOONWATCH_[^=]*)=") do
    if name ~= "MOONWATCH_LUA_DIR" then args[#args + 1] = "-u " .. q(name) end
  end
  args[#args + 1] = "-u FIXTURE_URL"
  return table.concat(args, " ")
end
local CLEAN_ENV = clean_env()
M.CLEAN_ENV = CLEAN_ENV
M.now = now

-- Polls until fn() is truthy, for at most `seconds`; returns its value.
-- Only for waiting on another process: a spec has no task to sleep in.
function M.wait_for(seconds, fn)
  local deadline = now() + seconds
  repeat
    local v = fn()
    if v then return v end
    os.execute("sleep 0.05")
  until now() > deadline
  return fn()
end

local Daemon = {}
Daemon.__index = Daemon

-- A list of started daemons for a describe block: group:start(...) is
-- M.start that remembers the daemon, group:cleanup() (for after_each) ends
-- and removes every one.
local Group = {}
Group.__index = Group
function M.group() return setmetatable({}, Group) end
function Group:start(args, env, opts)
  local d = M.start(args, env, opts)
  self[#self + 1] = d
  return d
end
function Group:cleanup()
  for i = #self, 1, -1 do
    self[i]:cleanup()
    self[i] = nil
  end
end

-- Starts the daemon in the background with args (a list) and env (a table
-- of settings). A shell waits for it and writes its exit status to a file,
-- so the test gets the status like wait(2) would. opts.stdin, opts.stdout and
-- opts.stderr replace the shell redirections ("</dev/null", ">OUT", "2>ERR"),
-- e.g. stdout = ">&-" to start it with fd 1 closed.
function M.start(args, env, opts)
  opts = opts or {}
  local dir = fixture.tmpdir()
  local d = setmetatable({ dir = dir, out = dir .. "/out", err = dir .. "/err",
                           rc = dir .. "/rc" }, Daemon)
  local cmd = { q(BIN) }
  for _, a in ipairs(args) do cmd[#cmd + 1] = q(a) end
  local script = table.concat(cmd, " ") .. " " .. (opts.stdin or "</dev/null")
    .. " " .. (opts.stdout or (">" .. q(d.out))) .. " " .. (opts.stderr or ("2>" .. q(d.err)))
    .. " & echo $! >" .. q(dir .. "/pid") .. "; wait $!; echo $? >" .. q(d.rc .. ".tmp")
    .. "; mv " .. q(d.rc .. ".tmp") .. " " .. q(d.rc)
  local parts = { CLEAN_ENV }
  for name, value in pairs(env or {}) do parts[#parts + 1] = q(name .. "=" .. value) end
  parts[#parts + 1] = "sh -c " .. q(script) .. " </dev/null >/dev/null 2>&1 &"
  assert(os.execute(table.concat(parts, " ")))
  d.pid = M.wait_for(5, function()
    local s = read_file(dir .. "/pid")
    return s and s:match("^(%d+)\n$")
  end)
  assert(d.pid, "the daemon did not start")
  d.started = now()
  return d
end

function Daemon:stdout() return read_file(self.out) or "" end
function Daemon:stderr() return read_file(self.err) or "" end

-- Waits until stdout holds `needle` `count` times (default once).
function Daemon:wait_output(needle, count, seconds)
  count = count or 1
  local ok = M.wait_for(seconds or 5, function()
    local _, n = self:stdout():gsub(needle:gsub("%p", "%%%0"), "")
    return n >= count
  end)
  assert(ok, string.format("no %q (x%d) in the output:\n%s%s", needle, count,
    self:stdout(), self:stderr()))
end

function Daemon:signal(name)
  self.signalled = now()
  assert(os.execute("kill -" .. name .. " " .. self.pid))
end

-- Waits for the exit; returns the status and how long after the signal.
function Daemon:wait_exit(seconds)
  local rc = M.wait_for(seconds or 5, function()
    local s = read_file(self.rc)
    return s and tonumber(s)
  end)
  return rc, now() - (self.signalled or self.started)
end

function Daemon:cleanup()
  if not read_file(self.rc) then os.execute("kill -KILL " .. self.pid .. " 2>/dev/null") end
  M.wait_for(2, function() return read_file(self.rc) end)
  fixture.rmtree(self.dir)
end

M.ASCTIME = "%[%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d,%d%d%d%]"

-- The messages of the records in the output, in order (first line of each).
function M.messages(out)
  local list = {}
  for line in out:gmatch("[^\n]+") do
    local msg = line:match("^" .. M.ASCTIME .. " %[%u+%] %[%w+%]: (.*)$")
    if msg then list[#list + 1] = msg end
  end
  return list
end

return M
