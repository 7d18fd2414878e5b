local providers = require("moonwatch.providers")
local container = require("moonwatch.container")
local configuration = require("moonwatch.config")

local function err_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return err
end

local function record(kw) return kw end

local function defaults()
  return {
    log = { level = "INFO", format = "[%(asctime)s] [%(levelname)s] [%(name)s]: %(message)s" },
    monitors = {
      example = { method = "GET", url = "http://example.com", timeout = 5, check_every = 5 },
    },
  }
end

local tmpfiles = {}
local function settings_file(source)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(source)
  f:close()
  tmpfiles[#tmpfiles + 1] = path
  return path
end

describe("Configuration", function()
  local config
  before_each(function() config = providers.Configuration(defaults()) end)
  after_each(function()
    for _, path in ipairs(tmpfiles) do os.remove(path) end
    tmpfiles = {}
  end)

  describe("option references", function()
    it("read the current value when called", function()
      assert.equal("INFO", config.log.level())
      assert.equal(5, config.monitors.example.timeout())
      assert.is_nil(config.nope.deeper())
    end)

    it("are the same object for the same path", function()
      assert.equal(config.log.level, config.log.level)
      assert.equal("Option config.log.level", tostring(config.log.level))
      assert.equal("config.monitors.example.url",
        configuration.path_of(config.monitors.example.url))
    end)

    it("can be made before the values are loaded", function()
      local empty = providers.Configuration()
      local url = empty.monitors.example.url
      local monitor = providers.Factory(record, { url = url })
      empty:from_table { monitors = { example = { url = "http://late" } } }
      assert.equal("http://late", monitor().url)
    end)

    it("give a deep copy of a subtree", function()
      local a = config.monitors.example()
      a.url = "changed"
      assert.equal("http://example.com", config.monitors.example.url())
      assert.are_not.equal(config.monitors(), config.monitors())
      assert.same(defaults(), config())
    end)

    it("inject copies, so a consumer cannot corrupt the next build", function()
      local seen = {}
      local monitor = providers.Factory(function(kw)
        seen[#seen + 1] = { url = kw.options.url, extra = kw.options.extra }
        kw.options.url = "http://corrupted"
        kw.options.extra = true
      end, { options = config.monitors.example })
      monitor()
      monitor()
      assert.same({ url = "http://example.com" }, seen[2])
      assert.same(defaults().monitors.example, config.monitors.example())
    end)

    it("reach options named like methods through :option()", function()
      config:from_table { a = { required = "yes", ["dotted.key"] = 1 } }
      assert.equal("yes", config.a:option("required")())
      assert.equal("yes", config:option("a.required")())
      assert.equal(1, config.a["dotted.key"]())
    end)

    it("accept integer keys", function()
      config:from_table { hosts = { "a", "b" } }
      assert.equal("b", config.hosts[2]())
      assert.equal("config.hosts[2]", configuration.path_of(config.hosts[2]))
    end)

    it("reject other keys", function()
      assert.matches("option config.log: keys are strings or integers, got boolean$",
        err_of(function() return config.log[true] end))
    end)

    it("give the whole tree, copied, when the configuration is called", function()
      local all = config()
      all.log.level = "x"
      assert.equal("INFO", config.log.level())
    end)
  end)

  describe("required options", function()
    it("fail naming the full path", function()
      local url = config.monitors.missing.url:required()
      assert.equal("required option config.monitors.missing.url is not set", err_of(url))
    end)

    it("pass when set", function()
      assert.equal("http://example.com", config.monitors.example.url:required()())
    end)

    it("say where the path stopped being a table", function()
      assert.equal(
        "required option config.log.level.x is not set (config.log.level is not a table)",
        err_of(config.log.level.x:required()))
    end)

    it("use the container name of the configuration", function()
      local c = container(function(c)
        c.settings = providers.Configuration {}
        c.monitor = providers.Factory(record, { url = c.settings.monitors.example.url:required() })
      end)()
      assert.equal("monitor → url: required option settings.monitors.example.url is not set",
        err_of(c.monitor))
    end)

    it("are every option in a strict configuration", function()
      local strict = providers.Configuration({ a = 1 }, { strict = true, name = "cfg" })
      assert.equal(1, strict.a())
      assert.equal("required option cfg.b is not set", err_of(strict.b))
    end)
  end)

  describe("conversions", function()
    local function convert(value, method)
      local c = providers.Configuration { v = value }
      return c.v[method](c.v)()
    end

    it("as_int", function()
      assert.equal(5, convert("5", "as_int"))
      assert.equal(5, convert(5.0, "as_int"))
      assert.equal(math.type(convert(5.0, "as_int")), "integer")
      assert.equal("option config.v: expected an integer, got \"5.5\"",
        err_of(function() return convert("5.5", "as_int") end))
      assert.equal("option config.v: expected an integer, got a table",
        err_of(function() return convert({}, "as_int") end))
    end)

    it("as_number", function()
      assert.equal(2.5, convert("2.5", "as_number"))
      assert.equal(3, convert(3, "as_number"))
      assert.equal("option config.v: expected a number, got \"abc\"",
        err_of(function() return convert("abc", "as_number") end))
    end)

    it("as_bool", function()
      for input, expected in pairs {
        ["true"] = true, ["False"] = false, yes = true, NO = false, on = true, off = false,
        ["1"] = true, ["0"] = false,
      } do
        assert.equal(expected, convert(input, "as_bool"), input)
      end
      assert.is_true(convert(true, "as_bool"))
      assert.is_false(convert(0, "as_bool"))
      assert.equal("option config.v: expected a boolean (true/false, yes/no, on/off, 1/0), "
        .. "got \"maybe\"", err_of(function() return convert("maybe", "as_bool") end))
    end)

    it("as_string", function()
      assert.equal("5", convert(5, "as_string"))
      assert.equal("true", convert(true, "as_string"))
      assert.equal("option config.v: expected a string, got a table",
        err_of(function() return convert({}, "as_string") end))
    end)

    it("as_duration gives seconds", function()
      assert.equal(5, convert("5s", "as_duration"))
      assert.equal(0.25, convert("250ms", "as_duration"))
      assert.equal(90, convert("1m30s", "as_duration"))
      assert.equal(7200, convert("2h", "as_duration"))
      assert.equal(1.5, convert("1.5s", "as_duration"))
      assert.equal(5, convert(5, "as_duration"))
      assert.equal(3, convert("3", "as_duration"))
      assert.equal(2, convert(" 2s ", "as_duration"))
      for _, bad in ipairs { "5 parsecs", "s", "", "-1s", "5x" } do
        assert.equal(string.format(
          "option config.v: expected a duration such as 5s, 250ms or 1m30s, got %q", bad),
          err_of(function() return convert(bad, "as_duration") end), bad)
      end
      assert.matches("got %-1$", err_of(function() return convert(-1, "as_duration") end))
    end)

    it("pass a missing value through as nil unless required", function()
      assert.is_nil(config.nope:as_int()())
      local missing = "required option config.nope is not set"
      assert.equal(missing, err_of(config.nope:as_int():required()))
      assert.equal(missing, err_of(config.nope:required():as_int()))
    end)

    it("keep the reference lazy", function()
      local timeout = config.monitors.example.timeout:as_duration()
      config:from_strings { "monitors.example.timeout=250ms" }
      assert.equal(0.25, timeout())
    end)

    it("cannot be indexed further", function()
      assert.matches("option config.log: cannot index a converted option reference %(with \"x\"%)$",
        err_of(function() return config.log:required().x end))
    end)
  end)

  describe("from_table", function()
    it("deep merges", function()
      assert.equal(config, config:from_table {
        log = { level = "DEBUG" },
        monitors = { httpbin = { url = "https://httpbin.org/get" } },
      })
      assert.equal("DEBUG", config.log.level())
      assert.equal(defaults().log.format, config.log.format())
      assert.equal("http://example.com", config.monitors.example.url())
      assert.equal("https://httpbin.org/get", config.monitors.httpbin.url())
    end)

    it("replaces arrays and scalars rather than merging them", function()
      config:from_table { hosts = { "a", "b", "c" } }
      config:from_table { hosts = { "x" } }
      assert.same({ "x" }, config.hosts())
      config:from_table { log = "off" }
      assert.equal("off", config.log())
    end)

    it("copies the table it is given", function()
      local t = { log = { level = "WARN" } }
      config:from_table(t)
      t.log.level = "ERROR"
      assert.equal("WARN", config.log.level())
    end)

    it("copies the defaults it is given", function()
      local d = defaults()
      local c = providers.Configuration(d)
      d.log.level = "ERROR"
      assert.equal("INFO", c.log.level())
    end)

    it("rejects what is not a table", function()
      assert.matches("^spec/config_spec.lua:%d+: from_table: expected a table, got \"x\"$",
        err_of(function() local r = config:from_table("x"); return r end))
      assert.matches("Configuration: defaults must be a table, got 5$",
        err_of(providers.Configuration, 5))
    end)
  end)

  describe("from_file", function()
    it("merges the globals a settings file assigns", function()
      local path = settings_file([[
        log = { level = "DEBUG" }
        local base = "http://fake"
        monitors = { example = { url = base .. "/example", timeout = 2 } }
      ]])
      assert.equal(config, config:from_file(path))
      assert.equal("DEBUG", config.log.level())
      assert.equal("http://fake/example", config.monitors.example.url())
      assert.equal(2, config.monitors.example.timeout())
      assert.equal("GET", config.monitors.example.method())
    end)

    it("evaluates the file in an empty environment", function()
      local path = settings_file("x = type(print)\n")
      local ok, err = config:from_file(path)
      assert.is_nil(ok)
      assert.equal(path .. ":1: undefined variable 'type'", err)
    end)

    it("names the file and line of an undefined (unquoted) value", function()
      local path = settings_file("log = {\n  level = DEBUG,\n}\n")
      local ok, err = config:from_file(path)
      assert.is_nil(ok)
      assert.equal(path .. ":2: undefined variable 'DEBUG'", err)
      assert.equal("INFO", config.log.level())
    end)

    it("names the file and line of a syntax error", function()
      local path = settings_file("log = {\n  level = 'DEBUG'\n  format = 'x'\n}\n")
      local ok, err = config:from_file(path)
      assert.is_nil(ok)
      assert.matches("^" .. path:gsub("%p", "%%%0")
        .. ":3: '}' expected %(to close '{' at line 1%)", err)
    end)

    it("names the file and line of a runtime error", function()
      local path = settings_file("a = 1\nb = a + {}\n")
      local ok, err = config:from_file(path)
      assert.is_nil(ok)
      assert.matches("^" .. path:gsub("%p", "%%%0") .. ":2: attempt to perform arithmetic", err)
    end)

    it("rejects a file that returns a value", function()
      local path = settings_file("return { log = { level = 'DEBUG' } }\n")
      local ok, err = config:from_file(path)
      assert.is_nil(ok)
      assert.equal(path
        .. ": a settings file assigns globals (log = { ... }) and must not return a value", err)
    end)

    it("reports a missing file, unless optional", function()
      local ok, err = config:from_file("/nonexistent/settings.lua")
      assert.is_nil(ok)
      assert.equal(
        "cannot read settings file /nonexistent/settings.lua: No such file or directory", err)
      assert.equal(config, config:from_file("/nonexistent/settings.lua", { optional = true }))
    end)
  end)

  describe("from_strings", function()
    it("sets key paths, converting booleans and numbers", function()
      assert.equal(config, config:from_strings {
        "log.level=DEBUG", "monitors.example.timeout=2", "monitors.example.ratio=0.5",
        "monitors.example.enabled=false", "monitors.new.url=http://x/?a=b",
        "log.format=", "hosts.1=first",
      })
      assert.equal("DEBUG", config.log.level())
      assert.equal(2, config.monitors.example.timeout())
      assert.equal(math.type(config.monitors.example.timeout()), "integer")
      assert.equal(0.5, config.monitors.example.ratio())
      assert.is_false(config.monitors.example.enabled())
      assert.equal("http://x/?a=b", config.monitors.new.url())
      assert.equal("", config.log.format())
      assert.same({ "first" }, config.hosts())
      assert.equal("http://example.com", config.monitors.example.url())
    end)

    it("takes one string", function()
      config:from_strings("log.level=WARN")
      assert.equal("WARN", config.log.level())
    end)

    it("reports a malformed setting and applies nothing", function()
      for _, bad in ipairs { "log.level", "=x", "log..level=x", ".a=1" } do
        local ok, err = config:from_strings { "log.level=DEBUG", bad }
        assert.is_nil(ok)
        assert.equal(string.format("invalid setting %q: expected key.path=value", bad), err)
      end
      assert.equal("INFO", config.log.level())
    end)

    it("reports a path through a value that is not a table", function()
      local ok, err = config:from_strings { "log.level.x=1" }
      assert.is_nil(ok)
      assert.equal('setting "log.level.x=1": log.level is a string, not a table', err)
    end)
  end)

  describe("from_env", function()
    it("maps PREFIX_A__B to a.b, lowercased, with conversions", function()
      assert.equal(config, config:from_env("MOONWATCH", {
        MOONWATCH_LOG__LEVEL = "DEBUG",
        MOONWATCH_MONITORS__EXAMPLE__CHECK_EVERY = "10",
        MOONWATCH_MONITORS__EXAMPLE__VERIFY = "true",
        OTHER_LOG__LEVEL = "ERROR",
        MOONWATCH_ = "ignored",
      }))
      assert.equal("DEBUG", config.log.level())
      assert.equal(10, config.monitors.example.check_every())
      assert.is_true(config.monitors.example.verify())
      assert.equal(5, config.monitors.example.timeout())
    end)

    it("accepts the prefix with its underscore", function()
      config:from_env("MOONWATCH_", { MOONWATCH_LOG__LEVEL = "WARN" })
      assert.equal("WARN", config.log.level())
    end)

    it("reports conflicts and malformed names, applying nothing", function()
      local ok, err = config:from_env("MW", { MW_LOG__LEVEL__X = "1", MW_A = "2" })
      assert.is_nil(ok)
      assert.equal("environment variable MW_LOG__LEVEL__X: log.level is a string, not a table", err)
      assert.is_nil(config.a())
      ok, err = config:from_env("MW", { MW_LOG____LEVEL = "1" })
      assert.is_nil(ok)
      assert.equal("environment variable MW_LOG____LEVEL: empty level in the name", err)
    end)

    it("reads the process environment", function()
      local script = "package.path = 'lua/?.lua;' .. package.path\n"
        .. "local c = require('moonwatch.providers').Configuration { log = { level = 'INFO' } }\n"
        .. "assert(c:from_env('MWTEST'))\n"
        .. "io.write(c.log.level(), ' ', math.type(c.monitors.a.timeout()))\n"
      local path = settings_file(script)
      -- a child process with its own environment (core.environ reads it)
      local bin = os.getenv("MOONWATCH_BIN") or "build/moonwatch"
      local p = assert(io.popen("MWTEST_LOG__LEVEL=DEBUG MWTEST_MONITORS__A__TIMEOUT=3 " .. bin
        .. " -l " .. path))
      local out = p:read("a")
      p:close()
      assert.equal("DEBUG integer", out)
    end)

    it("rejects a missing prefix", function()
      assert.matches("from_env: expected a non%-empty prefix, got nil$",
        err_of(function() local r = config:from_env(); return r end))
    end)
  end)

  describe("loading order", function()
    it("applies sources in the order called, later ones winning", function()
      local path = settings_file("log = { level = 'FROM_FILE' }\nother = 1\n")
      assert(config:from_file(path))
      assert(config:from_env("MW", { MW_LOG__LEVEL = "FROM_ENV" }))
      assert.equal("FROM_ENV", config.log.level())
      assert(config:from_strings { "log.level=FROM_ARGS" })
      assert.equal("FROM_ARGS", config.log.level())
      assert.equal(1, config.other())
    end)
  end)
end)
