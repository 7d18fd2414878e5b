local providers = require("moonwatch.providers")
local container = require("moonwatch.container")

-- The raw error value: luassert's has_error strips anything up to a
-- "file:line: ", which would eat a resolution chain.
local function err_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return err
end

local function record(kw) return kw end

describe("providers", function()
  describe("identity", function()
    it("recognises every kind by its metatable", function()
      local config = providers.Configuration {}
      for _, p in ipairs {
        providers.Factory(record), providers.Singleton(record), providers.Callable(record),
        providers.Object(1), providers.List(), providers.Dict {},
        providers.Resource(record), providers.Dependency(), config, config.a.b,
        providers.Selector(function() return "x" end, {}),
      } do
        assert.is_true(providers.is_provider(p), tostring(p))
      end
    end)

    it("does not take a proxy answering any key, or a spy, for a provider", function()
      local proxy = setmetatable({}, { __index = function() return function() end end })
      assert.is_false(providers.is_provider(proxy))
      assert.is_false(providers.is_provider(spy.new(function() end)))
      assert.is_false(providers.is_provider({ override = true, provide = true }))
      assert.is_false(providers.is_provider("Factory"))
    end)

    it("passes such values through as injected arguments, uncalled", function()
      local proxy = setmetatable({}, { __index = function() return function() end end })
      local s = spy.new(function() end)
      local got = providers.Factory(record, { proxy = proxy, spy = s })()
      assert.equal(proxy, got.proxy)
      assert.equal(s, got.spy)
      assert.spy(s).was_not_called()
    end)

    it("names the kind", function()
      assert.equal("Factory", providers.kind_of(providers.Factory(record)))
      assert.equal("Option", providers.kind_of(providers.Configuration {}.a))
      assert.equal("Configuration", providers.kind_of(providers.Configuration {}))
      assert.is_nil(providers.kind_of({}))
      assert.equal("Factory (anonymous)", tostring(providers.Factory(record)))
    end)
  end)

  describe("Factory", function()
    it("builds a new object per call", function()
      local f = providers.Factory(function() return {} end)
      assert.are_not.equal(f(), f())
    end)

    it("calls the constructor with one table of keyword arguments", function()
      local ctor = spy.new(function() return "built" end)
      local f = providers.Factory(ctor, { a = 1, b = "two" })
      assert.equal("built", f())
      assert.spy(ctor).was_called_with({ a = 1, b = "two" })
    end)

    it("accepts a callable table as constructor", function()
      local Class = setmetatable({}, { __call = function(_, kw) return { x = kw.x } end })
      assert.same({ x = 3 }, providers.Factory(Class, { x = 3 })())
    end)

    it("resolves injected providers at call time", function()
      local n = 0
      local counter = providers.Callable(function() n = n + 1; return n end)
      local f = providers.Factory(record, { n = counter, plain = "p" })
      assert.same({ n = 1, plain = "p" }, f())
      assert.same({ n = 2, plain = "p" }, f())
    end)

    it("lets call-time arguments win over injected ones", function()
      local injected = spy.new(function() return "injected" end)
      local f = providers.Factory(record, { a = providers.Callable(injected), b = 2 })
      assert.same({ a = "call", b = 2, c = 3 }, f { a = "call", c = 3 })
    end)

    it("copies its keyword table, so later edits do not change it", function()
      local kw = { a = 1 }
      local f = providers.Factory(record, kw)
      kw.a = 2
      assert.same({ a = 1 }, f())
    end)

    it("rejects call-time arguments that are not one table", function()
      local c = container(function(c) c.f = providers.Factory(record) end)()
      assert.equal("f: call-time arguments must be one table of keyword arguments, got number",
        err_of(c.f, 5))
      assert.equal("f: call-time arguments must be one table of keyword arguments, got 2 values",
        err_of(c.f, {}, {}))
    end)

    it("rejects a constructor that cannot be called", function()
      assert.matches("^spec/providers_spec.lua:%d+: Factory: constructor must be callable "
        .. "%(a function or a table with __call%), got table$",
        err_of(function() local p = providers.Factory({}); return p end))
      assert.matches("Factory: keyword arguments must be a plain table, got 5$",
        err_of(function() return providers.Factory(record, 5) end))
    end)
  end)

  describe("Callable", function()
    it("calls the function on every call with its keyword arguments", function()
      local fn = spy.new(function(kw) return kw.x * 2 end)
      local p = providers.Callable(fn, { x = providers.Object(21) })
      assert.equal(42, p())
      assert.equal(42, p())
      assert.spy(fn).was_called(2)
      assert.equal(10, p { x = 5 })
    end)

    it("requires a function", function()
      assert.matches("Callable: function must be callable", err_of(providers.Callable, 1))
    end)
  end)

  describe("Singleton", function()
    it("builds once", function()
      local ctor = spy.new(function() return {} end)
      local s = providers.Singleton(ctor)
      assert.equal(s(), s())
      assert.spy(ctor).was_called(1)
      assert.is_true(s:is_built())
    end)

    it("builds again after reset()", function()
      local s = providers.Singleton(function() return {} end)
      local first = s()
      s:reset()
      assert.is_false(s:is_built())
      assert.are_not.equal(first, s())
    end)

    it("caches a nil result too", function()
      local ctor = spy.new(function() return nil end)
      local s = providers.Singleton(ctor)
      assert.is_nil(s())
      assert.is_nil(s())
      assert.spy(ctor).was_called(1)
    end)

    it("resetting it resets the singletons built from it", function()
      local inner = providers.Singleton(function() return {} end)
      local outer = providers.Singleton(record, { inner = inner })
      local first = outer()
      inner:reset()
      local second = outer()
      assert.are_not.equal(first, second)
      assert.are_not.equal(first.inner, second.inner)
    end)

    it("resetting it resets dependents of dependents, not what it was built from", function()
      local base = providers.Singleton(function() return {} end)
      local mid = providers.Singleton(record, { base = base })
      local top = providers.Singleton(record, { mid = mid })
      local apex = providers.Singleton(record, { top = top })
      -- built one at a time, so apex is reached only through top
      local b, m, _, a = base(), mid(), top(), apex()
      mid:reset()
      assert.is_false(apex:is_built())
      assert.are_not.equal(a, apex())
      assert.are_not.equal(m, apex().top.mid)
      assert.equal(b, base())
      assert.equal(b, apex().top.mid.base)
    end)

    it("takes no call-time arguments", function()
      local c = container(function(c) c.s = providers.Singleton(record) end)()
      assert.equal("s: a Singleton takes no call-time arguments", err_of(c.s, { a = 1 }))
    end)

    it("is not cached when construction fails", function()
      local fail = true
      local s = providers.Singleton(function()
        if fail then error("not yet", 0) end
        return "ok"
      end)
      assert.equal("<Singleton>: not yet", err_of(s))
      fail = false
      assert.equal("ok", s())
    end)
  end)

  describe("Object", function()
    it("returns its value as is, ignoring arguments", function()
      local t = {}
      local o = providers.Object(t)
      assert.equal(t, o())
      assert.equal(t, o { x = 1 })
      assert.is_nil(providers.Object(nil)())
      assert.is_false(providers.Object(false)())
    end)
  end)

  describe("List", function()
    it("builds a new array, resolving provider items", function()
      local three = providers.Callable(function() return 3 end)
      local l = providers.List(providers.Object(1), "two", three)
      local a, b = l(), l()
      assert.same({ 1, "two", 3 }, a)
      assert.are_not.equal(a, b)
    end)

    it("keeps nil items in place", function()
      assert.same({ 1, nil, 3 }, providers.List(1, nil, providers.Object(3))())
    end)

    it("appends call-time arguments", function()
      assert.same({ 1, 2, 3 }, providers.List(1)(2, 3))
    end)
  end)

  describe("Dict", function()
    it("builds a new table, resolving provider values", function()
      local d = providers.Dict { a = providers.Object(1), b = "b", [1] = providers.Object("one") }
      local x, y = d(), d()
      assert.same({ a = 1, b = "b", [1] = "one" }, x)
      assert.are_not.equal(x, y)
    end)

    it("lays call-time keyword arguments over it", function()
      assert.same({ a = 1, b = 3 }, providers.Dict { a = 1, b = 2 } { b = 3 })
    end)

    it("requires a table", function()
      assert.matches("Dict: expected a table, got 5$", err_of(providers.Dict, 5))
    end)
  end)

  describe("Resource", function()
    it("initialises once with its keyword arguments", function()
      local init = spy.new(function(kw) return { level = kw.level } end)
      local r = providers.Resource(init, { level = providers.Object("INFO") })
      assert.is_false(r:is_initialized())
      local a = r()
      assert.same({ level = "INFO" }, a)
      assert.equal(a, r())
      assert.equal(a, r:init())
      assert.spy(init).was_called(1)
      assert.is_true(r:is_initialized())
    end)

    it("shuts down with the function init returned", function()
      local closed
      local r = providers.Resource(function() return "res", function(x) closed = x end end)
      r()
      r:shutdown()
      assert.equal("res", closed)
      assert.is_false(r:is_initialized())
      r:shutdown()  -- no-op once shut down
    end)

    it("accepts {init = ..., shutdown = ...}", function()
      local shutdown = spy.new(function() end)
      local r = providers.Resource { init = function() return "res" end, shutdown = shutdown }
      assert.equal("res", r())
      r:shutdown()
      assert.spy(shutdown).was_called_with("res")
    end)

    it("prefers the shutdown function init returned over the declared one", function()
      local declared, returned = spy.new(function() end), spy.new(function() end)
      local r = providers.Resource {
        init = function() return 1, returned end, shutdown = declared,
      }
      r()
      r:shutdown()
      assert.spy(returned).was_called(1)
      assert.spy(declared).was_not_called()
    end)

    it("initialises again after shutdown", function()
      local n = 0
      local r = providers.Resource(function() n = n + 1; return n end)
      assert.equal(1, r())
      r:shutdown()
      assert.equal(2, r())
    end)

    it("fails when init returns nil and a message", function()
      local c = container(function(c)
        c.db = providers.Resource(function() return nil, "connection refused" end)
      end)()
      assert.equal("db: init failed: connection refused", err_of(c.db))
      assert.is_false(c.db:is_initialized())
    end)

    it("rejects a second return value that is not a function", function()
      local r = providers.Resource(function() return 1, 2 end)
      assert.equal("<Resource>: init returned a second value that is not a shutdown function: 2",
        err_of(r))
    end)

    it("rejects malformed declarations", function()
      assert.matches("Resource: expected an init function or {init = ..., shutdown = ...}, got 5$",
        err_of(providers.Resource, 5))
      assert.matches("Resource: init must be callable, got nil$", err_of(providers.Resource, {}))
      assert.matches("Resource: shutdown must be callable, got string$",
        err_of(providers.Resource, { init = record, shutdown = "x" }))
    end)

    it("resets the singletons built from it when shut down", function()
      local n = 0
      local r = providers.Resource(function() n = n + 1; return n end)
      local s = providers.Singleton(record, { r = r })
      assert.equal(1, s().r)
      r:shutdown()
      assert.equal(2, s().r)
    end)

    it("keeps what it was built from when shut down; resets dependents of dependents", function()
      local base = providers.Singleton(function() return {} end)
      local r = providers.Resource(record, { base = base })
      local s = providers.Singleton(record, { r = r })
      local top = providers.Singleton(record, { s = s })
      local b, _, t = base(), s(), top()  -- top is reached only through s
      r:shutdown()
      assert.is_false(top:is_built())
      assert.are_not.equal(t, top())
      assert.equal(b, base())
      assert.equal(b, top().s.r.base)
    end)

    it("when overridden, resets the singletons built from it and stays initialised", function()
      local n = 0
      local r = providers.Resource(function() n = n + 1; return n end)
      local s = providers.Singleton(record, { r = r })
      assert.equal(1, s().r)
      do
        local _ <close> = r:override(99)
        assert.equal(99, s().r)
        assert.is_true(r:is_initialized())
      end
      assert.equal(1, s().r)
      assert.equal(1, n)
    end)

    it("is not re-initialised when a provider it was built from is overridden", function()
      local init = spy.new(record)
      local dep = providers.Factory(function() return "real" end)
      local r = providers.Resource(init, { dep = dep })
      assert.equal("real", r().dep)
      local _ <close> = dep:override("stub")
      assert.equal("real", r().dep)
      assert.spy(init).was_called(1)
    end)
  end)

  describe("Dependency", function()
    it("fails until provided", function()
      local c = container(function(c) c.db = providers.Dependency() end)()
      assert.equal("db: dependency is not provided (override it, or give it a default)",
        err_of(c.db))
      assert.is_false(c.db:is_defined())
      c.db:override("a db")
      assert.is_true(c.db:is_defined())
      assert.equal("a db", c.db())
    end)

    it("uses a default value or provider", function()
      assert.equal(5, providers.Dependency(nil, 5)())
      assert.equal(6, providers.Dependency(nil, providers.Object(6))())
      assert.is_true(providers.Dependency(nil, 5):is_defined())
    end)

    it("checks a type name", function()
      local c = container(function(c) c.db = providers.Dependency("table") end)()
      c.db:override("not a table")
      assert.equal("db: dependency check failed: expected table, got string", err_of(c.db))
    end)

    it("checks with a function, on overrides and defaults alike", function()
      local positive = function(v) return v > 0, "must be positive" end
      local c = container(function(c) c.n = providers.Dependency(positive, -1) end)()
      assert.equal("n: dependency check failed: must be positive", err_of(c.n))
      local h = c.n:override(3)
      assert.equal(3, c.n())
      h:remove()
      c.n:override(providers.Object(-5))
      assert.equal("n: dependency check failed: must be positive", err_of(c.n))
    end)

    it("describes the value when the check gives no message", function()
      local d = providers.Dependency(function() return false end, "x")
      assert.equal("<Dependency>: dependency check failed: got \"x\"", err_of(d))
    end)

    it("rejects a check that is neither a type name nor a function", function()
      assert.matches("Dependency: check must be a type name or a function, got number$",
        err_of(providers.Dependency, 5))
    end)
  end)

  describe("Selector", function()
    local config, real, fake, sel
    before_each(function()
      config = providers.Configuration { client = "real" }
      real = providers.Factory(function() return "real client" end)
      fake = providers.Object("fake client")
      sel = providers.Selector(config.client, { real = real, fake = fake, plain = 42 })
    end)

    it("calls the provider named by the option when called", function()
      assert.equal("real client", sel())
      config:from_table { client = "fake" }
      assert.equal("fake client", sel())
      config:from_table { client = "plain" }
      assert.equal(42, sel())
    end)

    it("accepts a function as option", function()
      local which = "fake"
      local s = providers.Selector(function() return which end, { fake = fake, real = real })
      assert.equal("fake client", s())
      which = "real"
      assert.equal("real client", s())
    end)

    it("passes call-time arguments to the chosen provider", function()
      local s = providers.Selector(function() return "f" end, { f = providers.Factory(record) })
      assert.same({ x = 1 }, s { x = 1 })
    end)

    it("reports an unknown or unset choice", function()
      local c = container(function(c) c.client = sel end)()
      config:from_table { client = "nope" }
      assert.equal('client: no provider for "nope" (choices: fake, plain, real)', err_of(c.client))
      config = providers.Configuration {}
      local s = providers.Selector(config.client, { a = 1 })
      assert.equal("<Selector>: selector option is not set (choices: a)", err_of(s))
    end)

    it("names the choice in the chain", function()
      local c = container(function(c)
        c.client = providers.Selector(function() return "real" end, {
          real = providers.Factory(function() error("no network", 0) end),
        })
      end)()
      assert.equal("client.real: no network", err_of(c.client))
    end)

    it("rejects malformed declarations", function()
      assert.matches("Selector: option must be a provider or a function, got \"x\"$",
        err_of(providers.Selector, "x", {}))
      assert.matches("Selector: expected a table of choices, got nil$",
        err_of(providers.Selector, config.client))
    end)
  end)
end)
