-- The `moonwatch` daemon end to end: it starts, checks the local fixture,
-- and on SIGTERM/SIGINT cancels what is in flight, logs its shutdown and
-- exits 0. Runs the real executable (MOONWATCH_BIN, else build/moonwatch).
local http = require("socket.http")
local fixture = require("support.fixture")

local BIN = os.getenv("MOONWATCH_BIN") or "build/moonwatch"
local CONFIGS = "spec/fixtures/configs/"
local q = fixture.shell_quote

local read_file = fixture.read_file

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

-- Polls until fn() is truthy, for at most `seconds`; returns its value.
-- Only for waiting on another process: a spec has no task to sleep in.
local function wait_for(seconds, fn)
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

-- Starts the daemon in the background. A shell waits for it and writes its
-- exit status to a file, so the test gets the status like wait(2) would.
local function start(args, env)
  local dir = fixture.tmpdir()
  local d = setmetatable({ dir = dir, out = dir .. "/out", err = dir .. "/err",
                           rc = dir .. "/rc" }, Daemon)
  local cmd = { q(BIN) }
  for _, a in ipairs(args) do cmd[#cmd + 1] = q(a) end
  local script = table.concat(cmd, " ") .. " </dev/null >" .. q(d.out) .. " 2>" .. q(d.err)
    .. " & echo $! >" .. q(dir .. "/pid") .. "; wait $!; echo $? >" .. q(d.rc .. ".tmp")
    .. "; mv " .. q(d.rc .. ".tmp") .. " " .. q(d.rc)
  local parts = { CLEAN_ENV }
  for name, value in pairs(env or {}) do parts[#parts + 1] = q(name .. "=" .. value) end
  parts[#parts + 1] = "sh -c " .. q(script) .. " </dev/null >/dev/null 2>&1 &"
  assert(os.execute(table.concat(parts, " ")))
  d.pid = wait_for(5, function()
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
  local ok = wait_for(seconds or 5, function()
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
  local rc = wait_for(seconds or 5, function()
    local s = read_file(self.rc)
    return s and tonumber(s)
  end)
  return rc, now() - (self.signalled or self.started)
end

function Daemon:cleanup()
  if not read_file(self.rc) then os.execute("kill -KILL " .. self.pid .. " 2>/dev/null") end
  wait_for(2, function() return read_file(self.rc) end)
  fixture.rmtree(self.dir)
end

local ASCTIME = "%[%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d,%d%d%d%]"

-- The messages of the records in the output, in order (first line of each).
local function messages(out)
  local list = {}
  for line in out:gmatch("[^\n]+") do
    local msg = line:match("^" .. ASCTIME .. " %[%u+%] %[%w+%]: (.*)$")
    if msg then list[#list + 1] = msg end
  end
  return list
end

-- Requests the fixture has read so far, this one included.
local function requests_seen(srv)
  local body = http.request(srv:url("/stats"))
  return tonumber(body and body:match('"requests": (%d+)'))
end

describe("moonwatch daemon", function()
  local srv
  local daemons = {}

  local function run(args, env)
    local d = start(args, env)
    daemons[#daemons + 1] = d
    return d
  end

  lazy_setup(function() srv = fixture.start() end)
  lazy_teardown(function() if srv then srv:stop() end end)
  after_each(function()
    for i, d in ipairs(daemons) do
      d:cleanup()
      daemons[i] = nil
    end
  end)

  it("starts, checks, and on SIGTERM shuts down and exits 0", function()
    local d = run({ CONFIGS .. "good.lua" }, { FIXTURE_URL = srv.base })
    d:wait_output("content length: 648")
    d:signal("TERM")
    local rc = d:wait_exit()
    assert.equal(0, rc)
    local out = d:stdout()
    assert.same({ "Starting up", "Check", "Shutting down", "Shutdown finished successfully" },
      messages(out))
    assert.matches("^" .. ASCTIME .. " %[INFO%] %[Dispatcher%]: Starting up\n", out)
    assert.matches("\n" .. ASCTIME .. " %[INFO%] %[Dispatcher%]: Shutting down\n"
      .. ASCTIME .. " %[INFO%] %[Dispatcher%]: Shutdown finished successfully\n$", out)
    assert.equal("", d:stderr())
  end)

  it("checks at the interval, from the start of the previous check", function()
    local d = run({ "--set", "monitors.example.check_every=0.2", CONFIGS .. "good.lua" },
      { FIXTURE_URL = srv.base })
    d:wait_output("content length: 648", 4)
    local elapsed = now() - d.started
    d:signal("TERM")
    assert.equal(0, (d:wait_exit()))
    -- 4 checks at 0, 0.2, 0.4, 0.6 s
    assert.is_true(elapsed >= 0.55 and elapsed < 3, "4 checks took " .. elapsed .. " s")
  end)

  it("cancels a request in flight on SIGTERM, well before its timeout", function()
    local before, polls = requests_seen(srv), 0
    local d = run({ "monitors.lua" }, {
      MOONWATCH_MONITORS__EXAMPLE__URL = srv:url("/page"),
      MOONWATCH_MONITORS__HTTPBIN__URL = srv:url("/hang"),
      MOONWATCH_MONITORS__HTTPBIN__TIMEOUT = "30",
    })
    d:wait_output("content length: 648")
    -- both requests reached the server: /hang is in flight
    assert.truthy(wait_for(5, function()
      polls = polls + 1
      return requests_seen(srv) - before - polls >= 2
    end))
    d:signal("TERM")
    local rc, took = d:wait_exit()
    assert.equal(0, rc)
    assert.is_true(took < 2, "shutdown took " .. took .. " s")
    local out = d:stdout()
    assert.same({ "Starting up", "Check", "Shutting down", "Shutdown finished successfully" },
      messages(out))
    assert.is_nil(out:find("/hang", 1, true)) -- cancelled, not failed
    assert.equal("", d:stderr())
  end)

  it("stops on SIGINT too", function()
    local d = run({ CONFIGS .. "good.lua" }, { FIXTURE_URL = srv.base })
    d:wait_output("content length: 648")
    d:signal("INT")
    assert.equal(0, (d:wait_exit()))
    assert.same({ "Starting up", "Check", "Shutting down", "Shutdown finished successfully" },
      messages(d:stdout()))
  end)

  it("with no monitors starts, stops and exits 0 at once", function()
    local d = run({ CONFIGS .. "empty.lua" })
    local rc, took = d:wait_exit()
    assert.equal(0, rc)
    assert.is_true(took < 2, "took " .. took .. " s")
    assert.same({ "Starting up", "Shutting down", "Shutdown finished successfully" },
      messages(d:stdout()))
    assert.equal("", d:stderr())
  end)

  it("runs the default monitors.lua offline: clear failures, then a clean stop", function()
    -- .invalid names never resolve (RFC 6761): nothing reaches the internet.
    local d = run({ "monitors.lua" }, {
      MOONWATCH_MONITORS__EXAMPLE__URL = "http://example.invalid",
      MOONWATCH_MONITORS__HTTPBIN__URL = "https://httpbin.invalid/get",
    })
    d:wait_output("Check failed", 2, 12)
    d:signal("TERM")
    assert.equal(0, (d:wait_exit()))
    local out = d:stdout()
    for _, url in ipairs{ "http://example.invalid", "https://httpbin.invalid/get" } do
      assert.matches("\n" .. ASCTIME .. " %[WARNING%] %[HttpMonitor%]: Check failed\n"
        .. "    GET " .. url:gsub("%p", "%%%0") .. "\n"
        .. "    error: %l+: [^\n]+\n"
        .. "    request took: %d+%.%d+ seconds\n", out)
    end
    local list = messages(out)
    assert.equal("Starting up", list[1])
    assert.same({ "Shutting down", "Shutdown finished successfully" }, { list[#list - 1],
      list[#list] })
    assert.equal("", d:stderr())
  end)
end)
