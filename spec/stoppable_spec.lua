-- The daemon can always be stopped, and nothing it is given at start-up
-- hangs it: a second SIGTERM exits from the signal handler whatever the loop
-- does, a check that never yields is aborted at its CPU budget, a config that
-- never returns is stopped at --load-timeout, closed standard descriptors do
-- not end up as libuv's, SIGHUP does not kill it, a stdout on /dev/full is
-- reported, SIGUSR1 reopens log.file.
local fixture = require("support.fixture")
local daemon = require("support.daemon")

local q = fixture.shell_quote

-- A monitors.lua with monitors of class Spin (never yields, unless its
-- budget says otherwise) and Tick (logs "tick" and returns true).
local CONFIG = [[
local mw = require("moonwatch")
local Spin = mw.monitors.Monitor:extend("Spin")
function Spin:check()
  -- not a log record: records go out when the loop is about to wait
  io.stdout:write("spin starts\n")
  io.stdout:flush()
  while true do pcall(function() end) end
end
local Tick = mw.monitors.Monitor:extend("Tick")
function Tick:check() self.logger:info("tick") return true end
return mw.container(function(c)
  c.logging = mw.providers.Resource(mw.log.setup, { level = "INFO" })
  c.spin = mw.providers.Factory(Spin, { check_every = %s, cpu_budget = %s })
  c.tick = mw.providers.Factory(Tick, { check_every = 0.05 })
  c.dispatcher = mw.providers.Factory(mw.Dispatcher, {
    monitors = mw.providers.List(%s),
  })
end)
]]

describe("an always stoppable daemon", function()
  local dir
  local daemons = daemon.group()

  local function config(name, text)
    local path = dir .. "/" .. name
    local f = assert(io.open(path, "w"))
    f:write(text)
    f:close()
    return path
  end

  local function run(args, opts) return daemons:start(args, {}, opts) end

  -- Runs the executable to its end; returns its exit status and output.
  local function run_to_end(args)
    local cmd = { daemon.CLEAN_ENV, q(daemon.BIN) }
    for _, a in ipairs(args) do cmd[#cmd + 1] = q(a) end
    local p = assert(io.popen(table.concat(cmd, " ") .. " </dev/null 2>&1; echo \"rc=$?\""))
    local out = p:read("a")
    p:close()
    local rc = tonumber(out:match("rc=(%d+)\n$"))
    return rc, out:gsub("rc=%d+\n$", "")
  end

  lazy_setup(function() dir = fixture.tmpdir() end)
  lazy_teardown(function() fixture.rmtree(dir) end)
  after_each(function() daemons:cleanup() end)

  it("aborts a check that never yields at its CPU budget; the others go on", function()
    local path = config("budget.lua", CONFIG:format("0.3", "0.1", "c.spin, c.tick"))
    local d = run({ path })
    d:wait_output("spin starts", 2) -- aborted once, and run again at its next tick
    d:wait_output("tick", 5)
    d:signal("TERM")
    assert.equal(0, (d:wait_exit()))
    local out = d:stdout()
    assert.matches("%[ERROR%] %[Dispatcher%]: Error executing monitor check %(Spin%)\n"
      .. "[^\n]*budget.lua:7: CPU budget exceeded: ran Lua for 0.1 s of CPU without "
      .. "yielding %(cpu_budget%)\n    stack traceback:\n", out)
    assert.matches("Shutdown finished successfully\n$", out)
  end)

  it("exits with 128+15 on a second SIGTERM while a check keeps the loop busy", function()
    -- cpu_budget = 0: no limit, so the loop never gets the first signal
    local path = config("frozen.lua", CONFIG:format("60", "0", "c.spin"))
    local d = run({ path })
    d:wait_output("spin starts")
    d:signal("TERM")
    d:signal("TERM")
    local rc, took = d:wait_exit()
    assert.equal(128 + 15, rc)
    assert.is_true(took < 3, "took " .. took .. " s")
    assert.equal("moonwatch: second SIGTERM, exiting at once\n", d:stderr())
    assert.is_nil(d:stdout():find("Shutting down", 1, true))
  end)

  it("stops on the first SIGTERM while its stdout is not read", function()
    -- A reader that shrinks the FIFO to one page, says "full" once the
    -- daemon has filled it (nothing more arrives for 0.3 s while a record
    -- is due every 0.05 s), and never reads.
    local fifo = dir .. "/stalled"
    assert(os.execute("rm -f " .. q(fifo) .. " && mkfifo " .. q(fifo)))
    local reader = assert(io.popen("exec python3 -c " .. q([[
import fcntl, os, signal, sys, termios, array, time
fd = os.open(sys.argv[1], os.O_RDONLY)
fcntl.fcntl(fd, 1031, 4096)  # F_SETPIPE_SZ
buf = array.array("i", [0])
last, stable = -1, 0
for _ in range(500):  # full: more than a record in it, and no more coming
    fcntl.ioctl(fd, termios.FIONREAD, buf)
    stable = stable + 1 if buf[0] == last else 0
    last = buf[0]
    if last >= 2000 and stable >= 30:
        break
    time.sleep(0.01)
print("full" if stable >= 30 else "not full", os.getpid(), flush=True)
signal.pause()
]]) .. " " .. q(fifo)))
    local path = config("stalled.lua", CONFIG:format("60", "0", "c.tick"):gsub(
      'self.logger:info%("tick"%)', 'self.logger:info("tick %%s", ("x"):rep(2000))'))
    local d = run({ path }, { stdout = ">" .. q(fifo) })
    local line = reader:read("l")
    local state, pid = tostring(line):match("^(%a+ ?%a*) (%d+)$")
    assert.equal("full", state)
    d:signal("TERM")
    local rc, took = d:wait_exit()
    os.execute("kill -TERM " .. pid)
    reader:close()
    assert.equal(0, rc)
    assert.is_true(took < 3, "took " .. took .. " s")
  end)

  it("starts with fds 0, 1 and 2 closed, and stops cleanly on SIGTERM", function()
    local path = config("closed.lua", CONFIG:format("60", "0", "c.tick"))
    local d = run({ path }, { stdin = "<&-", stdout = ">&-", stderr = "2>&-" })
    -- nothing to read: wait until its stdin, stdout and stderr are open
    local fds = daemon.wait_for(5, function()
      local p = io.popen("ls -l /proc/" .. d.pid .. "/fd 2>/dev/null")
      local s = p:read("a")
      p:close()
      local n = 0
      for _ in s:gmatch(" [012] %-> /dev/null") do n = n + 1 end
      return n == 3 and n
    end)
    assert.equal(3, fds)
    -- and until it catches SIGTERM (SigCgt bit 14, signal 15): the fds are reopened
    -- before the handler is in place, so a SIGTERM at once could kill it
    local caught = daemon.wait_for(5, function()
      local f = io.open("/proc/" .. d.pid .. "/status")
      local status = f and f:read("a") or ""
      if f then f:close() end
      local mask = tonumber(status:match("SigCgt:%s*(%x+)") or "0", 16)
      return mask & (1 << 14) ~= 0
    end)
    assert.is_true(caught, "the daemon never caught SIGTERM")
    d:signal("TERM")
    assert.equal(0, (d:wait_exit()))
  end)

  it("reports a stdout it cannot write (/dev/full) on stderr, and still stops", function()
    local path = config("full.lua", CONFIG:format("60", "0", "c.tick"))
    local d = run({ path }, { stdout = ">/dev/full" })
    assert(daemon.wait_for(5, function() return d:stderr():find("cannot write", 1, true) end),
      "nothing on stderr")
    d:signal("TERM")
    assert.equal(0, (d:wait_exit()))
    local err = d:stderr()
    assert.matches("^moonwatch: log: cannot write to stdout: No space left on device; records "
      .. "are kept and retried, dropped when 1 MiB is full\n", err)
    -- "1 record was", "4 records were"
    assert.matches("\nmoonwatch: log: %d+ records? w%a+ lost at exit: cannot write to "
      .. "stdout: No space left on device\n$", err)
  end)

  it("reopens log.file on SIGUSR1, as logrotate needs", function()
    local file = dir .. "/moonwatch.log"
    local path = config("rotate.lua", CONFIG:format("60", "0", "c.tick"):gsub(
      '{ level = "INFO" }', '{ level = "INFO", file = ' .. ("%q"):format(file) .. ' }'))
    local d = run({ path })
    local function has(f, s) return (fixture.read_file(f) or ""):find(s, 1, true) end
    assert(daemon.wait_for(5, function() return has(file, "tick") end), "no tick in the log")
    assert(os.rename(file, file .. ".1"))
    d:signal("USR1")
    assert(daemon.wait_for(5, function() return has(file, "SIGUSR1: log file reopened") end),
      "the log file was not reopened")
    assert(daemon.wait_for(5, function() return has(file, "tick") end), "no tick after reopen")
    d:signal("TERM")
    assert.equal(0, (d:wait_exit()))
    local old, new = fixture.read_file(file .. ".1"), fixture.read_file(file)
    assert.matches("Starting up", old)
    assert.is_nil(old:find("reopened", 1, true))
    assert.matches("Shutdown finished successfully\n$", new)
    assert.equal("", d:stdout())
  end)

  it("reloads on SIGHUP, logs SIGUSR2 and goes on; SIGTERM then stops it", function()
    local path = config("hup.lua", CONFIG:format("60", "0", "c.tick"))
    local d = run({ path })
    d:wait_output("tick")
    d:signal("HUP")
    -- Tick has no same_config: it restarts
    d:wait_output("Configuration reloaded: 0 added, 1 changed, 0 removed, 0 unchanged")
    d:signal("HUP")
    d:wait_output("Configuration reloaded", 2)
    d:signal("USR2")
    d:wait_output("SIGUSR2 received and ignored")
    d:signal("TERM")
    assert.equal(0, (d:wait_exit()))
    assert.matches("Shutdown finished successfully\n$", d:stdout())
  end)

  it("stops a config that never returns at --load-timeout, naming the file", function()
    local path = config("endless.lua", "local n = 0\nwhile true do n = n + 1 end\n")
    local rc, out = run_to_end({ "--check", "--load-timeout", "0.2", path })
    assert.equal(1, rc)
    assert.matches("^moonwatch: error while loading " .. path:gsub("%p", "%%%0") .. ": "
      .. path:gsub("%p", "%%%0") .. ":2: CPU limit exceeded: still running after 0.2 s of CPU\n",
      out)
    assert.matches("(" .. path .. " was still running; --load-timeout sets the limit)", out, 1,
      true)
  end)

  it("stops a monitor constructor that never returns, too", function()
    local text = CONFIG:format("60", "0", "c.tick"):gsub("function Tick:check%(%)",
      "function Tick:new(kw) while true do end end\nfunction Tick:check()")
    local path = config("endless_new.lua", text)
    local rc, out = run_to_end({ "--check", "--load-timeout", "0.2", path })
    assert.equal(1, rc)
    assert.matches("CPU limit exceeded: still running after 0.2 s of CPU", out, 1, true)
  end)

  it("refuses a bad --load-timeout", function()
    for _, bad in ipairs({ "-1", "soon", "0.001" }) do
      local rc, out = run_to_end({ "--check", "--load-timeout", bad, "monitors.lua" })
      assert.equal(2, rc)
      assert.matches("--load-timeout needs 0 (no limit) or a number of seconds from 0.01, got '"
        .. bad .. "'", out, 1, true)
    end
  end)

  it("names the file when a config nests too deeply to parse", function()
    local path = config("deep.lua", "return " .. ("{"):rep(250) .. ("}"):rep(250) .. "\n")
    local rc, out = run_to_end({ "--check", path })
    assert.equal(1, rc)
    assert.equal("moonwatch: " .. path .. ": C stack overflow (nested too deeply: tables, "
      .. "calls or parentheses)\n", out)
  end)

  it("refuses check_every below the scheduler's resolution", function()
    local path = config("often.lua", CONFIG:format("1e-9", "0", "c.spin"))
    local rc, out = run_to_end({ "--check", path })
    assert.equal(1, rc)
    assert.matches(": check_every must be at least 0.001 s (the scheduler's resolution), "
      .. "got 1e-09\n", out, 1, true)
  end)
end)
