-- mw.Endpoint: health, readiness, the JSON API of monitor states and
-- POST /-/reload, over core.http_server; core.http_request is the client.
local cjson = require("cjson")
local mime = require("mime")
local mw = require("moonwatch")
local core = mw.core
local result = mw.result

local function monitor(name, interval, check)
  return { name = name, interval = interval or 0.05, check = check or function()
    return result.up({ status = 200, timings = { dns = 0.001, total = 0.01 } })
  end }
end

local function failing(name)
  return monitor(name, 0.05, function()
    return result.down("status 500, expected 200-299", "condition", { status = 500 })
  end)
end

local function dispatcher(monitors)
  return mw.Dispatcher{ monitors = monitors or { monitor("web") }, spread = false }
end

-- Runs fn(endpoint, port, dispatcher) in a task; both are stopped after it.
local function with_endpoint(kwargs, fn)
  kwargs.listen = kwargs.listen or "127.0.0.1:0"
  kwargs.dispatcher = kwargs.dispatcher or dispatcher()
  core.run(function()
    local ep = mw.Endpoint(kwargs)
    local _, port = ep:address()
    local ok, err = pcall(fn, ep, port, kwargs.dispatcher)
    kwargs.dispatcher:stop()
    ep:close()
    if not ok then error(err, 0) end
  end)
end

local function request(port, path, opts)
  opts = opts or {}
  opts.url = ("http://127.0.0.1:%d%s"):format(port, path)
  return assert(core.http_request(opts))
end

local function json_of(r)
  assert.equals("application/json", r.headers["content-type"])
  return cjson.decode(r.body)
end

-- Waits (in the task) until the monitor has had n results.
local function checks(d, name, n)
  local deadline = core.now() + 3
  while core.now() < deadline do
    local e = d.state:get(name)
    if e and e.checks >= n then return end
    core.sleep(0.01)
  end
  error("no " .. n .. " results of " .. name)
end

describe("mw.Endpoint", function()
  local quiet
  before_each(function() quiet = mw.log.capture() end)
  after_each(function() quiet:close() end)

  describe("as a consumer of the Dispatcher", function()
    it("listens when the schedule starts, serves it, and closes when it stops", function()
      local ep = mw.Endpoint{ listen = "127.0.0.1:0", lifecycle = true }
      local d = mw.Dispatcher{ monitors = { monitor("web") }, spread = false,
                               consumers = { mw.State(), ep } }
      assert.is_nil(ep.server) -- built, not listening: --check and --once open no port
      d:check_once()
      assert.is_nil(ep.server)
      core.run(function()
        d:start()
        local _, port = ep:address()
        checks(d, "web", 1)
        local body = json_of(request(port, "/api/v1/monitors/web"))
        assert.equals("UP", body.state)
        assert.equals(200, request(port, "/readyz").status)
        -- lifecycle with no daemon running: nothing to reload
        local r = request(port, "/-/reload", { method = "POST" })
        assert.equals(500, r.status)
        assert.equals("reload failed: no daemon runs to reload\n", r.body)
        d:stop()
      end)
      assert.equals(0, core.stats().handles)
      assert.truthy(quiet:text():find("Listening on 127.0.0.1:", 1, true))
    end)

    it("stops the start when its port is taken", function()
      core.run(function()
        local first = mw.Endpoint{ listen = "127.0.0.1:0", dispatcher = dispatcher() }
        local _, port = first:address()
        local ep = mw.Endpoint{ listen = "127.0.0.1:" .. port }
        local d = mw.Dispatcher{ monitors = { monitor("web") }, consumers = { mw.State(), ep } }
        local ok, err = pcall(d.start, d)
        assert.is_false(ok)
        assert.matches("^Endpoint: .*" .. port, err)
        first.dispatcher:stop()
        first:close()
        d:stop()
      end)
    end)
  end)

  describe("options", function()
    local function fails(kwargs, pattern)
      local ok, err = pcall(mw.Endpoint, kwargs)
      assert.is_false(ok)
      assert.matches(pattern, err)
    end

    it("says what is wrong with them", function()
      local d = dispatcher()
      fails(nil, "Endpoint: expected a table of options")
      fails({ dispatcher = d, listn = "x" }, "Endpoint: unknown option 'listn'")
      fails({ dispatcher = {} }, "Endpoint: option 'dispatcher' must be a Dispatcher")
      fails({ dispatcher = d, state = {} }, "option 'state' must be a State")
      fails({ dispatcher = d, reload = true }, "option 'reload' must be a function")
      fails({ dispatcher = d, lifecycle = "yes" }, "option 'lifecycle' must be a boolean")
      fails({ dispatcher = d, metrics = {} }, "option 'metrics' must have a mount%(server, path%)")
      fails({ dispatcher = d, listen = 80 }, "option 'listen' must be a string")
      fails({ dispatcher = d, listen = "nowhere" }, "^Endpoint: 'nowhere' is not host:port")
      fails({ dispatcher = d, listen = "127.0.0.1:0", max_connections = 0 },
        "^Endpoint: option 'max_connections' must be an integer")
      fails({ dispatcher = d, listen = "127.0.0.1:0", auth = { user = "u" } },
        "^Endpoint: option 'auth' needs bearer, or both user and password")
    end)

    it("refuses lifecycle beyond loopback without auth", function()
      fails({ dispatcher = dispatcher(), listen = "0.0.0.0:0", lifecycle = true,
              reload = function() return true end },
        "^Endpoint: lifecycle %(POST /%-/reload%) on 0%.0%.0%.0:0, beyond loopback, needs auth")
      assert.equals(0, core.stats().handles) -- the server it opened is closed
    end)

    it("listens on 127.0.0.1 by default", function()
      assert.equals("127.0.0.1:9321", mw.Endpoint.DEFAULT_LISTEN)
    end)
  end)

  describe("health", function()
    it("/healthz is 200 while the loop turns", function()
      with_endpoint({}, function(_, port)
        local r = request(port, "/healthz")
        assert.equals(200, r.status)
        assert.equals("ok\n", r.body)
        local head = request(port, "/healthz", { method = "HEAD" })
        assert.equals(200, head.status)
        assert.equals("3", head.headers["content-length"])
        local post = request(port, "/healthz", { method = "POST", body = "" })
        assert.equals(405, post.status)
        assert.equals("GET, HEAD", post.headers.allow)
      end)
    end)

    it("/readyz is 503 until the Dispatcher runs, 200 then", function()
      with_endpoint({}, function(_, port, d)
        assert.equals(503, request(port, "/readyz").status)
        d:start()
        local r = request(port, "/readyz")
        assert.equals(200, r.status)
        assert.equals("ready\n", r.body)
      end)
    end)

    it("closes when the Dispatcher stops, so the loop can end", function()
      local d = dispatcher()
      core.run(function()
        local ep = mw.Endpoint{ listen = "127.0.0.1:0", dispatcher = d }
        local _, port = ep:address()
        d:start()
        assert.equals(200, request(port, "/readyz").status)
        d:stop()
        local r, _, kind = core.http_request{ url = ("http://127.0.0.1:%d/readyz"):format(port) }
        assert.is_nil(r)
        assert.equals("refused", kind)
      end)
      core.run() -- returns: nothing is left listening
      assert.equals(0, core.stats().handles)
    end)
  end)

  describe("/api/v1/monitors", function()
    it("lists every monitor, PENDING before its first result", function()
      with_endpoint({ dispatcher = dispatcher({ monitor("web", 7), monitor("db", 9) }) },
        function(_, port)
          local body = json_of(request(port, "/api/v1/monitors"))
          assert.equals(2, #body.monitors)
          local web = body.monitors[1]
          assert.equals("web", web.name)
          assert.equals("PENDING", web.state)
          assert.equals(7, web.interval)
          assert.equals(0, web.checks)
          assert.is_nil(web.last_result)
          assert.is_nil(web.next_check) -- not scheduled yet
          assert.equals("db", body.monitors[2].name)
        end)
    end)

    it("gives states, last results and the next check", function()
      local d = dispatcher({ monitor("web"), failing("api") })
      with_endpoint({ dispatcher = d }, function(_, port)
        d:start()
        checks(d, "web", 2)
        checks(d, "api", 2)
        local before = core.time()
        local body = json_of(request(port, "/api/v1/monitors"))
        local by = {}
        for _, m in ipairs(body.monitors) do by[m.name] = m end
        local web, api = by.web, by.api
        assert.equals("UP", web.state)
        assert.is_true(web.consecutive >= 2)
        assert.is_true(web.since <= before)
        assert.is_true(web.last_result.up)
        assert.equals(200, web.last_result.status)
        assert.same({ dns = 0.001, total = 0.01 }, web.last_result.timings)
        assert.is_number(web.last_result.at)
        assert.is_true(web.next_check >= before - 0.001 and web.next_check <= before + 0.06,
          "next check " .. tostring(web.next_check) .. " vs " .. before)
        assert.equals("DOWN", api.state)
        assert.equals("status 500, expected 200-299", api.reason)
        assert.is_false(api.last_result.up)
        assert.equals("condition", api.last_result.kind)
        assert.equals(500, api.last_result.status)
        assert.equals("status 500, expected 200-299", api.last_result.reason)
      end)
    end)

    it("is an empty list without monitors", function()
      with_endpoint({ dispatcher = dispatcher({}) }, function(_, port)
        assert.equals('{"monitors":[]}', request(port, "/api/v1/monitors").body)
      end)
    end)

    it("gives one monitor by its name, percent-decoded", function()
      local d = dispatcher({ monitor("my site") })
      with_endpoint({ dispatcher = d }, function(_, port)
        d:start()
        checks(d, "my site", 1)
        local m = json_of(request(port, "/api/v1/monitors/my%20site"))
        assert.equals("my site", m.name)
        assert.equals("UP", m.state)
        assert.is_true(m.last_result.up)
      end)
    end)

    it("answers 404 with a JSON error for an unknown name", function()
      with_endpoint({}, function(_, port)
        local r = request(port, "/api/v1/monitors/nope")
        assert.equals(404, r.status)
        assert.same({ error = "no monitor named 'nope'" }, json_of(r))
        assert.equals(405, request(port, "/api/v1/monitors", { method = "DELETE" }).status)
      end)
    end)

    it("reads the State it is given", function()
      local state = mw.State()
      local d = mw.Dispatcher{ monitors = { failing("x") }, consumers = { state }, spread = false }
      with_endpoint({ dispatcher = d, state = state }, function(_, port)
        d:start()
        checks(d, "x", 1)
        assert.equals("DOWN", json_of(request(port, "/api/v1/monitors/x")).state)
      end)
    end)
  end)

  describe("POST /-/reload", function()
    it("is not there without lifecycle", function()
      with_endpoint({ reload = function() return true end }, function(_, port)
        assert.equals(404, request(port, "/-/reload", { method = "POST", body = "" }).status)
      end)
    end)

    it("calls reload: 200 when it succeeds, 405 for another method", function()
      local calls = 0
      with_endpoint({ lifecycle = true, reload = function()
        calls = calls + 1
        core.sleep(0.01) -- it may wait
        return true
      end }, function(_, port)
        local r = request(port, "/-/reload", { method = "POST", body = "" })
        assert.equals(200, r.status)
        assert.equals("configuration reloaded\n", r.body)
        local g = request(port, "/-/reload")
        assert.equals(405, g.status)
        assert.equals("POST", g.headers.allow)
      end)
      assert.equals(1, calls)
    end)

    it("answers 500 with the message when reload fails or raises", function()
      local answer = { nil, "monitors.lua:3: unexpected symbol" }
      with_endpoint({ lifecycle = true, reload = function()
        if answer == "raise" then error("boom", 0) end
        return table.unpack(answer, 1, 2)
      end }, function(_, port)
        local r = request(port, "/-/reload", { method = "POST", body = "" })
        assert.equals(500, r.status)
        assert.equals("reload failed: monitors.lua:3: unexpected symbol\n", r.body)
        answer = "raise"
        r = request(port, "/-/reload", { method = "POST", body = "" })
        assert.equals(500, r.status)
        assert.equals("reload failed: boom\n", r.body)
        answer = {}
        r = request(port, "/-/reload", { method = "POST", body = "" })
        assert.equals("reload failed: the reload function returned nothing\n", r.body)
      end)
    end)

    it("answers 409 while a reload is in progress", function()
      with_endpoint({ lifecycle = true, reload = function()
        core.sleep(0.1)
        return true
      end }, function(_, port)
        local first = core.spawn(function()
          return request(port, "/-/reload", { method = "POST", body = "" }).status
        end)
        core.sleep(0.03)
        assert.equals(409, request(port, "/-/reload", { method = "POST", body = "" }).status)
        while first:status() ~= "done" do core.sleep(0.01) end
        assert.same({ true, 200 }, { first:result() })
      end)
    end)
  end)

  describe("auth", function()
    local bearer = { headers = { Authorization = "Bearer tok" } }

    it("needs the credentials on every route", function()
      with_endpoint({ auth = { bearer = "tok" }, lifecycle = true,
                      reload = function() return true end }, function(_, port)
        for _, path in ipairs({ "/healthz", "/readyz", "/api/v1/monitors", "/nope" }) do
          local r = request(port, path)
          assert.equals(401, r.status, path)
          assert.equals('Bearer realm="moonwatch"', r.headers["www-authenticate"])
        end
        assert.equals(200, request(port, "/healthz", bearer).status)
        assert.equals(401, request(port, "/-/reload", { method = "POST", body = "" }).status)
        assert.equals(200, request(port, "/-/reload",
          { method = "POST", body = "", headers = bearer.headers }).status)
      end)
    end)

    it("with scope marked, only on /-/reload, also beyond loopback", function()
      local basic = { Authorization = "Basic " .. mime.b64("ops:pw") }
      with_endpoint({ listen = "0.0.0.0:0", auth = { user = "ops", password = "pw",
                                                     scope = "marked" },
                      lifecycle = true, reload = function() return true end },
        function(_, port)
          assert.equals(200, request(port, "/healthz").status)
          assert.equals(401, request(port, "/-/reload", { method = "POST", body = "" }).status)
          assert.equals(200, request(port, "/-/reload",
            { method = "POST", body = "", headers = basic }).status)
        end)
    end)
  end)

  describe("auth from files", function()
    local dir
    before_each(function() dir = os.tmpname() end)
    after_each(function() os.remove(dir) end)

    local function write(text)
      local f = assert(io.open(dir, "w"))
      f:write(text)
      f:close()
    end

    it("reads the token or password from the first line of a file", function()
      write("from-file\nignored\n")
      with_endpoint({ auth = { bearer_file = dir } }, function(_, port)
        assert.equals(401, request(port, "/healthz").status)
        assert.equals(200, request(port, "/healthz",
          { headers = { Authorization = "Bearer from-file" } }).status)
      end)
      with_endpoint({ auth = { user = "u", password_file = dir } }, function(_, port)
        assert.equals(200, request(port, "/healthz",
          { headers = { Authorization = "Basic " .. mime.b64("u:from-file") } }).status)
      end)
    end)

    it("says what is wrong with the file", function()
      local d = dispatcher()
      local ok, err = pcall(mw.Endpoint, { dispatcher = d, listen = "127.0.0.1:0",
                                           auth = { bearer_file = "/nonexistent/token" } })
      assert.is_false(ok)
      assert.matches("^Endpoint: option 'auth.bearer_file': cannot read /nonexistent/token", err)
      write("\n")
      ok, err = pcall(mw.Endpoint, { dispatcher = d, listen = "127.0.0.1:0",
                                     auth = { user = "u", password_file = dir } })
      assert.is_false(ok)
      assert.matches("option 'auth.password_file': .* is empty", err)
      ok, err = pcall(mw.Endpoint, { dispatcher = d, listen = "127.0.0.1:0",
                                     auth = { bearer = "x", bearer_file = dir } })
      assert.is_false(ok)
      assert.matches("takes bearer or bearer_file, not both", err)
    end)
  end)

  describe("metrics", function()
    it("mounts them on /metrics of its server", function()
      local mounted
      local metrics = { mount = function(_, server, path) mounted = { server, path } end }
      with_endpoint({ metrics = metrics }, function(ep)
        assert.equals(ep.server, mounted[1])
        assert.equals("/metrics", mounted[2])
      end)
    end)
  end)
end)
