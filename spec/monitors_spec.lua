-- HttpMonitor against the local fixture, its option checks, Monitor
-- subclasses, and checks that raise inside the dispatcher.
local mw = require("moonwatch")
local core = require("moonwatch.core")
local fixture = require("support.fixture")

local ASCTIME = "%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d,%d%d%d"

-- A Lua pattern for one whole record: the template with <asctime> and
-- <seconds> standing for the values that change from run to run.
local function record_pattern(template)
  local p = template:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")
  p = p:gsub("<asctime>", (ASCTIME:gsub("%%", "%%%%")))
  p = p:gsub("<seconds>", "%%d+%%.%%d+")
  return "^" .. p .. "$"
end

local function monitor(client, options)
  local o = { method = "GET", timeout = 5, check_every = 5 }
  for k, v in pairs(options) do o[k] = v end
  return mw.monitors.HttpMonitor{ http_client = client, options = o }
end

local function build_error(options)
  local ok, err = pcall(monitor, mw.http.Client(), options)
  assert.is_false(ok, "expected HttpMonitor to refuse the options")
  return err
end

-- Runs one check in a task, capturing its records: records, check results...
local function check(m)
  local cap <close> = mw.log.capture()
  local results
  core.run(function() results = table.pack(m:check()) end)
  return cap, table.unpack(results, 1, results.n)
end

describe("monitors", function()
  local srv

  lazy_setup(function()
    mw.log.setup{ level = "INFO" }
    srv = fixture.start()
  end)
  lazy_teardown(function() if srv then srv:stop() end end)

  after_each(function()
    assert.same({ tasks = 0, handles = 0 }, core.stats())
  end)

  describe("HttpMonitor", function()
    it("logs the tutorial's record for a 200", function()
      local url = srv:url("/page")
      local cap, resp = check(monitor(mw.http.Client(), { url = url }))
      assert.equal(200, resp.status)
      assert.equal(1, #cap)
      assert.equal("INFO", cap[1].level)
      assert.equal("HttpMonitor", cap[1].name)
      assert.matches(record_pattern(table.concat({
        "[<asctime>] [INFO] [HttpMonitor]: Check",
        "    GET " .. url,
        "    response code: 200",
        "    content length: 648",
        "    request took: <seconds> seconds",
        "",
      }, "\n")), cap[1].text)
    end)

    it("judges a 404 down: a WARNING with the status and the reason", function()
      local cap, r = check(monitor(mw.http.Client(), { url = srv:url("/status/404") }))
      assert.is_false(r.up)
      assert.equal(404, r.status)
      assert.equal("status 404, expected 200-299", r.reason)
      assert.equal("condition", r.kind)
      assert.equal("WARNING", cap[1].level)
      assert.matches(record_pattern(table.concat({
        "[<asctime>] [WARNING] [HttpMonitor]: Check failed",
        "    GET " .. srv:url("/status/404"),
        "    response code: 404",
        "    reason: status 404, expected 200-299",
        "    request took: <seconds> seconds",
        "",
      }, "\n")), cap[1].text)
    end)

    it("gives the check's measurements as record fields, the monitor's name first", function()
      local url = srv:url("/status/503")
      local cap, r = check(monitor(mw.http.Client(), { url = url, name = "api" }))
      local f = cap[1].fields
      assert.same({ "api", "GET", url, false, "status 503, expected 200-299", "condition", 503 },
        { f.monitor, f.method, f.url, f.up, f.reason, f.kind, f.status })
      assert.equal(r.duration, f.duration)
      assert.equal(r.timings, f.timings)
      assert.is_number(f.timings.connect)
      cap = check(monitor(mw.http.Client(), { url = srv:url("/page"), name = "page" }))
      assert.same({ "page", true, 200, 648 },
        { cap[1].fields.monitor, cap[1].fields.up, cap[1].fields.status, cap[1].fields.size })
      assert.is_nil(cap[1].fields.reason)
    end)

    it("writes those fields as JSON members with log.format=json", function()
      local dir = fixture.tmpdir()
      local path = dir .. "/records.json"
      local sink = mw.log.setup{ format = "json", file = path, level = "INFO" }
      local m = monitor(mw.http.Client(), { url = srv:url("/status/500"), name = "api" })
      core.run(function() m:check() end)
      assert.is_true(sink:flush())
      mw.log.setup{ level = "INFO" }
      local rec = require("cjson").decode(fixture.read_file(path))
      fixture.rmtree(dir)
      assert.same({ "WARNING", "HttpMonitor", "api", 500, false, "status 500, expected 200-299" },
        { rec.level, rec.logger, rec.monitor, rec.status, rec.up, rec.reason })
      assert.matches("^Check failed\n", rec.message)
      assert.is_number(rec.timings.total)
    end)

    it("sends the configured method", function()
      local cap = check(monitor(mw.http.Client(), { url = srv:url("/page"), method = "HEAD" }))
      assert.truthy(cap[1].message:find("HEAD " .. srv:url("/page"), 1, true))
      assert.truthy(cap[1].message:find("content length: 0\n", 1, true))
    end)

    -- A failed transfer is a WARNING naming the kind, curl's message, the
    -- URL and the time, and check returns a down result with them.
    local function assert_failure(cap, url, kind, message_part, r)
      assert.is_false(r.up)
      assert.equal(kind, r.kind)
      local err = r.reason
      assert.truthy(err:find("^" .. kind .. ": "), err)
      assert.equal(url, cap[1].fields.url) -- the logger's field; the result names the monitor
      assert.equal(1, #cap)
      assert.equal("WARNING", cap[1].level)
      assert.matches(record_pattern(table.concat({
        "[<asctime>] [WARNING] [HttpMonitor]: Check failed",
        "    GET " .. url,
        "    error: " .. err,
        "    request took: <seconds> seconds",
        "",
      }, "\n")), cap[1].text)
      assert.truthy(err:find(message_part, 1, true), err)
    end

    it("logs a refused connection as a failure", function()
      -- The fixture's port once it has stopped answers nothing: take a
      -- fresh server's port and stop it.
      local gone = fixture.start()
      local url = gone:url("/page")
      gone:stop()
      local cap, r = check(monitor(mw.http.Client(), { url = url }))
      assert_failure(cap, url, "refused", "Couldn't connect to server", r)
    end)

    it("logs a timeout as a failure, after the timeout", function()
      local url = srv:url("/hang")
      local started = core.now()
      local cap, r = check(monitor(mw.http.Client(), { url = url, timeout = 0.3 }))
      local took = core.now() - started
      assert_failure(cap, url, "timeout", "timed out", r)
      assert.is_true(took >= 0.29 and took < 2, "took " .. took)
      local seconds = tonumber(cap[1].message:match("request took: ([%d.]+) seconds"))
      assert.is_true(seconds >= 0.29 and seconds < 2, "logged " .. tostring(seconds))
    end)

    it("logs a name that does not resolve as a failure", function()
      local url = "http://nope.invalid/"
      local cap, r = check(monitor(mw.http.Client(), { url = url, timeout = 3 }))
      assert_failure(cap, url, "dns", "nope.invalid", r)
    end)

    it("returns a down result from a failed check, through core.run too", function()
      local m = monitor(mw.http.Client(), { url = "http://nope.invalid/", timeout = 3 })
      local _, r = check(m)
      assert.is_false(r.up)
      assert.equal("dns", r.kind)
      assert.equal(m.name, r.monitor)
      local _ <close> = mw.log.capture()
      -- core.run(fn) returns what the task returned; so does task:result()
      -- after `true` (the CLI's --once reads a check's results that way).
      assert.equal(r.reason, core.run(function() return m:check() end).reason)
      local task = core.spawn(function() return m:check() end)
      core.run(task)
      local ok, again = task:result()
      assert.is_true(ok)
      assert.equal(r.reason, again.reason)
    end)

    it("sends its request through the injected client", function()
      local client = { request = spy.new(function() return { status = 204, size = 0 } end) }
      local m = monitor(client, { url = "http://stub.test/x", timeout = 2,
                                  headers = { ["X-Probe"] = "1" } })
      local cap = check(m)
      assert.spy(client.request).was.called(1)
      assert.spy(client.request).was.called_with(client, {
        method = "GET", url = "http://stub.test/x", timeout = 2, headers = { ["X-Probe"] = "1" },
        follow_redirects = true, max_redirects = 10,
      })
      assert.truthy(cap[1].message:find("response code: 204", 1, true))
    end)

    it("follows redirects by default: a redirect loop is down, too_many_redirects", function()
      local cap, r = check(monitor(mw.http.Client(), { url = srv:url("/loop") }))
      assert.is_false(r.up)
      assert.equal("too_many_redirects", r.kind)
      assert.matches("^too_many_redirects: ", r.reason)
      assert.equal("WARNING", cap[1].level)
      local _, ok = check(monitor(mw.http.Client(), { url = srv:url("/redirect/3") }))
      assert.is_true(ok.up)
      assert.equal(200, ok.status)
    end)

    describe("refuses bad options", function()
      it("an unknown option, naming the closest known one", function()
        assert.equal("options: unknown option 'methd' (did you mean 'method'?)",
          build_error{ url = "http://x.test", methd = "HEAD" })
        assert.equal("options: unknown option 'folow_redirects' (did you mean "
          .. "'follow_redirects'?)", build_error{ url = "http://x.test", folow_redirects = true })
        assert.equal("options: unknown option 'zzzzzzzz'",
          build_error{ url = "http://x.test", zzzzzzzz = 1 })
      end)

      it("a bad or unknown condition, naming the path of expect once", function()
        assert.equal('options.expect.status: "abc" is not a status code (200), a class ("2xx"),'
          .. ' a range ("200-299" or "200..299") or a list of those',
          build_error{ url = "http://x.test", expect = { status = "abc" } })
        assert.equal("options: unknown condition 'staus' (did you mean 'status'?)",
          build_error{ url = "http://x.test", expect = { staus = 200 } })
      end)

      it("url not a string", function()
        assert.equal("options.url must be an http:// or https:// URL string, got 42",
          build_error{ url = 42 })
        assert.equal("options.url must be an http:// or https:// URL string, got nil",
          build_error{})
        assert.equal("options.url must be an http:// or https:// URL string, got 'example.com'",
          build_error{ url = "example.com" })
      end)

      it("check_every not above 0", function()
        assert.equal("options.check_every must be a number of seconds greater than 0, got 0",
          build_error{ url = "http://x.test", check_every = 0 })
        assert.equal("options.check_every must be a number of seconds greater than 0, got -1",
          build_error{ url = "http://x.test", check_every = -1 })
        assert.equal("options.check_every must be a number of seconds greater than 0, "
          .. 'got "5s" (a string)',
          build_error{ url = "http://x.test", check_every = "5s" })
      end)

      it("an unknown method", function()
        assert.equal("options.method 'FETCH' is not a known HTTP method (use GET, HEAD, POST, "
          .. "PUT, PATCH, DELETE or OPTIONS)",
          build_error{ url = "http://x.test", method = "FETCH" })
      end)

      it("timeout missing or not above 0", function()
        local o = { url = "http://x.test", method = "GET", check_every = 5 }
        local ok, err = pcall(mw.monitors.HttpMonitor, { http_client = {}, options = o })
        assert.is_false(ok)
        assert.equal("options.timeout must be a number of seconds greater than 0, got nil", err)
        assert.equal("options.timeout must be a number of seconds greater than 0, got 0",
          build_error{ url = "http://x.test", timeout = 0 })
      end)

      it("request options the check would fail on, with the check's message", function()
        local cases = {
          { { headers = { ["X-A"] = "v\r\nInjected: yes" } },
            "header 'X-A' has a bad name or a line break in its value" },
          { { url = "http://x.test/a b" }, "bad url 'http://x.test/a b': a space at offset 15" },
          { { url = "http://x.test/a\nb" }, "a control character at offset 15" },
          { { url = "http://x.test/a\0b" }, "option 'url' must not contain a NUL byte" },
          { { timeout = 100000 }, "option 'timeout' must be a number of seconds in (0, 86400]" },
          { { max_body = -1 }, "option 'max_body' must be a non-negative integer, got -1" },
          { { body = {} }, "option 'body' must be a string, got table" },
          { { trust_redirects = "yes" }, "option 'trust_redirects' must be a boolean" },
        }
        for _, case in ipairs(cases) do
          local o = { url = "http://x.test/" }
          for k, v in pairs(case[1]) do o[k] = v end
          local err = build_error(o)
          assert.matches("^options: http request: ", err)
          assert.matches(case[2], err, 1, true)
          -- a fake client without :check gets the same checks
          local ok, err2 = pcall(monitor, { request = function() end }, o)
          assert.is_false(ok)
          assert.equal(err, err2)
        end
      end)

      it("a client's defaults that the check would fail on", function()
        local ok, err = pcall(monitor, mw.http.Client{ headers = { ["Bad Name"] = "x" } },
          { url = "http://x.test/" })
        assert.is_false(ok)
        assert.equal("options: http request: header 'Bad Name' has a bad name or a line "
          .. "break in its value", err)
      end)

      it("no options or no client", function()
        local ok, err = pcall(mw.monitors.HttpMonitor, { http_client = {} })
        assert.is_false(ok)
        assert.equal("options must be a table (method, url, timeout, check_every), got nil", err)
        ok, err = pcall(mw.monitors.HttpMonitor, { options = { url = "http://x.test" } })
        assert.is_false(ok)
        assert.equal("http_client is required", err)
      end)
    end)
  end)

  describe("Monitor:extend", function()
    local Counter = mw.monitors.Monitor:extend("Counter")
    function Counter:new(kwargs)
      self = mw.monitors.Monitor.new(self, { check_every = kwargs.check_every })
      self.count = 0
      return self
    end
    function Counter:check()
      core.sleep(0.001) -- a check may wait
      self.count = self.count + 1
      self.logger:info("check %d", self.count)
      return self.count
    end

    it("makes a class whose instances are monitors with a logger of its name", function()
      local m = Counter{ check_every = 0.5 }
      assert.equal(0.5, m.interval)
      assert.equal("Counter", m.name)
      assert.equal("Counter", m.logger.name)
      assert.same({ monitor = "Counter" }, m.logger.fields) -- every record names its monitor
      assert.equal(Counter, getmetatable(m))
      local cap, n = check(m)
      assert.equal(1, n)
      assert.equal("check 1", cap[1].message)
      assert.equal("Counter", cap[1].name)
    end)

    it("checks check_every in the base constructor", function()
      local ok, err = pcall(Counter, { check_every = 0 })
      assert.is_false(ok)
      assert.equal("check_every must be a number of seconds greater than 0, got 0", err)
    end)

    it("says so when a class forgets check", function()
      local Empty = mw.monitors.Monitor:extend("Empty")
      local m = Empty{ check_every = 1 }
      local ok, err = pcall(m.check, m)
      assert.is_false(ok)
      assert.matches("Empty:check%(%) is not defined", err)
    end)

    it("runs in the dispatcher at its interval", function()
      local m = Counter{ check_every = 0.05 }
      local d = mw.Dispatcher{ monitors = { m } }
      local cap <close> = mw.log.capture()
      core.run(function()
        d:start()
        core.sleep(0.22)
        d:stop()
      end)
      assert.is_true(m.count >= 3 and m.count <= 6, "ran " .. m.count .. " times")
      assert.equal(m.count + 3, #cap) -- its records, and Starting up / Shutting down...
    end)
  end)

  describe("a check that raises in the dispatcher", function()
    it("is logged with its traceback and the monitors carry on", function()
      local Broken = mw.monitors.Monitor:extend("Broken")
      local broken_calls = 0
      function Broken.check()
        broken_calls = broken_calls + 1
        local t = nil
        return t.field -- a bug in the check
      end
      local good = { interval = 0.05, name = "good", check = spy.new(function() end) }
      local d = mw.Dispatcher{ monitors = { Broken{ check_every = 0.05, name = "broken" }, good } }
      local cap <close> = mw.log.capture()
      core.run(function()
        d:start()
        core.sleep(0.22)
        d:stop()
      end)

      assert.is_true(broken_calls >= 3, "the broken monitor ran " .. broken_calls .. " times")
      assert.is_true(#good.check.calls >= 3, "the good monitor ran " .. #good.check.calls)
      local errors = {}
      for _, rec in ipairs(cap) do
        if rec.level == "ERROR" then errors[#errors + 1] = rec end
      end
      assert.equal(broken_calls, #errors)
      local rec = errors[1]
      assert.equal("Dispatcher", rec.name)
      assert.matches("^Error executing monitor check %(broken%)\n", rec.message)
      assert.matches("monitors_spec%.lua:%d+: attempt to index a nil value %(local 't'%)",
        rec.message)
      assert.matches("stack traceback:", rec.message, 1, true)
      assert.matches("\n%s*spec/monitors_spec%.lua:%d+: in ", rec.message)
      assert.matches("^%[" .. ASCTIME .. "%] %[ERROR%] %[Dispatcher%]: Error executing", rec.text)
      assert.equal(broken_calls, d:stats().failed)
    end)
  end)
end)
