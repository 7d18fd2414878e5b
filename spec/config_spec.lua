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
      assert.equal(86400 + 1800, convert("1d30m", "as_duration"))
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

    it("name the type of a value of the wrong type, quoted as given", function()
      assert.equal("option config.v: expected an integer, got true (a boolean)",
        err_of(function() return convert(true, "as_int") end))
      assert.equal("option config.v: expected a duration such as 5s, 250ms or 1m30s, "
        .. "got false (a boolean)", err_of(function() return convert(false, "as_duration") end))
      assert.equal("option config.v: expected a number, got a table",
        err_of(function() return convert({}, "as_number") end))
    end)

    it("say where a refused value came from", function()
      assert(config:from_strings { "monitors.example.timeout=5x", "log.level=true" })
      assert.equal("option config.monitors.example.timeout: expected a duration such as 5s, "
        .. "250ms or 1m30s, got \"5x\" (from --set)",
        err_of(config.monitors.example.timeout:as_duration()))
      assert(config:from_env("MOONWATCH", { MOONWATCH_MONITORS__EXAMPLE__CHECK_EVERY = "on" }))
      assert.equal("option config.monitors.example.check_every: expected a number, got \"on\" "
        .. "(from environment MOONWATCH_MONITORS__EXAMPLE__CHECK_EVERY)",
        err_of(config.monitors.example.check_every:as_number()))
      assert.equal("option config.log.level: expected an integer, got true (a boolean, from --set)",
        err_of(config.log.level:as_int()))
      local path = settings_file("monitors = { example = { timeout = {} } }\n")
      assert(config:from_file(path))
      assert.equal("option config.monitors.example.timeout: expected a number, got a table "
        .. "(from file " .. path .. ")", err_of(config.monitors.example.timeout:as_number()))
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

  describe("where and source", function()
    it("where: the path of an injected table, nil for any other", function()
      local options = config.monitors.example()
      assert.equal("monitors.example", configuration.where(options))
      assert.same(defaults().monitors.example, options)
      assert.is_nil(getmetatable(options))  -- what the provider gets stays plain
      assert.equal("monitors", configuration.where(config.monitors()))
      assert.equal("monitors.example", configuration.where(config.monitors().example))
      assert.equal("", configuration.where(config()))
      assert.is_nil(configuration.where({}))
      assert.is_nil(configuration.where(defaults().monitors.example))
      assert.is_nil(configuration.where("monitors.example"))
    end)

    it("source: nil for the defaults and code, else the file, --set or variable", function()
      local path = settings_file("monitors = { example = { method = 'HEAD' } }\n")
      assert(config:from_file(path))
      assert(config:from_env("MOONWATCH", { MOONWATCH_MONITORS__EXAMPLE__TIMEOUT = "2" }))
      assert(config:from_strings { "monitors.example.url=http://x" })
      config:from_table { monitors = { example = { check_every = 9 } } }
      local options = config.monitors.example()
      assert.equal("file " .. path, configuration.source(options, "method"))
      assert.equal("environment MOONWATCH_MONITORS__EXAMPLE__TIMEOUT",
        configuration.source(options, "timeout"))
      assert.equal("--set", configuration.source(options, "url"))
      assert.is_nil(configuration.source(options, "check_every"))
      assert.is_nil(configuration.source(options, "nothing"))
      assert.is_nil(configuration.source(defaults().monitors.example, "url"))
      -- through a table above
      assert.equal("--set", configuration.source(config.monitors().example, "url"))
    end)

    it("source: the latest source wins, and a table replaced by a file is the file's", function()
      assert(config:from_strings { "monitors.example.timeout=2" })
      assert(config:from_env("MW", { MW_MONITORS__EXAMPLE__TIMEOUT = "3" }))
      assert.equal("environment MW_MONITORS__EXAMPLE__TIMEOUT",
        configuration.source(config.monitors.example(), "timeout"))
      config:from_table { monitors = { example = { timeout = 4 } } }
      assert.is_nil(configuration.source(config.monitors.example(), "timeout"))
      local path = settings_file("monitors = { example = { headers = { A = 'b' } } }\n")
      assert(config:from_file(path))
      local headers = config.monitors.example().headers
      assert.equal("monitors.example.headers", configuration.where(headers))
      assert.equal("file " .. path, configuration.source(headers, "A"))
    end)

    it("source: an overridden value comes from code", function()
      assert(config:from_strings { "monitors.example.timeout=2", "monitors.example.url=u" })
      local handle = config.monitors.example.timeout:override(7)
      local options = config.monitors.example()
      assert.equal(7, options.timeout)
      assert.is_nil(configuration.source(options, "timeout"))
      assert.equal("--set", configuration.source(options, "url"))
      handle:remove()
      assert.equal("--set", configuration.source(config.monitors.example(), "timeout"))
    end)

    it("from_strings takes the name of its source", function()
      assert(config:from_strings({ "log.level=DEBUG" }, "file overrides.txt"))
      assert.equal("file overrides.txt", configuration.source(config.log(), "level"))
      assert.equal(1, #config:unread({ config.monitors }))
      assert.equal("file overrides.txt log.level: no provider reads this setting",
        config:unread({ config.monitors })[1].message)
    end)
  end)

  describe("unread settings", function()
    -- a container wired like monitors.lua: the logger reads log.level and
    -- log.format one by one, the monitor the whole monitors.example subtree
    local function wired(cfg)
      return container(function(c)
        c.config = cfg
        c.logging = providers.Factory(record, { level = cfg.log.level, format = cfg.log.format })
        c.example_monitor = providers.Factory(record, { options = cfg.monitors.example })
        c.dispatcher = providers.Factory(record, { monitors = providers.List(c.example_monitor) })
      end)()
    end

    local function reader_paths(c)
      local paths = {}
      for i, ref in ipairs(configuration.readers(c)) do paths[i] = configuration.path_of(ref) end
      table.sort(paths)
      return paths
    end

    local function messages(cfg, c)
      local out = {}
      for i, u in ipairs(cfg:unread(configuration.readers(c or wired(cfg)))) do
        out[i] = u.message
      end
      return out
    end

    it("readers: the references passed to providers, not the steps to them", function()
      local c = wired(config)
      local paths = reader_paths(c)
      -- not config.log nor config.monitors (only indexed on the way), nor
      -- the registered configuration itself
      assert.same({ "config.log.format", "config.log.level", "config.monitors.example" }, paths)
    end)

    it("readers: nested providers, converted references, later definitions", function()
      local c = container(function(c)
        c.config = config
        c.first = providers.Factory(record, { all = providers.Dict { x = c.later } })
        c.later = providers.Singleton(record, { t = config.monitors.example.timeout:as_int() })
        c.level = config.log.level
        c.whole = providers.Callable(record, { settings = c.config })
      end)()
      local paths = reader_paths(c)
      assert.same({ "config", "config.log.level", "config.monitors.example.timeout" }, paths)
    end)

    it("is empty when every given value is read", function()
      assert(config:from_strings { "log.level=DEBUG", "monitors.example.timeout=2",
                                   "monitors.example.verify=false" })
      assert(config:from_env("MOONWATCH", { MOONWATCH_MONITORS__EXAMPLE__URL = "http://x" }))
      assert.same({}, messages(config))
    end)

    it("counts a value replacing a subtree that is read", function()
      assert(config:from_strings { "monitors=5" })
      assert.same({}, messages(config))
    end)

    it("names a --set path no provider reads, with the closest path", function()
      assert(config:from_strings { "log.levle=DEBUG", "monitors.exmaple.timout=2" })
      assert.same({
        "--set log.levle: no provider reads this setting (did you mean log.level?)",
        "--set monitors.exmaple.timout: no provider reads this setting "
          .. "(did you mean monitors.example.timeout?)",
      }, messages(config))
    end)

    it("names a variable no provider reads, suggesting a variable", function()
      assert(config:from_env("MOONWATCH", { MOONWATCH_MONITORS__EXAMPL__URL = "http://x",
                                            MOONWATCH_LOG__LEVEL = "DEBUG" }))
      local unread = config:unread(configuration.readers(wired(config)))
      assert.equal(1, #unread)
      assert.same({ "monitors", "exampl", "url" }, unread[1].path)
      assert.equal("environment MOONWATCH_MONITORS__EXAMPL__URL", unread[1].setting)
      assert.equal("MOONWATCH_MONITORS__EXAMPLE__URL", unread[1].suggestion)
      assert.equal("environment MOONWATCH_MONITORS__EXAMPL__URL: no provider reads this "
        .. "setting (did you mean MOONWATCH_MONITORS__EXAMPLE__URL?)", unread[1].message)
    end)

    it("compares one level at a time, and suggests nothing when nothing is close", function()
      config:from_table { monitors = { health = { url = "http://h" } } }
      assert(config:from_strings { "monitors.helth.url=x", "nothing.like.this=1" })
      local c = container(function(c)
        c.config = config
        c.example = providers.Factory(record, { options = config.monitors.example })
        c.health = providers.Factory(record, { options = config.monitors.health })
      end)()
      assert.same({
        "--set monitors.helth.url: no provider reads this setting "
          .. "(did you mean monitors.health.url?)",
        "--set nothing.like.this: no provider reads this setting",
      }, messages(config, c))
      -- without the health monitor, "helth" is not close to "example"
      local other = providers.Configuration(defaults())
      assert(other:from_strings { "monitors.helth.url=x" })
      assert.same({ "--set monitors.helth.url: no provider reads this setting" },
        messages(other))
    end)

    it("suggests a default that no provider reads, not the typo itself", function()
      assert(config:from_strings { "log.colour=1", "log.colr=1" })
      config:from_table { log = { color = true } }
      assert.same({
        "--set log.colour: no provider reads this setting (did you mean log.color?)",
        "--set log.colr: no provider reads this setting (did you mean log.color?)",
      }, messages(config))
    end)

    it("reports a setting given twice once", function()
      assert(config:from_strings { "log.levle=A" })
      assert(config:from_strings { "log.levle=B" })
      assert.equal(1, #messages(config))
    end)

    it("ignores references to another configuration", function()
      local other = providers.Configuration(defaults())
      assert(config:from_strings { "log.level=DEBUG" })
      assert.equal(1, #config:unread({ other.log.level }))
      assert.equal(0, #config:unread({ config.log.level }))
    end)

    it("leaves out the variables from_env is told to ignore", function()
      assert(config:from_env("MOONWATCH", {
        MOONWATCH_BIN = "build/moonwatch", MOONWATCH_LUA_DIR = "lua", MOONWATCH_ = "x",
        MOONWATCHER_LOG__LEVEL = "x", MOONWATCH_LOG__LEVEL = "DEBUG",
      }, { ignore = { "MOONWATCH_BIN", "MOONWATCH_LUA_DIR" } }))
      assert.is_nil(config.bin())
      assert.is_nil(config.lua_dir())
      assert.same({}, messages(config))
      assert(config:from_env("MOONWATCH", { MOONWATCH_BIN = "x" }))
      assert.same({ "environment MOONWATCH_BIN: no provider reads this setting" },
        messages(config))
    end)

    it("rejects what is not a list of references", function()
      assert.matches("unread: expected a list of option references, got Option",
        err_of(function() return config:unread(config.log) end))
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
