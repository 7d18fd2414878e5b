local providers = require("moonwatch.providers")
local container = require("moonwatch.container")

local err_of = require("support.errors").err_of

local function record(kw) return kw end

-- The error raised at the caller's line: "spec/container_spec.lua:N: <message>".
local function at_caller(message)
  return "^spec/container_spec.lua:%d+: " .. message:gsub("%p", "%%%0") .. "$"
end

describe("container", function()
  describe("definitions and instances", function()
    it("gives a definition, whose every call is a fresh instance", function()
      local def = container(function(c) c.s = providers.Singleton(function() return {} end) end)
      assert.is_true(container.is_definition(def))
      local a, b = def(), def:new()
      assert.is_true(container.is_container(a))
      assert.is_true(container.is_container(b))
      assert.are_not.equal(a.s, b.s)
      assert.are_not.equal(a.s(), b.s())
      assert.equal(a.s(), a.s())
    end)

    it("is also container.new", function()
      assert.is_true(container.is_definition(container.new(function() end)))
    end)

    it("passes extra arguments to the builder", function()
      local def = container(function(c, settings) c.settings = providers.Object(settings) end)
      assert.equal("test", def("test").settings())
    end)

    it("gives the provider on access and its value on call", function()
      local c = container(function(c) c.x = providers.Factory(function() return "x" end) end)()
      assert.is_true(providers.is_provider(c.x))
      assert.equal("x", c.x())
    end)

    it("lets a provider use one defined later in the builder", function()
      local c = container(function(c)
        c.dispatcher = providers.Factory(record, { monitors = providers.List(c.monitor) })
        c.monitor = providers.Factory(record, { client = c.client })
        c.client = providers.Singleton(function() return "client" end)
      end)()
      assert.same({ monitors = { { client = "client" } } }, c.dispatcher())
    end)

    it("reaches a Configuration registered in the builder", function()
      local c = container(function(c)
        c.config = providers.Configuration { url = "u" }
        c.monitor = providers.Factory(record, { url = c.config.url })
      end)()
      assert.equal("u", c.monitor().url)
    end)

    it("iterates providers in declaration order", function()
      local c = container(function(c)
        c.b = providers.Object(1)
        c.a = providers.Object(2)
      end)()
      local names = {}
      for name, p in pairs(c) do
        names[#names + 1] = name
        assert.is_true(providers.is_provider(p))
      end
      assert.same({ "b", "a" }, names)
      assert.same({ "b", "a" }, c:provider_names())
      assert.equal("Container (2 providers)", tostring(c))
    end)

    it("names providers after their container key", function()
      local c = container(function(c) c.client = providers.Singleton(record) end)()
      assert.equal("Singleton client", tostring(c.client))
    end)

    it("propagates a builder error as is", function()
      local def = container(function() error("broken builder", 0) end)
      assert.equal("broken builder", err_of(def))
    end)
  end)

  describe("misuse", function()
    it("an unknown name on an instance is an error naming it", function()
      local c = container(function() end)()
      assert.matches(at_caller("unknown provider 'nope'"),
        err_of(function() local p = c.nope; return p end))
    end)

    it("a name used in the builder but never defined is an error", function()
      local def = container(function(c)
        c.a = providers.Factory(record, { x = c.nope, y = c.other })
      end)
      assert.matches(
        at_caller("unknown provider 'nope', 'other' (used in the builder but never defined)"),
        err_of(function() local c = def(); return c end))
    end)

    it("cannot be assigned to after the builder", function()
      local c = container(function() end)()
      assert.matches(at_caller("cannot assign 'x' after the container is built; "
        .. "override it instead: container.x:override(value)"),
        err_of(function() c.x = providers.Object(1) end))
    end)

    it("takes only providers, once per name, not on reserved names", function()
      local function build(fn) return err_of(container(fn)) end
      assert.matches("'x' must be a provider, got 5 %(wrap plain values in providers.Object%)$",
        build(function(c) c.x = 5 end))
      assert.matches("provider 'x' is already defined$", build(function(c)
        c.x = providers.Object(1)
        c.x = providers.Object(2)
      end))
      assert.matches("'init_resources' is a reserved name$",
        build(function(c) c.init_resources = providers.Object(1) end))
      assert.matches("provider names are strings, got number$",
        build(function(c) c[1] = providers.Object(1) end))
    end)

    it("refuses to share a Singleton or a Resource between instances", function()
      local shared = providers.Singleton(record)
      local def = container(function(c) c.client = shared end)
      def()
      assert.matches("provider 'client' %(Singleton%) already belongs to another container "
        .. "instance; declare Singletons and Resources inside the builder$", err_of(def))
    end)

    it("shares providers created outside the builder, such as a Configuration", function()
      local config = providers.Configuration { a = 1 }
      local def = container(function(c) c.config = config end)
      local one, two = def(), def()
      assert.equal(one.config, two.config)
      one.config:from_table { a = 2 }
      assert.equal(2, two.config.a())
    end)

    it("a definition is not an instance", function()
      local def = container(function() end)
      assert.matches("this is a container definition; make an instance first "
        .. "%(def%(%) or def:new%(%)%) to reach 'x'$", err_of(function() return def.x end))
      assert.matches("cannot assign 'x' to a container definition$",
        err_of(function() def.x = 1 end))
    end)

    it("a builder needs a function", function()
      assert.matches("container: expected a builder function, got nil$", err_of(container))
      assert.matches("container: expected a builder function, got 5$", err_of(container.new, 5))
    end)

    it("methods need the colon", function()
      local c = container(function() end)()
      assert.matches("expected a container instance %(use container:method%(%), not "
        .. "container.method%(%)%)$", err_of(function() c.init_resources() end))
    end)

    it("a reference used before definition only calls or overrides", function()
      local def = container(function(c)
        local _ = c.config.log
        c.config = providers.Configuration {}
      end)
      assert.matches("'config' is used before it is defined in the builder: only calling or "
        .. "overriding it is supported there %(not .log%)$", err_of(def))
    end)
  end)

  describe("errors", function()
    local def = container(function(c)
      c.config = providers.Configuration { monitors = { example = { url = "http://example.com" } } }
      c.http_client = providers.Singleton(function() return {} end)
      c.example_monitor = providers.Factory(function(kw)
        if kw.options.url == "bad" then error("bad url", 0) end
        return kw
      end, { http_client = c.http_client, options = c.config.monitors.example })
      c.dispatcher = providers.Factory(record, { monitors = providers.List(c.example_monitor) })
    end)

    it("re-raise a construction error with the resolution chain", function()
      local c = def()
      c.config:from_table { monitors = { example = { url = "bad" } } }
      assert.equal("dispatcher → monitors[1] → example_monitor: bad url", err_of(c.dispatcher))
      assert.equal("example_monitor: bad url", err_of(c.example_monitor))
    end)

    it("keep the position of the original error", function()
      local c = container(function(c)
        c.boom = providers.Factory(function() error("boom") end)
        c.user = providers.Factory(record, { dep = c.boom })
      end)()
      assert.matches("^user → boom: spec/container_spec.lua:%d+: boom$", err_of(c.user))
    end)

    it("name the key leading to an anonymous provider, the name of a named one", function()
      -- the key is left out when a named provider follows: the name says more
      local c = container(function(c)
        c.leaf = providers.Factory(function() error("leaf failed", 0) end)
        c.root = providers.Factory(record, {
          direct = providers.Factory(record, { deep = c.leaf }),
          table = providers.Dict { entry = c.leaf },
          [1] = providers.List(providers.Factory(function() error("anon failed", 0) end)),
        })
      end)()
      c.leaf:override(providers.Object("ok"))
      assert.equal("root[1][1]: anon failed", err_of(c.root))
      c.leaf:reset_override()
      local c2 = container(function(cc)
        cc.leaf = providers.Factory(function() error("leaf failed", 0) end)
        cc.root = providers.Factory(record,
          { direct = providers.Factory(record, { deep = cc.leaf }) })
        cc.dict = providers.Dict { entry = cc.leaf }
        cc.odd = providers.Dict { ["a b"] = providers.Callable(function() error("x", 0) end) }
      end)()
      assert.equal("root → direct → leaf: leaf failed", err_of(c2.root))
      assert.equal("dict.entry → leaf: leaf failed", err_of(c2.dict))
      assert.equal('odd["a b"]: x', err_of(c2.odd))
    end)

    it("start with the kind of an anonymous provider", function()
      local l = providers.List(1, providers.Factory(function() error("x", 0) end))
      assert.equal("<List>[2]: x", err_of(l))
    end)

    it("name the option whose conversion fails", function()
      local c = container(function(c)
        c.config = providers.Configuration { timeout = "soon" }
        c.monitor = providers.Factory(record, { timeout = c.config.timeout:as_duration() })
      end)()
      assert.equal("monitor → timeout: option config.timeout: expected a duration such as 5s, "
        .. "250ms or 1m30s, got \"soon\"", err_of(c.monitor))
    end)

    it("turn a non-string error into a string", function()
      local c = container(function(c)
        local obj = setmetatable({}, { __tostring = function() return "obj" end })
        c.x = providers.Factory(function() error(obj) end)
      end)()
      assert.equal("x: obj", err_of(c.x))
    end)

    it("leave the resolution state clean for the next call", function()
      local fail = true
      local c = container(function(c)
        c.a = providers.Factory(function() if fail then error("once", 0) end return "a" end)
        c.b = providers.Factory(record, { a = c.a })
      end)()
      assert.equal("b → a: once", err_of(c.b))
      fail = false
      assert.same({ a = "a" }, c.b())
    end)

    it("survive a constructor that catches a nested failure", function()
      local c = container(function(c)
        c.bad = providers.Factory(function() error("bad", 0) end)
        c.tolerant = providers.Factory(function()
          local ok, err = pcall(c.bad)
          return ok and "?" or tostring(err)
        end)
        c.top = providers.Factory(record, { t = c.tolerant })
      end)()
      assert.same({ t = "top → tolerant → bad: bad" }, c.top())
      assert.equal("bad: bad", err_of(c.bad))
    end)

    it("keep a separate chain per coroutine", function()
      local c = container(function(c)
        c.slow = providers.Factory(function()
          if not coroutine.isyieldable() then error("main failed", 0) end
          coroutine.yield()
          error("task failed", 0)
        end)
        c.user = providers.Factory(record, { slow = c.slow })
      end)()
      local co = coroutine.create(function() return pcall(c.user) end)
      assert.is_true(coroutine.resume(co))
      -- meanwhile, on the main thread: no false cycle, its own chain
      assert.equal("user → slow: main failed", err_of(c.user))
      local _, ok, err = coroutine.resume(co)
      assert.is_false(ok)
      assert.equal("user → slow: task failed", err)
    end)
  end)

  describe("cycles", function()
    it("are reported as cycles", function()
      local c = container(function(c)
        c.a = providers.Factory(record, { b = c.b })
        c.b = providers.Factory(record, { a = c.a })
      end)()
      assert.equal("dependency cycle: a → b → a", err_of(c.a))
      assert.equal("dependency cycle: b → a → b", err_of(c.b))
    end)

    it("include a provider depending on itself", function()
      local c = container(function(c) c.a = providers.Singleton(record, { me = c.a }) end)()
      assert.equal("dependency cycle: a → a", err_of(c.a))
    end)

    it("show the way in before the cycle", function()
      local c = container(function(c)
        c.top = providers.Factory(record, { list = providers.List(c.a) })
        c.a = providers.Factory(record, { b = c.b })
        c.b = providers.Factory(record, { x = providers.Dict { a = c.a } })
      end)()
      assert.equal("top → list[1]: dependency cycle: a → b → x.a → a", err_of(c.top))
    end)

    it("include an override that uses the provider it overrides", function()
      local c = container(function(c) c.client = providers.Singleton(record) end)()
      c.client:override(providers.Factory(record, { inner = c.client }))
      assert.equal("dependency cycle: client → client", err_of(c.client))
    end)
  end)

  describe("resources", function()
    local log, def
    before_each(function()
      log = {}
      local function resource(name)
        return function()
          log[#log + 1] = "init " .. name
          return name, function() log[#log + 1] = "shutdown " .. name end
        end
      end
      def = container(function(c)
        c.app = providers.Resource(resource("app"), { db = c.db, logging = c.logging })
        c.logging = providers.Resource(resource("logging"))
        c.db = providers.Resource(resource("db"), { logging = c.logging })
        c.cache = providers.Resource { init = resource("cache") }
      end)
    end)

    it("initialise in dependency order and shut down in reverse", function()
      local c = def()
      c:init_resources()
      assert.same({ "init logging", "init db", "init app", "init cache" }, log)
      log = {}
      c:shutdown_resources()
      assert.same({ "shutdown cache", "shutdown app", "shutdown db", "shutdown logging" }, log)
      assert.is_false(c.app:is_initialized())
    end)

    it("are per instance", function()
      local one, two = def(), def()
      one:init_resources()
      assert.is_true(one.db:is_initialized())
      assert.is_false(two.db:is_initialized())
    end)

    it("shut down those initialised lazily too", function()
      local c = def()
      c.db()
      log = {}
      c:shutdown_resources()
      assert.same({ "shutdown db", "shutdown logging" }, log)
    end)

    it("are not initialised when overridden", function()
      local c = def()
      c.db:override("stub db")
      c:init_resources()
      assert.same({ "init logging", "init app", "init cache" }, log)
      assert.is_false(c.db:is_initialized())
    end)

    it("report an init failure with its chain", function()
      local c = container(function(c)
        c.app = providers.Resource(record, { logging = c.logging })
        c.logging = providers.Resource(function() error("no log dir", 0) end)
      end)()
      assert.equal("app → logging: no log dir", err_of(c.init_resources, c))
    end)

    it("shut down every resource even when some fail", function()
      local c = container(function(c)
        c.a = providers.Resource(function() return 1, function() error("a failed", 0) end end)
        c.b = providers.Resource(function() return 2 end)
        c.d = providers.Resource(function() return 3, function() error("d failed", 0) end end)
      end)()
      c:init_resources()
      assert.matches("shutdown failed: d: d failed; a: a failed$", err_of(c.shutdown_resources, c))
      assert.is_false(c.a:is_initialized())
      assert.is_false(c.b:is_initialized())
    end)

    it("shut down when a to-be-closed instance goes out of scope", function()
      do
        local c <close> = def()
        c:init_resources()
      end
      assert.same("shutdown logging", log[#log])
    end)
  end)

  describe("dependencies", function()
    it("check_dependencies lists every missing one", function()
      local c = container(function(c)
        c.db = providers.Dependency("table")
        c.queue = providers.Dependency()
        c.clock = providers.Dependency(nil, os.time)
        c.user = providers.Factory(record, { db = c.db })
      end)()
      assert.matches(at_caller("missing dependencies: db, queue"),
        err_of(function() local ok = c:check_dependencies(); return ok end))
      local _ <close> = c:override_providers { db = {}, queue = "q" }
      assert.is_true(c:check_dependencies())
      assert.same({ db = {} }, c.user())
    end)

    it("a missing dependency fails with the chain", function()
      local c = container(function(c)
        c.db = providers.Dependency()
        c.user = providers.Factory(record, { db = c.db })
      end)()
      assert.equal("user → db: dependency is not provided (override it, or give it a default)",
        err_of(c.user))
    end)
  end)

  describe("reset_singletons", function()
    it("resets every singleton of the instance", function()
      local c = container(function(c)
        c.a = providers.Singleton(function() return {} end)
        c.b = providers.Singleton(function() return {} end)
      end)()
      local a, b = c.a(), c.b()
      c:reset_singletons()
      assert.are_not.equal(a, c.a())
      assert.are_not.equal(b, c.b())
    end)

    it("reaches a nested singleton built from one of them, not one built from none", function()
      local c = container(function(c)
        c.named = providers.Singleton(function() return {} end)
        c.user = providers.Factory(record, {
          from_named = providers.Singleton(record, { named = c.named }),
          lone = providers.Singleton(function() return {} end),
        })
      end)()
      local before = c.user()
      c:reset_singletons()
      local after = c.user()
      assert.are_not.equal(before.from_named, after.from_named)
      assert.equal(before.lone, after.lone)
    end)

    it("leaves overrides and resources alone", function()
      local init = spy.new(function() return {} end)
      local c = container(function(c)
        c.a = providers.Singleton(function() return {} end)
        c.r = providers.Resource(init)
      end)()
      local r = c.r()
      c.a:override("stub")
      c:reset_singletons()
      assert.equal("stub", c.a())
      assert.equal(r, c.r())
      assert.spy(init).was_called(1)
    end)
  end)
end)
