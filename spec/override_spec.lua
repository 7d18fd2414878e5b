local providers = require("moonwatch.providers")
local container = require("moonwatch.container")

local err_of = require("support.errors").err_of

local function record(kw) return kw end

describe("overriding", function()
  local app
  before_each(function()
    app = container(function(c)
      c.client = providers.Factory(function() return "real" end)
      c.consumer = providers.Factory(record, { client = c.client })
    end)()
  end)

  describe("a provider", function()
    it("uses a plain value as is", function()
      local stub = {}
      app.client:override(stub)
      assert.equal(stub, app.client())
      assert.equal(stub, app.consumer().client)
      assert.is_true(app.client:is_overridden())
    end)

    it("calls a provider, with the call-time arguments", function()
      app.client:override(providers.Factory(record, { kind = "stub" }))
      assert.same({ kind = "stub" }, app.client())
      assert.same({ kind = "stub", extra = 1 }, app.client { extra = 1 })
    end)

    it("uses a spy as a value, without calling it", function()
      local s = spy.new(function() end)
      app.client:override(s)
      assert.equal(s, app.consumer().client)
      assert.spy(s).was_not_called()
    end)

    it("with nil is an error", function()
      assert.matches("^spec/override_spec.lua:%d+: client: cannot override with nil "
        .. "%(use providers.Object%(nil%) for a nil value%)$",
        err_of(function() local h = app.client:override(nil); return h end))
      app.client:override(providers.Object(nil))
      assert.is_nil(app.client())
    end)
  end)

  describe("stacks", function()
    it("the latest override wins until removed", function()
      local h1 = app.client:override("one")
      local h2 = app.client:override("two")
      assert.equal("two", app.client())
      h2:remove()
      assert.equal("one", app.client())
      h1:remove()
      assert.equal("real", app.client())
      assert.is_false(app.client:is_overridden())
    end)

    it("a handle removes its own entry, not the top one", function()
      local h1 = app.client:override("one")
      local h2 = app.client:override("two")
      h1:remove()
      assert.equal("two", app.client())
      assert.is_false(h1:active())
      assert.is_true(h2:active())
      h2:remove()
      assert.equal("real", app.client())
    end)

    it("removing a handle twice does nothing the second time", function()
      local h1 = app.client:override("one")
      app.client:override("two")
      h1:remove()
      h1:remove()
      assert.equal("two", app.client())
    end)

    it("a handle is a to-be-closed variable", function()
      do
        local _ <close> = app.client:override("outer")
        do
          local _ <close> = app.client:override("inner")
          assert.equal("inner", app.consumer().client)
        end
        assert.equal("outer", app.consumer().client)
      end
      assert.equal("real", app.consumer().client)
    end)

    it("a to-be-closed handle is removed when the scope fails", function()
      assert.has_error(function()
        local _ <close> = app.client:override("stub")
        error("test failed")
      end)
      assert.equal("real", app.client())
    end)

    it("reset_override removes every entry; old handles then do nothing", function()
      local h = app.client:override("one")
      app.client:override("two")
      app.client:reset_override()
      assert.equal("real", app.client())
      local h3 = app.client:override("three")
      h:remove()
      assert.equal("three", app.client())
      h3:remove()
    end)
  end)

  describe("container:override_providers", function()
    it("overrides by name and returns one handle", function()
      local h = app:override_providers {
        client = "stub", consumer = providers.Object("consumer stub"),
      }
      assert.equal("stub", app.client())
      assert.equal("consumer stub", app.consumer())
      h:remove()
      assert.equal("real", app.client())
      assert.same({ client = "real" }, app.consumer())
    end)

    it("works as a to-be-closed variable", function()
      do
        local _ <close> = app:override_providers { client = "stub" }
        assert.equal("stub", app.consumer().client)
      end
      assert.equal("real", app.consumer().client)
    end)

    it("rejects an unknown name and overrides nothing", function()
      assert.matches("^spec/override_spec.lua:%d+: override_providers: unknown provider 'nope'$",
        err_of(function()
          local h = app:override_providers { client = "stub", nope = 1 }
          return h
        end))
      assert.is_false(app.client:is_overridden())
      assert.matches("override_providers: expected a table of name = override, got nil$",
        err_of(app.override_providers, app))
    end)

    it("container:reset_override clears every provider", function()
      app:override_providers { client = "a", consumer = "b" }
      app.client:override("c")
      app:reset_override()
      assert.is_false(app.client:is_overridden())
      assert.is_false(app.consumer:is_overridden())
    end)

    it("container:reset_override keeps overrides of providers it does not name", function()
      local nested = providers.Factory(function() return "real" end)
      local c = container(function(c) c.user = providers.Factory(record, { nested = nested }) end)()
      local _ <close> = nested:override("stub")
      c:reset_override()
      assert.equal("stub", c.user().nested)
    end)
  end)

  describe("singletons", function()
    local def
    before_each(function()
      def = container(function(c)
        c.client = providers.Singleton(function() return { kind = "real" } end)
        c.service = providers.Singleton(record, { client = c.client })
        c.api = providers.Singleton(record, { service = c.service })
        c.unrelated = providers.Singleton(function() return {} end)
      end)
    end)

    it("an already-built dependent is rebuilt with the stub, and again without it", function()
      local c = def()
      local real_service = c.service()
      assert.equal("real", real_service.client.kind)
      local stub = { kind = "stub" }
      do
        local _ <close> = c.client:override(stub)
        assert.equal(stub, c.service().client)
      end
      assert.equal("real", c.service().client.kind)
      assert.are_not.equal(real_service, c.service())
    end)

    it("dependents of dependents are reset too, even built from a cached one", function()
      local c = def()
      c.service()       -- service built first and cached ...
      local api = c.api()  -- ... so api did not resolve client itself
      local h = c.client:override({ kind = "stub" })
      assert.equal("stub", c.api().service.client.kind)
      assert.are_not.equal(api, c.api())
      h:remove()
      assert.equal("real", c.api().service.client.kind)
    end)

    it("the overridden singleton keeps its own instance for after the override", function()
      local c = def()
      local real = c.client()
      c.service()
      local h = c.client:override({ kind = "stub" })
      assert.equal("stub", c.service().client.kind)
      h:remove()
      assert.equal(real, c.client())
      assert.equal(real, c.service().client)
    end)

    it("a singleton built during the override is reset when it is removed", function()
      local c = def()
      local h = c.client:override({ kind = "stub" })
      assert.equal("stub", c.service().client.kind)
      h:remove()
      assert.equal("real", c.service().client.kind)
    end)

    it("overriding a singleton itself resets what was built from it", function()
      local c = def()
      c.api()
      local _ <close> = c.service:override({ fake = true })
      assert.same({ service = { fake = true } }, c.api())
    end)

    it("overriding never resets the singletons the provider was built from", function()
      local c = def()
      local client = c.client()
      c.api()
      local _ <close> = c.service:override({ fake = true })
      assert.is_true(c.client:is_built())
      assert.equal(client, c.client())
    end)

    it("reset_override resets what was built from it, and nothing when not overridden", function()
      local c = def()
      local service = c.service()
      c.client:reset_override()
      assert.equal(service, c.service())
      c.client:override({ kind = "stub" })
      assert.equal("stub", c.service().client.kind)
      c.client:reset_override()
      assert.is_false(c.service:is_built())
      assert.equal("real", c.service().client.kind)
    end)

    it("container:reset_override resets the singletons built from what it restores", function()
      local c = def()
      c:override_providers { client = { kind = "stub" } }
      assert.equal("stub", c.api().service.client.kind)
      c:reset_override()
      assert.equal("real", c.api().service.client.kind)
    end)

    it("singletons that do not depend on it are kept", function()
      local c = def()
      local unrelated = c.unrelated()
      c.client:override({})
      assert.equal(unrelated, c.unrelated())
    end)

    it("a stub never leaks into a later instance", function()
      local one = def()
      one.client:override({ kind = "stub" })
      one.service()
      assert.equal("real", def().service().client.kind)
    end)

    it("an override through a provider is tracked too", function()
      local c = def()
      local stub_kind = "first"
      local stub = providers.Factory(function() return { kind = stub_kind } end)
      c.client:override(stub)
      assert.equal("first", c.service().client.kind)
      stub_kind = "second"
      assert.equal("first", c.service().client.kind)  -- still cached
      c.client:reset_override()
      assert.equal("real", c.service().client.kind)
    end)
  end)

  describe("configuration options", function()
    local config, def
    before_each(function()
      config = providers.Configuration {
        monitors = { example = { url = "http://example.com", timeout = 5 } },
      }
      def = container(function(c)
        c.config = config
        c.monitor = providers.Singleton(record, { options = config.monitors.example })
        c.timeout = providers.Singleton(record, { t = config.monitors.example.timeout:as_int() })
      end)
    end)

    it("an option override is seen through every reference covering it", function()
      local h = config.monitors.example.url:override("http://fake")
      assert.equal("http://fake", config.monitors.example.url())
      assert.equal("http://fake", config.monitors.example().url)
      assert.equal("http://fake", config().monitors.example.url)
      assert.equal(5, config.monitors.example.timeout())
      h:remove()
      assert.equal("http://example.com", config.monitors.example().url)
    end)

    it("resets the singletons built from an overlapping option", function()
      local c = def()
      assert.equal("http://example.com", c.monitor().options.url)
      local t = c.timeout()
      do
        local _ <close> = config.monitors.example.url:override("http://fake")
        assert.equal("http://fake", c.monitor().options.url)
        assert.equal(t, c.timeout())  -- timeout does not overlap url
      end
      assert.equal("http://example.com", c.monitor().options.url)
    end)

    it("container:reset_override keeps the overrides of options", function()
      local c = def()
      local _ <close> = config.monitors.example.url:override("http://fake")
      c.config:override { monitors = { example = { url = "http://whole", timeout = 1 } } }
      assert.equal(1, c.timeout().t)
      c:reset_override()
      assert.is_false(c.config:is_overridden())
      assert.is_true(config.monitors.example.url:is_overridden())
      assert.equal(5, c.timeout().t)
      assert.equal("http://fake", c.monitor().options.url)
    end)

    it("a subtree override resets singletons reading a leaf below it", function()
      local c = def()
      assert.equal(5, c.timeout().t)
      local _ <close> = config.monitors:override { example = { timeout = "7" } }
      assert.equal(7, c.timeout().t)
      assert.is_nil(c.monitor().options.url)
    end)

    it("the whole configuration can be overridden", function()
      local c = def()
      c.monitor()
      do
        local _ <close> = c.config:override { monitors = { example = { url = "http://test" } } }
        assert.equal("http://test", c.monitor().options.url)
        assert.is_nil(config.monitors.example.timeout())
        local _ <close> = config.monitors.example.timeout:override(1)
        assert.equal(1, config.monitors.example.timeout())
      end
      assert.equal("http://example.com", c.monitor().options.url)
    end)

    it("a converted reference overrides its option", function()
      local h = config.monitors.example.timeout:as_int():override("9")
      assert.equal("9", config.monitors.example.timeout())
      assert.equal(9, config.monitors.example.timeout:as_int()())
      assert.is_true(config.monitors.example.timeout:is_overridden())
      h:remove()
    end)

    it("an option can be overridden with a provider", function()
      local computed = providers.Callable(function() return "http://computed" end)
      config.monitors.example.url:override(computed)
      assert.equal("http://computed", config.monitors.example().url)
      config.monitors.example.url:reset_override()
    end)

    it("an overriding table is copied too", function()
      local _ <close> = config.monitors:override { example = { url = "http://o" } }
      local first = config.monitors.example()
      first.url = "corrupted"
      assert.equal("http://o", config.monitors.example().url)
    end)
  end)

  describe("references made in the builder", function()
    it("override the provider they name", function()
      local ref
      local c2 = container(function(c)
        ref = c.later
        c.user = providers.Factory(record, { later = ref })
        c.later = providers.Object("real")
      end)()
      local h = ref:override("stub")
      assert.is_true(c2.later:is_overridden())
      assert.is_true(ref:is_overridden())
      assert.equal("stub", c2.user().later)
      h:remove()
      ref:reset_override()
      assert.equal("real", c2.user().later)
    end)
  end)
end)

-- The tutorial's two tests, against a container shaped like monitors.lua.
-- HttpMonitor, the log and the dispatcher are minimal stand-ins here; the
-- real ones arrive with the daemon.
describe("tutorial", function()
  local records
  local function HttpMonitor(kw)
    local options = kw.options
    return {
      check = function()
        local response = kw.http_client:request(options.method, options.url, options.timeout)
        records[#records + 1] = string.format(
          "Check\n    %s %s\n    response code: %d\n    content length: %d",
          options.method, options.url, response.status, response.content_length)
      end,
    }
  end
  local function Dispatcher(kw)
    local running = false
    return {
      start = function()
        running = true
        while running do
          for _, monitor in ipairs(kw.monitors) do monitor:check() end
          coroutine.yield()
        end
      end,
      stop = function() running = false end,
    }
  end

  local config = providers.Configuration {
    log = { level = "INFO", format = "[%(asctime)s] [%(levelname)s] [%(name)s]: %(message)s" },
    monitors = {
      example = { method = "GET", url = "http://example.com", timeout = 5, check_every = 5 },
      httpbin = { method = "GET", url = "https://httpbin.org/get", timeout = 5, check_every = 5 },
    },
  }
  local definition = container(function(c)
    c.config = config
    c.http_client = providers.Singleton(function()
      return { request = function() error("no network in specs") end }
    end)
    c.example_monitor = providers.Factory(HttpMonitor,
      { http_client = c.http_client, options = config.monitors.example })
    c.httpbin_monitor = providers.Factory(HttpMonitor,
      { http_client = c.http_client, options = config.monitors.httpbin })
    c.dispatcher = providers.Factory(Dispatcher,
      { monitors = providers.List(c.example_monitor, c.httpbin_monitor) })
  end)

  local app
  before_each(function()
    records = {}
    app = definition()
    app.config:from_table {
      log = { level = "INFO", format = "%(message)s" },
      monitors = {
        example = { method = "GET", url = "http://fake-example.com", timeout = 1, check_every = 1 },
        httpbin = {
          method = "GET", url = "https://fake-httpbin.org/get", timeout = 1, check_every = 1,
        },
      },
    }
  end)

  it("checks the example monitor with a stub HTTP client", function()
    local http_client = { request = function() return { status = 200, content_length = 635 } end }
    do
      local _ <close> = app.http_client:override(http_client)
      app.example_monitor():check()
    end
    local text = table.concat(records, "\n")
    assert.matches("http://fake-example.com", text, 1, true)
    assert.matches("response code: 200", text, 1, true)
    assert.matches("content length: 635", text, 1, true)
  end)

  it("dispatches to both monitors", function()
    local example = mock({ check = function() end })
    local httpbin = mock({ check = function() end })
    do
      local _ <close> = app:override_providers {
        example_monitor = example, httpbin_monitor = httpbin,
      }
      local dispatcher = app.dispatcher()
      local task = coroutine.create(dispatcher.start)
      assert(coroutine.resume(task))
      dispatcher.stop()
      assert(coroutine.resume(task))
      assert.equal("dead", coroutine.status(task))
    end
    assert.spy(example.check).was_called()
    assert.spy(httpbin.check).was_called()
  end)
end)
