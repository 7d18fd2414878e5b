-- moonwatch.core: SIGTERM/SIGINT handling. Signals go to a child lua5.4
-- process running a small script, never to the process running the specs.
local core = require("moonwatch.core")
local fixture = require("support.fixture")

local CHILD = [[
local cpath, mode = arg[1], arg[2]
package.cpath = cpath .. ";" .. package.cpath
local core = require("moonwatch.core")
io.stdout:setvbuf("no")
local f = assert(io.open("/proc/self/stat"))
local pid = f:read("l"):match("^%d+")
f:close()
-- at most 5 s, so that a child that missed its signal still ends
local main = core.spawn(function() core.sleep(5) end)
core.on_signal(function(name)
  io.write("signal ", name, " in a task: ", tostring(core.current() ~= nil), "\n")
  if mode == "hang" then core.sleep(5) end
  main:cancel()
end)
if mode == "removed" then core.on_signal(nil) end
io.write("pid ", pid, "\n")
core.run()
local st = core.stats()
io.write("clean exit, tasks ", st.tasks, ", handles ", st.handles, "\n")
]]

local function cwd()
  local p = assert(io.popen("pwd"))
  local d = p:read("l")
  p:close()
  return d
end

describe("core signals", function()
  local dir, script, cpath

  lazy_setup(function()
    dir = fixture.tmpdir()
    script = dir .. "/child.lua"
    local f = assert(io.open(script, "w"))
    f:write(CHILD)
    f:close()
    cpath = cwd() .. "/build/lib/?.so"
  end)
  lazy_teardown(function() if dir then fixture.rmtree(dir) end end)

  after_each(function()
    assert.same({ tasks = 0, handles = 0 }, core.stats())
  end)

  -- Starts the child; returns its process handle and pid.
  local function child(mode)
    local q = fixture.shell_quote
    local proc = assert(io.popen(("exec lua5.4 %s %s %s 2>&1"):format(q(script), q(cpath),
                                                                       q(mode))))
    local line = proc:read("l")
    local pid = line and line:match("^pid (%d+)$")
    if not pid then
      error("the child did not start: " .. tostring(line) .. "\n" .. (proc:read("a") or ""))
    end
    return proc, pid
  end

  local function kill(sig, pid)
    assert.is_true(os.execute("kill -" .. sig .. " " .. pid) == true)
  end

  it("runs the handler as a task on SIGTERM; the process ends cleanly", function()
    local proc, pid = child("graceful")
    local t0 = os.time()
    kill("TERM", pid)
    assert.equals("signal SIGTERM in a task: true", proc:read("l"))
    assert.equals("clean exit, tasks 0, handles 0", proc:read("l"))
    local ok, how, code = proc:close()
    assert.same({ true, "exit", 0 }, { ok, how, code })
    assert.is_true(os.time() - t0 < 4, "the child waited for its sleep")
  end)

  it("runs the handler on SIGINT too", function()
    local proc, pid = child("graceful")
    kill("INT", pid)
    assert.equals("signal SIGINT in a task: true", proc:read("l"))
    assert.equals("clean exit, tasks 0, handles 0", proc:read("l"))
    assert.same({ true, "exit", 0 }, { proc:close() })
  end)

  it("exits at once with 128+signum on a second signal", function()
    local proc, pid = child("hang")
    kill("TERM", pid)
    assert.equals("signal SIGTERM in a task: true", proc:read("l"))
    local t0 = os.time()
    kill("TERM", pid)
    local rest = proc:read("a")
    assert.matches("second SIGTERM, exiting at once", rest, 1, true)
    assert.same({ nil, "exit", 128 + 15 }, { proc:close() })
    assert.is_true(os.time() - t0 < 3)

    proc, pid = child("hang")
    kill("TERM", pid)
    assert.equals("signal SIGTERM in a task: true", proc:read("l"))
    kill("INT", pid)
    proc:read("a")
    assert.same({ nil, "exit", 128 + 2 }, { proc:close() })
  end)

  it("core.on_signal(nil) restores the default action", function()
    local proc, pid = child("removed")
    kill("TERM", pid)
    assert.equals("", proc:read("a"))
    assert.same({ nil, "signal", 15 }, { proc:close() })
  end)

  it("signal handles do not keep the loop alive", function()
    core.on_signal(function() end)
    local t0 = core.now()
    core.run()
    assert.is_true(core.now() - t0 < 0.1)
    assert.same({ tasks = 0, handles = 0 }, core.stats())
    assert.equals(7, core.run(function() core.sleep(0.01); return 7 end))
    core.on_signal(nil)
    core.on_signal(nil) -- twice is fine
  end)

  it("core.on_signal wants a function or nil", function()
    assert.has_error(function() core.on_signal("stop") end)
  end)
end)
