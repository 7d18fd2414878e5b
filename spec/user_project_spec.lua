-- An operator's own project, as the README describes it: a monitors.lua, a
-- helper module beside it (require("json_health_monitor")) and a spec/
-- folder, made in a temporary directory outside the checkout. It is run the
-- way its owner would run it, through the executable (MOONWATCH_BIN):
-- `moonwatch test [dir]` for its specs, `moonwatch dir/monitors.lua` for the
-- daemon, from other working directories. Then moonwatch.testing, the specs'
-- replacement for dofile("monitors.lua"), in this process.
local fixture = require("support.fixture")
local texts = require("support.text")
local daemon = require("support.daemon")

local q = fixture.shell_quote

local function sh_line(cmd)
  local p = assert(io.popen(cmd))
  local line = p:read("l")
  p:close()
  return line
end

-- The runs change directory, so the executable's path must be absolute.
local BIN = daemon.BIN
if BIN:sub(1, 1) ~= "/" then BIN = sh_line("pwd") .. "/" .. BIN end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

local function mkdir(path) assert(os.execute("mkdir -p " .. q(path))) end

-- Runs the executable with args (a list) in opts.cwd, with only opts.env's
-- settings; returns {status, stdout, stderr}. Killed after 60 s.
local function moonwatch(args, opts)
  opts = opts or {}
  local out = fixture.tmpdir()
  local parts = { "cd", q(opts.cwd or "."), "&&", daemon.CLEAN_ENV }
  for name, value in pairs(opts.env or {}) do parts[#parts + 1] = q(name .. "=" .. value) end
  parts[#parts + 1] = "timeout -s KILL 60 " .. q(BIN)
  for _, a in ipairs(args) do parts[#parts + 1] = q(a) end
  parts[#parts + 1] = "</dev/null >" .. q(out .. "/out") .. " 2>" .. q(out .. "/err")
  local _, _, status = os.execute(table.concat(parts, " "))
  local result = { status = status, stdout = fixture.read_file(out .. "/out") or "",
                   stderr = fixture.read_file(out .. "/err") or "" }
  fixture.rmtree(out)
  return result
end

local has, has_not = texts.has, texts.has_not

-- The project's files. The monitor checks the fixture's /api/data, a JSON
-- API behind a bearer token.
local HELPER = [[
-- JsonHealthMonitor: GETs options.url and wants {"status": "ok"} back.
local cjson = require("cjson")
local mw = require("moonwatch")

local JsonHealthMonitor = mw.monitors.Monitor:extend("JsonHealthMonitor")

function JsonHealthMonitor:new(kwargs)
  local o = kwargs.options
  self = mw.monitors.Monitor.new(self, { check_every = o.check_every, name = o.url })
  self.http_client = kwargs.http_client
  self.request = { method = "GET", url = o.url, timeout = o.timeout,
                   headers = { Authorization = "Bearer " .. o.token } }
  return self
end

function JsonHealthMonitor:check()
  local resp, err = self.http_client:request(self.request)
  if not resp then return nil, err end
  local ok, data = pcall(cjson.decode, resp.body or "")
  if not ok or type(data) ~= "table" then return nil, "the body is not a JSON object" end
  if data.status ~= "ok" then
    local why = "status is " .. cjson.encode(data.status)
    self.logger:warning("Check failed\n    GET %s\n    error: %s", self.request.url, why)
    return nil, why
  end
  self.logger:info("Check\n    GET %s\n    status: ok", self.request.url)
  return data
end

return JsonHealthMonitor
]]

local function monitors_lua(url)
  return ([[
local mw = require("moonwatch")
local providers = mw.providers
local JsonHealthMonitor = require("json_health_monitor") -- beside this file

local config = providers.Configuration {
  log = { level = "INFO", format = "[%%(levelname)s] [%%(name)s]: %%(message)s" },
  monitors = {
    health = { url = %q, token = "s3cret", timeout = 5, check_every = 5 },
  },
}

return mw.container(function(c)
  c.config = config
  c.logging = providers.Resource(mw.log.setup, {
    level = config.log.level,
    format = config.log.format,
  })
  c.http_client = providers.Singleton(mw.http.Client)
  c.health_monitor = providers.Factory(JsonHealthMonitor, {
    http_client = c.http_client,
    options = config.monitors.health,
  })
  c.dispatcher = providers.Factory(mw.Dispatcher, {
    monitors = providers.List(c.health_monitor),
  })
end)
]]):format(url)
end

-- Passes: one check against the fixture, one with the HTTP client stubbed.
local PASSING_SPEC = [[
local mw = require("moonwatch")
local core = require("moonwatch.core")
local testing = require("moonwatch.testing")
local JsonHealthMonitor = require("json_health_monitor") -- before any testing.load

describe("the health monitor", function()
  local c

  before_each(function()
    c = testing.load("monitors.lua")()
    c:init_resources()
  end)

  after_each(function() c:shutdown_resources() end)

  it("checks the service", function()
    local data
    core.run(function() data = c.health_monitor():check() end)
    assert.equal("ok", data.status)
    assert.equal(3, data.items)
  end)

  it("reports a status that is not ok (HTTP client stubbed)", function()
    local stub = { request = function() return { status = 200, body = '{"status": "down"}' } end }
    local _ <close> = c.http_client:override(stub)
    local records <close> = mw.log.capture()
    local data, err
    core.run(function() data, err = c.health_monitor():check() end)
    assert.is_nil(data)
    assert.equal('status is "down"', err)
    assert.matches('error: status is "down"', records:text(), 1, true)
  end)

  it("can require the helper itself", function()
    assert.equal("JsonHealthMonitor", JsonHealthMonitor.__name)
  end)
end)
]]

local FAILING_SPEC = [[
describe("a spec that fails", function()
  it("expects another token", function()
    local c = require("moonwatch.testing").load("monitors.lua")()
    assert.equal("not the token", c.config.monitors.health.token())
  end)
end)
]]

local function make_project(dir, url)
  mkdir(dir .. "/spec")
  write(dir .. "/monitors.lua", monitors_lua(url))
  write(dir .. "/json_health_monitor.lua", HELPER)
  write(dir .. "/spec/health_spec.lua", PASSING_SPEC)
  write(dir .. "/spec/failing_spec.lua", FAILING_SPEC)
end

describe("an operator's project", function()
  local srv, top, project, elsewhere

  lazy_setup(function()
    srv = fixture.start()
    top = fixture.tmpdir()
    project = top .. "/my-monitors"
    elsewhere = top .. "/elsewhere"
    make_project(project, srv:url("/api/data"))
    mkdir(elsewhere)
  end)

  lazy_teardown(function()
    if srv then srv:stop() end
    if top then fixture.rmtree(top) end
  end)

  describe("moonwatch test [dir]", function()
    it("runs the specs of dir from another directory; a failure makes the status 1", function()
      local r = moonwatch({ "test", project }, { cwd = elsewhere })
      assert.equal(1, r.status, r.stdout .. r.stderr)
      has(r.stdout, "3 successes / 1 failure / 0 errors / 0 pending")
      has(r.stdout, "spec/failing_spec.lua")
      has(r.stdout, "a spec that fails expects another token")
      has(r.stdout, "[INFO] [JsonHealthMonitor]: Check\n    GET " .. srv:url("/api/data"))
      assert.equal("", r.stderr)
    end)

    it("exits 0 when every spec passes; options after dir are busted's, relative to dir", function()
      local r = moonwatch({ "test", project, "spec/health_spec.lua" }, { cwd = elsewhere })
      assert.equal(0, r.status, r.stdout .. r.stderr)
      has(r.stdout, "3 successes / 0 failures / 0 errors / 0 pending")
      r = moonwatch({ "test", project, "--filter=stubbed", "-o", "TAP" }, { cwd = elsewhere })
      assert.equal(0, r.status, r.stdout .. r.stderr)
      has(r.stdout, "ok 1 - the health monitor reports a status that is not ok")
      has(r.stdout, "1..1")
    end)

    it("takes the working directory by default, and a relative dir", function()
      local r = moonwatch({ "test" }, { cwd = project })
      assert.equal(1, r.status, r.stdout .. r.stderr)
      has(r.stdout, "3 successes / 1 failure / 0 errors / 0 pending")
      r = moonwatch({ "test", "my-monitors", "spec/health_spec.lua" }, { cwd = top })
      assert.equal(0, r.status, r.stdout .. r.stderr)
      has(r.stdout, "3 successes / 0 failures")
    end)

    it("finds the project's modules even when LUA_PATH leaves out ./?.lua", function()
      local lpath = "/usr/share/lua/5.4/?.lua;/usr/share/lua/5.4/?/init.lua"
      local r = moonwatch({ "test", project, "spec/health_spec.lua" },
        { cwd = elsewhere, env = { LUA_PATH_5_4 = lpath } })
      assert.equal(0, r.status, r.stdout .. r.stderr)
      has(r.stdout, "3 successes / 0 failures")
    end)

    it("runs its own Lua 5.4 even when the project's .busted names another Lua", function()
      write(project .. "/.busted", 'return { _all = { lua = "lua5.1" } }\n')
      finally(function() os.remove(project .. "/.busted") end)
      local r = moonwatch({ "test", project, "spec/health_spec.lua" }, { cwd = elsewhere })
      assert.equal(0, r.status, r.stdout .. r.stderr)
      has(r.stdout, "3 successes / 0 failures")
    end)

    it("says when dir has no spec/ folder or is not a directory", function()
      local r = moonwatch({ "test", elsewhere }, { cwd = top })
      assert.equal(1, r.status)
      assert.equal("moonwatch: test: " .. elsewhere
        .. " has no spec/ folder (busted runs the *_spec.lua files in it)\n", r.stderr)
      r = moonwatch({ "test" }, { cwd = elsewhere })
      assert.equal(1, r.status)
      has(r.stderr, "moonwatch: test: . has no spec/ folder")
      r = moonwatch({ "test", project .. "/monitors.lua" }, { cwd = elsewhere })
      assert.equal(1, r.status)
      assert.equal("moonwatch: test: " .. project .. "/monitors.lua is not a directory\n", r.stderr)
      assert.equal("", r.stdout)
    end)

    it("says how to install busted when it is missing", function()
      local r = moonwatch({ "test", project },
        { cwd = elsewhere, env = { LUA_PATH_5_4 = "/nonexistent/?.lua" } })
      assert.equal(1, r.status)
      has(r.stderr, "moonwatch: test: busted is not installed")
      has(r.stderr, "apt-get install lua-busted")
      assert.equal("", r.stdout)
    end)

    it("has a --help of its own, and the command's --help names it", function()
      local r = moonwatch({ "test", "--help" }, { cwd = elsewhere })
      assert.equal(0, r.status)
      assert.matches("^Usage: moonwatch test %[dir%] %[busted options%]\n", r.stdout)
      has(r.stdout, 'require("moonwatch.testing").load("monitors.lua")')
      r = moonwatch({ "--help" }, { cwd = elsewhere })
      assert.equal(0, r.status)
      has(r.stdout, "moonwatch test [dir] [busted options]")
    end)
  end)

  describe("moonwatch dir/monitors.lua", function()
    it("finds the helper module beside monitors.lua whatever the working directory", function()
      local r = moonwatch({ "--check", project .. "/monitors.lua" }, { cwd = elsewhere })
      assert.equal(0, r.status, r.stdout .. r.stderr)
      has_not(r.stderr, "json_health_monitor")
      r = moonwatch({ "--check", "my-monitors/monitors.lua" }, { cwd = top })
      assert.equal(0, r.status, r.stdout .. r.stderr)
    end)
  end)
end)

describe("moonwatch.testing", function()
  local testing = require("moonwatch.testing")
  local top, saved_path

  -- Code as if it were in the file `path`: find and load resolve against it.
  local function from_file(path, code, ...)
    return assert(load(code, "@" .. path, "t", _ENV))(...)
  end

  before_each(function()
    top = fixture.tmpdir()
    saved_path = package.path
    mkdir(top .. "/proj/spec/sub")
    write(top .. "/proj/monitors.lua", [[
      local mw = require("moonwatch")
      local helper = require("testing_spec_helper")
      return mw.container(function(c) c.greeting = mw.providers.Object(helper.greeting) end)
    ]])
    write(top .. "/proj/testing_spec_helper.lua", 'return { greeting = "hello" }\n')
  end)

  after_each(function()
    package.path = saved_path
    package.loaded.testing_spec_helper = nil
    fixture.rmtree(top)
  end)

  -- Not tail calls: a tail call leaves no frame of its caller to resolve against.
  local FIND = "local a, b = require('moonwatch.testing').find(...); return a, b"
  local LOAD = "local a, b = require('moonwatch.testing').load(...); return a, b"

  it("finds the file beside the calling spec first, then in its parent directory", function()
    local spec = top .. "/proj/spec/a_spec.lua"
    assert.equal(top .. "/proj/monitors.lua", from_file(spec, FIND, "monitors.lua"))
    -- one more level: the name says it
    assert.equal(top .. "/proj/spec/../monitors.lua",
      from_file(top .. "/proj/spec/sub/b_spec.lua", FIND, "../monitors.lua"))
    write(top .. "/proj/spec/monitors.lua", "return 1\n")
    assert.equal(top .. "/proj/spec/monitors.lua", from_file(spec, FIND, "monitors.lua"))
    assert.equal(top .. "/proj/monitors.lua", from_file(spec, FIND, top .. "/proj/monitors.lua"))
  end)

  it("keeps a relative spec path relative, without 'spec/..'", function()
    -- busted names spec files relative to its working directory, the checkout here
    assert.equal("monitors.lua", from_file("spec/some_spec.lua", FIND, "monitors.lua"))
    assert.equal("monitors.lua", from_file("./spec/some_spec.lua", FIND, "monitors.lua"))
  end)

  it("resolves against the working directory for code that is no file", function()
    assert.equal("monitors.lua", assert(load(FIND, "=README.md", "t", _ENV))("monitors.lua"))
    local path, err = assert(load(FIND, "=README.md", "t", _ENV))("nothing-here.lua")
    assert.is_nil(path)
    assert.equal("cannot find nothing-here.lua in the working directory", err)
  end)

  it("names the places it tried", function()
    local path, err = from_file(top .. "/x/spec/a_spec.lua", FIND, "monitors.lua")
    assert.is_nil(path)
    assert.equal("cannot find monitors.lua beside the spec or in its parent directory (tried "
      .. top .. "/x/spec/monitors.lua, " .. top .. "/x/monitors.lua)", err)
  end)

  it("resolves against a caller further up with a level, as error() counts", function()
    -- a spec's helper module, in spec/support/, loading for the spec that calls it
    local helper = from_file(top .. "/proj/spec/support/helpers.lua", [[
      return function(name)
        local path = require("moonwatch.testing").find(name, 2)
        return path
      end
    ]])
    local found = from_file(top .. "/proj/spec/a_spec.lua",
      "local p = (...)('monitors.lua'); return p", helper)
    assert.equal(top .. "/proj/monitors.lua", found)
  end)

  it("loads the definition as the daemon does: the modules beside it load", function()
    local def, path = from_file(top .. "/proj/spec/a_spec.lua", LOAD, "monitors.lua")
    assert.equal(top .. "/proj/monitors.lua", path)
    assert.equal("hello", def().greeting())
    assert.is_true(require("moonwatch.container").is_definition(def))
    -- a fresh load each time, as dofile
    assert.are_not.equal(def, (from_file(top .. "/proj/spec/a_spec.lua", LOAD, "monitors.lua")))
    assert.equal(1, select(2, package.path:gsub(top:gsub("%p", "%%%0") .. "/proj/%?%.lua", "")),
      "the directory is on package.path once")
  end)

  it("raises, as dofile does, naming the spec's line or the file's", function()
    local ok, err = pcall(from_file, top .. "/proj/spec/x_spec.lua", "\n\n" .. LOAD, "missing.lua")
    assert.is_false(ok)
    assert.equal(top .. "/proj/spec/x_spec.lua:3: moonwatch.testing.load: cannot find missing.lua "
      .. "beside the spec or in its parent directory (tried " .. top .. "/proj/spec/missing.lua, "
      .. top .. "/proj/missing.lua)", err)
    write(top .. "/proj/monitors.lua", "return {\n  x = = 1\n}\n")
    ok, err = pcall(from_file, top .. "/proj/spec/a_spec.lua", LOAD, "monitors.lua")
    assert.is_false(ok)
    assert.matches("^" .. (top .. "/proj/monitors.lua:2: "):gsub("%p", "%%%0"), err)
    write(top .. "/proj/monitors.lua", "return 42\n")
    ok, err = pcall(from_file, top .. "/proj/spec/a_spec.lua", LOAD, "monitors.lua")
    assert.is_false(ok)
    assert.equal(top .. "/proj/monitors.lua must return mw.container(function(c) ... end), "
      .. "got number", err)
  end)

  it("rejects a name that is not a string, and a bad level", function()
    local function message(fn, ...)
      local ok, err = pcall(testing[fn], ...)
      assert.is_false(ok)
      return (err:gsub("^[^:]*:%d+: ", ""))
    end
    assert.equal("moonwatch.testing.load: expected a file name, got nil", message("load", nil))
    assert.equal("moonwatch.testing.find: expected a file name, got an empty string",
      message("find", ""))
    assert.equal("moonwatch.testing.find: level must be an integer from 1",
      message("find", "monitors.lua", 0))
  end)

  it("is mw.testing", function()
    assert.equal(testing, require("moonwatch").testing)
  end)
end)
