-- The `moonwatch` command end to end: options, --once, --check, bad
-- configs, settings from --set and the environment. Runs the real
-- executable (MOONWATCH_BIN, else build/moonwatch) against the local fixture.
local fixture = require("support.fixture")
local texts = require("support.text")

local BIN = os.getenv("MOONWATCH_BIN") or "build/moonwatch"
local CONFIGS = "spec/fixtures/configs/"
local q = fixture.shell_quote

local function read_file(path) return fixture.read_file(path) or "" end

-- drops the MOONWATCH_* settings of this process (the test runner's own
-- MOONWATCH_BIN and friends), so every run sees only the settings a test gives
local CLEAN_ENV = require("support.daemon").CLEAN_ENV

-- Runs the executable with args (a list) and env (name -> value); returns
-- {status, stdout, stderr}. A run that does not end within 20 s is killed.
local function moonwatch(args, env)
  local dir = fixture.tmpdir()
  local parts = { CLEAN_ENV }
  for name, value in pairs(env or {}) do parts[#parts + 1] = q(name .. "=" .. value) end
  parts[#parts + 1] = "timeout -s KILL 20"
  parts[#parts + 1] = q(BIN)
  for _, a in ipairs(args) do parts[#parts + 1] = q(a) end
  parts[#parts + 1] = "</dev/null >" .. q(dir .. "/out") .. " 2>" .. q(dir .. "/err")
  local _, _, status = os.execute(table.concat(parts, " "))
  local result = { status = status, stdout = read_file(dir .. "/out"),
                   stderr = read_file(dir .. "/err") }
  fixture.rmtree(dir)
  return result
end

local function escape(s) return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")) end

-- A Lua pattern for whole records: the template with <asctime>, <seconds>
-- and <n> standing for the values that change from run to run.
local function records_pattern(template)
  local p = escape(template)
  p = p:gsub("<asctime>", "%%d%%d%%d%%d%%-%%d%%d%%-%%d%%d %%d%%d:%%d%%d:%%d%%d,%%d%%d%%d")
  p = p:gsub("<seconds>", "%%d+%%.%%d+")
  p = p:gsub("<n>", "%%d+")
  return "^" .. p .. "$"
end

local has, has_not = texts.has, texts.has_not

describe("moonwatch command", function()
  local srv, env

  lazy_setup(function()
    srv = fixture.start()
    env = { FIXTURE_URL = srv.base }
  end)
  lazy_teardown(function() if srv then srv:stop() end end)

  describe("options", function()
    it("--version prints the version", function()
      local r = moonwatch{ "--version" }
      assert.equal(0, r.status)
      assert.matches("^moonwatch %d+%.%d+%.%d+\n$", r.stdout)
      assert.equal("", r.stderr)
    end)

    it("--help prints the usage", function()
      local r = moonwatch{ "--help" }
      assert.equal(0, r.status)
      assert.matches("^Usage: moonwatch %[options%] %[monitors%.lua%]\n", r.stdout)
      for _, opt in ipairs{ "--set", "--check", "--once", "--help", "--version",
                            "MOONWATCH_LOG__LEVEL" } do
        has(r.stdout, opt)
      end
      assert.equal("", r.stderr)
    end)

    it("an unknown option exits 2 with a message", function()
      local r = moonwatch{ "--frobnicate", CONFIGS .. "good.lua" }
      assert.equal(2, r.status)
      assert.equal("moonwatch: unknown option '--frobnicate' (see --help)\n", r.stderr)
      assert.equal("", r.stdout)
    end)

    it("a malformed --set exits 2 with a message", function()
      local r = moonwatch{ "--set", "nonsense", CONFIGS .. "good.lua" }
      assert.equal(2, r.status)
      has(r.stderr, "--set 'nonsense' must look like key.path=value")
    end)

    it("a missing monitors file exits 1 naming it", function()
      local r = moonwatch({ CONFIGS .. "no_such_file.lua" }, env)
      assert.equal(1, r.status)
      has(r.stderr, "no_such_file.lua")
    end)
  end)

  describe("--once", function()
    it("prints the tutorial's record byte for byte, then a line per monitor, and exits 0",
      function()
        local r = moonwatch({ "--once", CONFIGS .. "good.lua" }, env)
        assert.equal(0, r.status)
        assert.equal("", r.stderr)
        assert.matches(records_pattern(table.concat({
          "[<asctime>] [INFO] [HttpMonitor]: Check",
          "    GET " .. srv:url("/page"),
          "    response code: 200",
          "    content length: 648",
          "    request took: <seconds> seconds",
          "example  UP    <seconds> s",
          "",
        }, "\n")), r.stdout)
      end)

    it("exits 1 when a monitor fails, with the failure logged", function()
      local r = moonwatch({ "--once", "--set", "monitors.example.url=http://127.0.0.1:1/",
                            CONFIGS .. "good.lua" }, env)
      assert.equal(1, r.status)
      assert.matches(records_pattern(table.concat({
        "[<asctime>] [WARNING] [HttpMonitor]: Check failed",
        "    GET http://127.0.0.1:1/",
        "    error: refused: Failed to connect to 127.0.0.1 port 1 after <n> ms: "
          .. "Couldn't connect to server",
        "    request took: <seconds> seconds",
        "[<asctime>] [WARNING] [State]: example is DOWN after 1 failed check: refused: Failed "
          .. "to connect to 127.0.0.1 port 1 after <n> ms: Couldn't connect to server",
        "example  DOWN  refused: Failed to connect to 127.0.0.1 port 1 after <n> ms: "
          .. "Couldn't connect to server",
        "",
      }, "\n")), r.stdout)
      assert.equal("", r.stderr)
    end)

    it("exits 1 on a 500, a down result with its reason", function()
      local r = moonwatch({ "--once", "--set", "monitors.example.url=" .. srv:url("/status/500"),
                            CONFIGS .. "good.lua" }, env)
      assert.equal(1, r.status)
      assert.matches(records_pattern(table.concat({
        "[<asctime>] [WARNING] [HttpMonitor]: Check failed",
        "    GET " .. srv:url("/status/500"),
        "    response code: 500",
        "    reason: status 500, expected 200-299",
        "    request took: <seconds> seconds",
        "[<asctime>] [WARNING] [State]: example is DOWN after 1 failed check: "
          .. "status 500, expected 200-299",
        "example  DOWN  status 500, expected 200-299",
        "",
      }, "\n")), r.stdout)
      assert.equal("", r.stderr)
    end)

    it("counts up and down results in --stats", function()
      local r = moonwatch({ "--once", "--stats", "monitors.lua" }, {
        MOONWATCH_MONITORS__EXAMPLE__URL = srv:url("/page"),
        MOONWATCH_MONITORS__HTTPBIN__URL = srv:url("/status/503"),
      })
      assert.equal(1, r.status)
      local stats = require("cjson").decode(r.stderr)
      assert.equal(2, stats.run)
      assert.equal(1, stats.down)
      assert.equal(0, stats.failed)
    end)

    it("runs the root monitors.lua with both URLs from the environment", function()
      local r = moonwatch({ "--once", "monitors.lua" }, {
        MOONWATCH_MONITORS__EXAMPLE__URL = srv:url("/page"),
        MOONWATCH_MONITORS__HTTPBIN__URL = srv:url("/status/503"),
      })
      assert.equal(1, r.status) -- a 503 is down: not 2xx
      has(r.stdout, "GET " .. srv:url("/page") .. "\n    response code: 200\n")
      has(r.stdout, "GET " .. srv:url("/status/503") .. "\n    response code: 503\n"
        .. "    reason: status 503, expected 200-299\n")
      assert.matches("\nexample  UP    %d+%.%d+ s\nhttpbin  DOWN  status 503, expected 200%-299\n$",
        r.stdout)
      assert.equal("", r.stderr)
    end)
  end)

  describe("settings", function()
    it("--set monitors.example.timeout takes effect", function()
      local started = os.time()
      local r = moonwatch({ "--once", "--set", "monitors.example.timeout=0.3",
                            "--set", "monitors.example.url=" .. srv:url("/delay/3000"),
                            CONFIGS .. "good.lua" }, env)
      assert.equal(1, r.status)
      local ms = tonumber(r.stdout:match("error: timeout: Operation timed out after (%d+) "))
      assert.is_number(ms, r.stdout)
      assert.is_true(ms >= 290 and ms < 2000, r.stdout)
      assert.is_true(os.time() - started < 3, "the 3 s delay was waited for")
    end)

    it("--set wins over the environment", function()
      local r = moonwatch({ "--once", "--set", "monitors.example.timeout=0.3",
                            CONFIGS .. "good.lua" }, {
        FIXTURE_URL = srv.base,
        MOONWATCH_MONITORS__EXAMPLE__URL = srv:url("/delay/3000"),
        MOONWATCH_MONITORS__EXAMPLE__TIMEOUT = "0.1",
      })
      assert.equal(1, r.status)
      local ms = tonumber(r.stdout:match("timed out after (%d+) "))
      assert.is_true(ms ~= nil and ms >= 290, r.stdout)
    end)

    it("MOONWATCH_LOG__LEVEL=WARNING hides the INFO records", function()
      local r = moonwatch({ "--once", CONFIGS .. "good.lua" },
        { FIXTURE_URL = srv.base, MOONWATCH_LOG__LEVEL = "WARNING" })
      assert.equal(0, r.status)
      assert.matches("^example  UP    %d+%.%d+ s\n$", r.stdout) -- no record, the summary
      assert.equal("", r.stderr)

      r = moonwatch({ "--once", "--set", "monitors.example.url=" .. srv:url("/hang"),
                      "--set", "monitors.example.timeout=0.2", CONFIGS .. "good.lua" },
        { FIXTURE_URL = srv.base, MOONWATCH_LOG__LEVEL = "WARNING" })
      assert.equal(1, r.status)
      assert.matches("^%[[^]]+%] %[WARNING%] %[HttpMonitor%]: Check failed\n", r.stdout)
    end)

    it("a bad log level stops start-up with a clear error", function()
      local r = moonwatch({ "--once", CONFIGS .. "good.lua" },
        { FIXTURE_URL = srv.base, MOONWATCH_LOG__LEVEL = "LOUD" })
      assert.equal(1, r.status)
      assert.equal("", r.stdout)
      has(r.stderr, "moonwatch: " .. CONFIGS .. "good.lua: logging: ")
      has(r.stderr, "unknown level 'LOUD' (use DEBUG, INFO, WARNING, ERROR, CRITICAL)")
      -- the message is about the setting, not about moonwatch's own files
      has_not(r.stderr, "providers/resource.lua")
      has_not(r.stderr, "lua/moonwatch/")
    end)
  end)

  describe("--check", function()
    it("exits 0 on a good config, checking nothing", function()
      local r = moonwatch({ "--check", CONFIGS .. "good.lua" }, env)
      assert.equal(0, r.status)
      assert.equal(CONFIGS .. "good.lua: OK\n", r.stdout)
      assert.equal("", r.stderr)
    end)

    it("exits 0 on the root monitors.lua", function()
      local r = moonwatch({ "--check", "monitors.lua" })
      assert.equal(0, r.status)
      assert.equal("monitors.lua: OK\n", r.stdout)
    end)

    it("exits 1 on a bad config and prints every error", function()
      local path = CONFIGS .. "bad_two_monitors.lua"
      local r = moonwatch({ "--check", path }, env)
      assert.equal(1, r.status)
      assert.equal("", r.stdout)
      has(r.stderr, "moonwatch: " .. path .. ": example_monitor: monitors.example.url must be an "
        .. "http:// or https:// URL string, got 42\n")
      has(r.stderr, "moonwatch: " .. path .. ": httpbin_monitor: "
        .. "monitors.httpbin.method 'FETCH' is "
        .. "not a known HTTP method")
      -- once: not again through the dispatcher that lists the monitor
      has_not(r.stderr, "dispatcher → ")
    end)

    it("prints one line for one bad monitor listed by the dispatcher", function()
      local path = CONFIGS .. "bad_method.lua"
      local r = moonwatch({ "--check", path }, env)
      assert.equal(1, r.status)
      assert.equal("", r.stdout)
      assert.equal("moonwatch: " .. path .. ": example_monitor: "
        .. "monitors.example.method 'FETCH' is not "
        .. "a known HTTP method (use GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS)\n", r.stderr)
    end)

    it("prints one line for a singleton that every monitor is built from", function()
      local path = CONFIGS .. "bad_provider.lua"
      local r = moonwatch({ "--check", path }, env)
      assert.equal(1, r.status)
      assert.equal("moonwatch: " .. path .. ": http_client: " .. path .. ":9: cannot read the "
        .. "CA bundle /nonexistent/ca.pem\n", r.stderr)
    end)

    it("says where a refused value came from", function()
      local path = CONFIGS .. "typos.lua"
      local r = moonwatch({ "--check", "--set", "retries=true", path }, env)
      assert.equal(1, r.status)
      assert.equal("moonwatch: " .. path .. ": retries → n: option config.retries: expected an "
        .. "integer, got true (a boolean, from --set)\n", r.stderr)
      r = moonwatch({ "--check", path }, { FIXTURE_URL = srv.base, MOONWATCH_RETRIES = "2x" })
      assert.equal(1, r.status)
      assert.equal("moonwatch: " .. path .. ": retries → n: option config.retries: expected an "
        .. "integer, got \"2x\" (from environment MOONWATCH_RETRIES)\n", r.stderr)
    end)

    it("exits 1 on request options that every check would fail on", function()
      local path = CONFIGS .. "bad_request.lua"
      local r = moonwatch({ "--check", path }, env)
      assert.equal(1, r.status)
      assert.equal("", r.stdout)
      has(r.stderr, "moonwatch: " .. path .. ": example_monitor: monitors.example: http request: "
        .. "header 'X-A' has a bad name or a line break in its value\n")
      has(r.stderr, "moonwatch: " .. path .. ": httpbin_monitor: monitors.httpbin: http request: "
        .. "option 'timeout' must be a number of seconds in (0, 86400], got 100000\n")
    end)

    it("names a log.format directive the logger does not support", function()
      local r = moonwatch{ "--check", "--set", "log.format=[%(created).3f] %(message)s" }
      assert.equal(1, r.status)
      assert.equal("", r.stdout)
      assert.equal("moonwatch: monitors.lua: logging: log.format: '%(created).3f' at position 1 "
        .. "is not supported (precision); use %(key)s, %(key)-8s, %(key)8s, %(msecs)03d or %%\n",
        r.stderr)
    end)

    it("accepts every documented log.format form", function()
      local r = moonwatch{ "--check", "--set", "log.format=[%(asctime)s,%(msecs)03d] "
        .. "%(levelname)-8s %(levelno)d %(name)12s %(created)s %(process)d 100%% "
        .. "[%(monitor)s|%(monitor)-10s|%(monitor)10s] %(message)s" }
      assert.equal(0, r.status)
      assert.equal("monitors.lua: OK\n", r.stdout)
      assert.equal("", r.stderr)
    end)

    it("exits 1 on each bad config", function()
      for _, name in ipairs{ "bad_url", "bad_check_every", "bad_method", "bad_provider",
                             "bad_runtime", "bad_return", "bad_request" } do
        local r = moonwatch({ "--check", CONFIGS .. name .. ".lua" }, env)
        assert.equal(1, r.status, name)
        assert.equal("", r.stdout, name)
        has(r.stderr, CONFIGS .. name .. ".lua")
      end
    end)
  end)

  describe("a setting no provider reads", function()
    local path = CONFIGS .. "typos.lua"

    it("from --set is an error naming the closest path, in every mode", function()
      for _, mode in ipairs{ {}, { "--once" }, { "--check" } } do
        local args = table.move(mode, 1, #mode, 1, {})
        table.move({ "--set", "monitors.helth.url=http://x", path }, 1, 3, #args + 1, args)
        local r = moonwatch(args, env)
        assert.equal(1, r.status, table.concat(args, " "))
        assert.equal("", r.stdout)
        assert.equal("moonwatch: --set monitors.helth.url: no provider reads this setting "
          .. "(did you mean monitors.health.url?)\n", r.stderr)
      end
    end)

    it("from the environment is an error naming the closest variable", function()
      local r = moonwatch({ "--check", path },
        { FIXTURE_URL = srv.base, MOONWATCH_MONITORS__HELTH__URL = "http://x" })
      assert.equal(1, r.status)
      assert.equal("moonwatch: environment MOONWATCH_MONITORS__HELTH__URL: no provider reads "
        .. "this setting (did you mean MOONWATCH_MONITORS__HEALTH__URL?)\n", r.stderr)
    end)

    it("suggests nothing when nothing is close, and reports each on a line", function()
      local r = moonwatch({ "--check", "--set", "nothing.like.this=1", "--set", "log.levle=DEBUG",
                            path }, { FIXTURE_URL = srv.base, MOONWATCH_RETRISE = "2" })
      assert.equal(1, r.status)
      assert.equal("moonwatch: environment MOONWATCH_RETRISE: no provider reads this setting "
        .. "(did you mean MOONWATCH_RETRIES?)\n"
        .. "moonwatch: --set nothing.like.this: no provider reads this setting\n"
        .. "moonwatch: --set log.levle: no provider reads this setting "
        .. "(did you mean log.level?)\n", r.stderr)
    end)

    it("is not one of the project's own MOONWATCH_ variables", function()
      local r = moonwatch({ "--check", path }, {
        FIXTURE_URL = srv.base, MOONWATCH_BIN = BIN, MOONWATCH_BUILD = "build",
        MOONWATCH_SANITIZE = "OFF", MOONWATCH_LUA_PATH = "x", MOONWATCH_FIXTURE_PYTHON = "python3",
        MOONWATCH_VERSION = "1", MOONWATCH_ = "x", MOONWATCH_MONITORS__HEALTH__TIMEOUT = "3",
      })
      assert.equal("", r.stderr)
      assert.equal(0, r.status)
      assert.equal(path .. ": OK\n", r.stdout)
    end)

    it("is read when a provider reads the subtree holding it", function()
      local r = moonwatch({ "--check", "--set", "monitors.health.verify=false", path }, env)
      assert.equal("", r.stderr)
      assert.equal(0, r.status)
    end)
  end)

  describe("a bad config stops start-up before any check", function()
    -- Run as the daemon (no --once): it must exit 1 at once, having logged
    -- nothing, with one message naming the file and the setting or line.
    local function start(name)
      local r = moonwatch({ CONFIGS .. name }, env)
      assert.equal(1, r.status, r.stderr)
      assert.equal("", r.stdout)
      local lines = select(2, r.stderr:gsub("\nmoonwatch: ", "")) + 1
      assert.matches("^moonwatch: ", r.stderr)
      return r.stderr, lines
    end

    it("a Lua syntax error, with file and line", function()
      local dir = fixture.tmpdir()
      local path = dir .. "/broken.lua"
      local f = assert(io.open(path, "w"))
      f:write('local mw = require("moonwatch")\n', "\n", "return mw.container(function(c)\n",
              "  c.x = = 1\n", "end)\n")
      f:close()
      local r = moonwatch({ path }, env)
      fixture.rmtree(dir)
      assert.equal(1, r.status)
      assert.equal("", r.stdout)
      assert.matches("^moonwatch: " .. escape(path) .. ":4: unexpected symbol near '='\n$",
        r.stderr)
    end)

    it("a runtime error in the file, with file and line", function()
      local err = start("bad_runtime.lua")
      assert.matches("^moonwatch: error while loading " .. escape(CONFIGS) .. "bad_runtime%.lua: "
        .. escape(CONFIGS) .. "bad_runtime%.lua:6: attempt to call a nil value "
        .. "%(field 'load_defaults'%)\n", err)
    end)

    it("a file that returns no container", function()
      local err = start("bad_return.lua")
      assert.equal("moonwatch: " .. CONFIGS .. "bad_return.lua must return "
        .. "mw.container(function(c) ... end), got a table\n", err)
    end)

    it("url not a string, naming monitors.example.url and the provider chain", function()
      local err, lines = start("bad_url.lua")
      assert.equal(1, lines)
      assert.equal("moonwatch: " .. CONFIGS .. "bad_url.lua: dispatcher → monitors[1] → "
        .. "example_monitor: monitors.example.url must be an http:// or https:// URL string, "
        .. "got 42\n", err)
    end)

    it("check_every not above 0", function()
      local err = start("bad_check_every.lua")
      assert.equal("moonwatch: " .. CONFIGS .. "bad_check_every.lua: dispatcher → monitors[1] → "
        .. "example_monitor: "
        .. "monitors.example.check_every must be a number of seconds greater than 0, "
        .. "got 0\n", err)
    end)

    it("an unknown method", function()
      local err = start("bad_method.lua")
      assert.equal("moonwatch: " .. CONFIGS .. "bad_method.lua: dispatcher → monitors[1] → "
        .. "example_monitor: "
        .. "monitors.example.method 'FETCH' is not a known HTTP method (use GET, HEAD, "
        .. "POST, PUT, PATCH, DELETE or OPTIONS)\n", err)
    end)

    it("a provider that fails to build, with the chain and its line", function()
      local err = start("bad_provider.lua")
      assert.equal("moonwatch: " .. CONFIGS .. "bad_provider.lua: dispatcher → monitors[1] → "
        .. "example_monitor → http_client: " .. CONFIGS .. "bad_provider.lua:9: cannot read "
        .. "the CA bundle /nonexistent/ca.pem\n", err)
    end)

    it("a bad value from --set or the environment", function()
      local r = moonwatch({ "--set", "monitors.example.check_every=-5", CONFIGS .. "good.lua" },
        env)
      assert.equal(1, r.status)
      assert.equal("", r.stdout)
      has(r.stderr, "example_monitor: "
        .. "monitors.example.check_every must be a number of seconds greater "
        .. "than 0, got -5 (from --set)")
      r = moonwatch({ CONFIGS .. "good.lua" },
        { FIXTURE_URL = srv.base, MOONWATCH_MONITORS__EXAMPLE__METHOD = "FETCH" })
      assert.equal(1, r.status)
      assert.equal("", r.stdout)
      has(r.stderr, "example_monitor: monitors.example.method 'FETCH' is not a known HTTP method")
    end)
  end)
end)
