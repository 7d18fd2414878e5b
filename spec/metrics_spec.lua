-- Metrics: core.metrics (the registry and its exposition) and mw.Metrics
-- (results, states and alerts into it), with real checks against the local
-- fixture, and promtool's verdict on the text.
local mw = require("moonwatch")
local core = require("moonwatch.core")
local fixture = require("support.fixture")

-- The samples of an exposition: "name{labels}" -> value, and the families
-- that have HELP and TYPE lines (counted).
local function parse(text)
  local samples, help, types = {}, {}, {}
  for line in text:gmatch("[^\n]+") do
    local h = line:match("^# HELP (%S+) ")
    local t, ty = line:match("^# TYPE (%S+) (%S+)$")
    if h then
      help[h] = (help[h] or 0) + 1
    elseif t then
      types[t] = ty
    else
      local key, value = line:match("^(.*) (%S+)$")
      assert(key, "not a sample line: " .. line)
      assert.is_nil(samples[key], "sample twice: " .. key)
      samples[key] = tonumber(value) or value
    end
  end
  return samples, help, types
end

local function monitor_opts(url, extra)
  local o = { method = "GET", url = url, timeout = 5, check_every = 60 }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

describe("core.metrics", function()
  after_each(function()
    assert.same({ tasks = 0, handles = 0 }, core.stats())
  end)

  it("gives each family HELP and TYPE once, and every figure of up, down and pending", function()
    local r = core.metrics()
    local up, down = r:monitor("up"), r:monitor("down")
    r:monitor("pending")
    up:observe(true, 0.25, 200, 648, 2, 0.001, 0.002, 0.003, 0.004, 0.005, 1.9e9)
    up:state("up")
    down:observe(false, 5, 0, 0, 0, 0, 0, 0, 0, 0, nil)
    down:observe(false, 4.5, 0, 0, 0, 0, 0, 0, 0, 0, nil)
    down:state("down")
    local s, help, types = parse(r:render())
    for name, n in pairs(help) do assert.equal(1, n, name) end
    for _, name in ipairs{ "probe_success", "probe_duration_seconds", "probe_http_status_code",
                           "probe_http_content_length", "probe_http_redirects",
                           "probe_http_duration_seconds", "probe_ssl_earliest_cert_expiry",
                           "moonwatch_monitor_state", "moonwatch_checks_total",
                           "moonwatch_ticks_skipped_total", "moonwatch_schedule_lateness_seconds",
                           "moonwatch_http_transfers_in_flight", "moonwatch_notifications_total",
                           "moonwatch_config_last_reload_successful", "moonwatch_build_info",
                           "moonwatch_config_last_reload_success_timestamp_seconds",
                           "process_cpu_seconds_total", "process_resident_memory_bytes",
                           "process_open_fds", "process_start_time_seconds" } do
      assert.equal(1, help[name], name)
      assert.truthy(types[name], name)
    end
    assert.equal("counter", types.moonwatch_checks_total)
    assert.equal("histogram", types.moonwatch_schedule_lateness_seconds)
    assert.equal(1, s['probe_success{monitor="up"}'])
    assert.equal(0, s['probe_success{monitor="down"}'])
    assert.equal(0.25, s['probe_duration_seconds{monitor="up"}'])
    assert.equal(4.5, s['probe_duration_seconds{monitor="down"}'])
    assert.equal(200, s['probe_http_status_code{monitor="up"}'])
    assert.equal(0, s['probe_http_status_code{monitor="down"}'])
    assert.equal(648, s['probe_http_content_length{monitor="up"}'])
    assert.equal(2, s['probe_http_redirects{monitor="up"}'])
    assert.equal(0.003, s['probe_http_duration_seconds{monitor="up",phase="tls"}'])
    assert.equal(0.005, s['probe_http_duration_seconds{monitor="up",phase="transfer"}'])
    assert.equal(1.9e9, s['probe_ssl_earliest_cert_expiry{monitor="up"}'])
    assert.is_nil(s['probe_ssl_earliest_cert_expiry{monitor="down"}'])
    -- pending: no probe_* at all, but its state and zero counters
    for key in pairs(s) do assert.is_nil(key:match('^probe_.*monitor="pending"'), key) end
    assert.equal(1, s['moonwatch_monitor_state{monitor="pending",state="pending"}'])
    assert.equal(0, s['moonwatch_monitor_state{monitor="pending",state="up"}'])
    assert.equal(1, s['moonwatch_monitor_state{monitor="down",state="down"}'])
    assert.equal(0, s['moonwatch_monitor_state{monitor="down",state="maintenance"}'])
    assert.equal(1, s['moonwatch_checks_total{monitor="up",result="up"}'])
    assert.equal(2, s['moonwatch_checks_total{monitor="down",result="down"}'])
    assert.equal(0, s['moonwatch_checks_total{monitor="pending",result="up"}'])
    local build = 'moonwatch_build_info{version="' .. core.version .. '",lua="'
      .. _VERSION:match("%d+%.%d+")
    local found
    for key, v in pairs(s) do
      if key:sub(1, #build) == build then found = v end
    end
    assert.equal(1, found)
  end)

  it("escapes odd monitor names and label values once, as the format says", function()
    local r = core.metrics()
    r:monitor('a"b\\c\nd é'):state("up")
    local g = r:gauge("odd_info", "help with \\ and\nnewline", { "v" })
    g:set(1, 'x"\\\ny')
    local text = r:render()
    assert.truthy(text:find('moonwatch_monitor_state{monitor="a\\"b\\\\c\\nd é",state="up"} 1\n',
      1, true))
    assert.truthy(text:find("# HELP odd_info help with \\\\ and\\nnewline\n", 1, true))
    assert.truthy(text:find('odd_info{v="x\\"\\\\\\ny"} 1\n', 1, true))
  end)

  it("has sane process figures", function()
    local s = parse(core.metrics():render())
    local now = core.time()
    assert.is_true(s.process_cpu_seconds_total > 0)
    assert.is_true(s.process_resident_memory_bytes > 1e6)
    assert.is_true(s.process_virtual_memory_bytes >= s.process_resident_memory_bytes)
    assert.is_true(s.process_open_fds >= 3)
    assert.is_true(s.process_max_fds >= s.process_open_fds)
    assert.is_true(s.process_start_time_seconds <= now + 1)
    assert.is_true(s.process_start_time_seconds > now - 86400)
  end)

  it("sets families from Lua: gauges, counters, on_collect, the reload gauges", function()
    local r = core.metrics()
    local c = r:counter("x_events_total", "Events.", { "kind" })
    c:add(2, "a")
    c:add(1, "a")
    c:set(10, "b")
    assert.equal(3, c:value("a"))
    assert.equal(0, c:value("never"))
    local g = r:gauge("x_level", "Level.")
    g:set(-1.5)
    local calls = 0
    r:on_collect(function() calls = calls + 1; g:set(calls) end)
    local s = parse(r:render())
    assert.equal(3, s['x_events_total{kind="a"}'])
    assert.equal(10, s['x_events_total{kind="b"}'])
    assert.is_nil(s['x_events_total{kind="never"}'])
    assert.equal(1, s.x_level)
    assert.equal(1, s.moonwatch_config_last_reload_successful)
    r:reloaded(false)
    s = parse(r:render())
    assert.equal(2, s.x_level)
    assert.equal(0, s.moonwatch_config_last_reload_successful)
    r:reloaded(true, 1234.5)
    s = parse(r:render())
    assert.equal(1, s.moonwatch_config_last_reload_successful)
    assert.equal(1234.5, s.moonwatch_config_last_reload_success_timestamp_seconds)
    local notified = r:family("moonwatch_notifications_total")
    notified:set(4, "webhook", "sent")
    assert.equal(4, parse(r:render())['moonwatch_notifications_total{notifier="webhook",'
      .. 'outcome="sent"}'])
  end)

  it("keeps rendering when an on_collect function raises", function()
    local r = core.metrics()
    r:on_collect(function() error("collector broke") end)
    assert.truthy(r:render():find("process_open_fds", 1, true))
  end)

  it("removes a series, and lets its name be taken again", function()
    local r = core.metrics()
    local s = r:monitor("gone")
    s:observe(true, 1)
    s:remove()
    s:remove() -- twice is harmless
    assert.is_nil(r:render():find('monitor="gone"', 1, true))
    local again = r:monitor("gone")
    again:state("down")
    assert.truthy(r:render():find('moonwatch_monitor_state{monitor="gone",state="down"} 1', 1,
      true))
  end)

  it("refuses bad input with clear errors", function()
    local r = core.metrics()
    local s = r:monitor("api")
    local function err(f, ...)
      local ok, e = pcall(f, ...)
      assert.is_false(ok)
      return e
    end
    assert.matches("metrics: monitor 'api': a series of this monitor exists already",
      err(r.monitor, r, "api"))
    assert.matches([[metrics: series:state: the state must be "up", "down", "pending" or ]]
      .. [["maintenance", got 'UP']], err(s.state, s, "UP"), 1, true)
    assert.matches("metrics: series:observe: status must be a number, got string",
      err(s.observe, s, true, 1, "ok"))
    assert.matches("metrics: series:observe: duration_s must be a number, got no value",
      err(s.observe, s, true))
    assert.matches("metric name must match", err(r.gauge, r, "9lives", "h"))
    assert.matches("a family of this name exists already",
      err(r.gauge, r, "probe_success", "h"))
    assert.matches("a family of this name exists already",
      err(r.gauge, r, "process_open_fds", "h"))
    assert.matches("a counter's name ends in _total", err(r.counter, r, "events", "h"))
    assert.matches("label name must match", err(r.gauge, r, "x", "h", { "bad-name" }))
    assert.matches("label names must be strings", err(r.gauge, r, "y", "h", { 1 }))
    local c = r:counter("z_total", "h", { "a", "b" })
    assert.matches("this family takes 2 label values, got 1", err(c.set, c, 1, "x"))
    assert.matches("a counter only goes up", err(c.add, c, -1, "x", "y"))
    s:remove()
    assert.matches("this monitor's series was removed", err(s.observe, s, true, 1))
    assert.matches("metrics: this monitor's series was removed", err(s.state, s, "up"))
  end)

  it("counts the dispatcher's skipped ticks and lateness (d:metrics)", function()
    local r = core.metrics()
    local d = core.dispatcher{ spread = false }
    d:add({ check = function() core.sleep(0.25) end }, { interval = 0.1, name = "slow" })
    d:metrics(r)
    core.spawn(function()
      d:start()
      core.sleep(0.55)
      d:stop()
    end)
    core.run()
    local st = d:stats()
    local s = parse(r:render())
    assert.is_true(st.skipped > 0)
    assert.equal(st.skipped, s.moonwatch_ticks_skipped_total)
    assert.equal(st.run, s.moonwatch_schedule_lateness_seconds_count)
    assert.equal(st.run, s['moonwatch_schedule_lateness_seconds_bucket{le="+Inf"}'])
    assert.is_true(s['moonwatch_schedule_lateness_seconds_bucket{le="0.1"}']
      <= s['moonwatch_schedule_lateness_seconds_bucket{le="10"}'])
    assert.is_true(s.moonwatch_schedule_lateness_seconds_sum >= 0)
  end)

  describe("against the fixture", function()
    local srv
    lazy_setup(function() srv = fixture.start() end)
    lazy_teardown(function() if srv then srv:stop() end end)

    it("counts the HTTP transfers in flight", function()
      local r = core.metrics()
      local during
      core.spawn(function() core.http_request{ url = srv:url("/delay/300"), timeout = 5 } end)
      core.spawn(function()
        core.sleep(0.1)
        during = parse(r:render()).moonwatch_http_transfers_in_flight
      end)
      core.run()
      assert.equal(1, during)
      assert.equal(0, parse(r:render()).moonwatch_http_transfers_in_flight)
    end)
  end)
end)

describe("mw.Metrics", function()
  local srv, tls_srv, capture

  lazy_setup(function()
    mw.log.setup{ level = "INFO" }
    srv = fixture.start()
    tls_srv = fixture.start{ tls = true }
  end)
  lazy_teardown(function()
    if srv then srv:stop() end
    if tls_srv then tls_srv:stop() end
  end)
  before_each(function() capture = mw.log.capture() end)
  after_each(function()
    capture:close()
    assert.same({ tasks = 0, handles = 0 }, core.stats())
  end)

  -- HTTP monitors up (with a redirect, over TLS), down (a status, a refused
  -- port) and pending (its check still running), run by a real Dispatcher
  -- until every one but the pending has a state. Returns the exposition.
  local function run_monitors()
    local client = mw.http.Client()
    local HttpMonitor = mw.monitors.HttpMonitor
    local ms = {
      HttpMonitor{ http_client = client, name = "page", options = monitor_opts(srv:url("/page")) },
      HttpMonitor{ http_client = client, name = "hops",
                   options = monitor_opts(srv:url("/redirect/2")) },
      HttpMonitor{ http_client = client, name = "tls", options = monitor_opts(tls_srv:url("/"),
        { ca_file = tls_srv.ca_file, expect = { cert_valid_days = 0 } }) },
      HttpMonitor{ http_client = client, name = "error",
                   options = monitor_opts(srv:url("/status/500")) },
      HttpMonitor{ http_client = client, name = "refused",
                   options = monitor_opts("http://127.0.0.1:1/") },
      HttpMonitor{ http_client = client, name = "slow",
                   options = monitor_opts(srv:url("/hang"), { timeout = 30 }) },
    }
    local state = mw.State()
    local metrics = mw.Metrics()
    local d = mw.Dispatcher{ monitors = ms, consumers = { state, metrics } }
    local text
    core.spawn(function()
      d:start()
      fixture.await("the checks", 10, function()
        for _, name in ipairs{ "page", "hops", "tls", "error", "refused" } do
          local e = state:get(name)
          if not e or e.state == "PENDING" then return false end
        end
        return true
      end)
      text = metrics:render()
      d:stop()
    end)
    core.run()
    return text, metrics, state
  end

  it("exposes up, down and pending HTTP monitors as blackbox_exporter would", function()
    local text = run_monitors()
    local s = parse(text)
    local now = core.time()
    assert.equal(1, s['probe_success{monitor="page"}'])
    assert.equal(1, s['probe_success{monitor="hops"}'])
    assert.equal(1, s['probe_success{monitor="tls"}'])
    assert.equal(0, s['probe_success{monitor="error"}'])
    assert.equal(0, s['probe_success{monitor="refused"}'])
    assert.is_nil(s['probe_success{monitor="slow"}'])
    assert.equal(200, s['probe_http_status_code{monitor="page"}'])
    assert.equal(500, s['probe_http_status_code{monitor="error"}'])
    assert.equal(0, s['probe_http_status_code{monitor="refused"}'])
    assert.equal(648, s['probe_http_content_length{monitor="page"}'])
    assert.equal(2, s['probe_http_redirects{monitor="hops"}'])
    assert.equal(0, s['probe_http_redirects{monitor="page"}'])
    local expiry = s['probe_ssl_earliest_cert_expiry{monitor="tls"}']
    assert.is_true(expiry > now and expiry < now + 2 * 86400, tostring(expiry))
    assert.is_nil(s['probe_ssl_earliest_cert_expiry{monitor="page"}'])
    -- the phases are parts of the check: none negative, together at most its duration
    for _, name in ipairs{ "page", "tls", "error" } do
      local sum = 0
      for _, phase in ipairs{ "resolve", "connect", "tls", "processing", "transfer" } do
        local v = s[('probe_http_duration_seconds{monitor="%s",phase="%s"}'):format(name, phase)]
        assert.is_true(v >= 0, name .. " " .. phase)
        sum = sum + v
      end
      assert.is_true(sum <= s[('probe_duration_seconds{monitor="%s"}'):format(name)] + 1e-6)
    end
    assert.is_true(s['probe_http_duration_seconds{monitor="tls",phase="tls"}'] > 0)
    assert.equal(0, s['probe_http_duration_seconds{monitor="page",phase="tls"}'])
    assert.equal(1, s['moonwatch_monitor_state{monitor="page",state="up"}'])
    assert.equal(1, s['moonwatch_monitor_state{monitor="error",state="down"}'])
    assert.equal(1, s['moonwatch_monitor_state{monitor="slow",state="pending"}'])
    assert.equal(1, s['moonwatch_checks_total{monitor="page",result="up"}'])
    assert.equal(1, s['moonwatch_checks_total{monitor="refused",result="down"}'])
    assert.equal(0, s['moonwatch_checks_total{monitor="slow",result="down"}'])
    assert.equal(6, s['moonwatch_schedule_lateness_seconds_count'])
    assert.equal(1, s.moonwatch_http_transfers_in_flight) -- the pending one's
  end)

  it("passes promtool check metrics", function()
    local text = run_monitors()
    local dir = fixture.tmpdir()
    local path = dir .. "/metrics.txt"
    local f = assert(io.open(path, "wb"))
    f:write(text)
    f:close()
    local p = assert(io.popen("promtool check metrics < " .. fixture.shell_quote(path)
      .. " 2>&1; echo \"exit=$?\""))
    local out = p:read("a")
    p:close()
    fixture.rmtree(dir)
    assert.truthy(out:match("exit=0\n$"), out)
    assert.is_nil(out:match("error"), out)
  end)

  it("gives other monitors probe_success and probe_duration_seconds only", function()
    local LuaMonitor = mw.monitors.Monitor:extend("LuaMonitor")
    function LuaMonitor.check() return nil, "no luck" end
    local m = LuaMonitor{ check_every = 60, name = "lua" }
    local metrics = mw.Metrics()
    local d = mw.Dispatcher{ monitors = { m }, consumers = { mw.State(), metrics } }
    d:check_once()
    local s = parse(metrics:render())
    assert.equal(0, s['probe_success{monitor="lua"}'])
    assert.is_true(s['probe_duration_seconds{monitor="lua"}'] >= 0)
    assert.is_nil(s['probe_http_status_code{monitor="lua"}'])
    assert.equal(1, s['moonwatch_checks_total{monitor="lua",result="down"}'])
  end)

  it("follows the State's changes: pending, down, up", function()
    local state = mw.State()
    local metrics = mw.Metrics{ state = state }
    local m = { name = "api", interval = 1 }
    metrics:on_monitor(m, "api")
    local function current()
      local s = parse(metrics:render())
      for _, st in ipairs{ "pending", "up", "down", "maintenance" } do
        if s[('moonwatch_monitor_state{monitor="api",state="%s"}'):format(st)] == 1 then
          return st
        end
      end
    end
    assert.equal("pending", current())
    local function result(up)
      local r = { monitor = "api", up = up, duration = 0.1, at = core.time() }
      state:on_result(m, r)
      metrics:on_result(m, r)
    end
    result(false)
    assert.equal("down", current())
    result(true)
    assert.equal("up", current())
  end)

  it("reads maintenance from the alerts' windows, and the notifiers' counters", function()
    local state = mw.State()
    local held = true
    local alerts = {
      windows = { in_maintenance = function(_, name) return held and name == "api" end },
      counters = function()
        return { webhook = { sent = 2, retried = 1, dropped = 1, dropped_overflow = 1,
                             dropped_max_age = 0, queued = 3 } }
      end,
    }
    local metrics = mw.Metrics{ state = state, alerts = alerts }
    local m = { name = "api", interval = 1 }
    metrics:on_monitor(m, "api")
    local r = { monitor = "api", up = false, duration = 0.1, at = core.time() }
    state:on_result(m, r)
    metrics:on_result(m, r)
    local s = parse(metrics:render())
    assert.equal(1, s['moonwatch_monitor_state{monitor="api",state="maintenance"}'])
    assert.equal(0, s['moonwatch_monitor_state{monitor="api",state="down"}'])
    assert.equal(2, s['moonwatch_notifications_total{notifier="webhook",outcome="sent"}'])
    assert.equal(1, s['moonwatch_notifications_total{notifier="webhook",outcome="retried"}'])
    assert.equal(1, s['moonwatch_notifications_total{notifier="webhook",'
      .. 'outcome="dropped_overflow"}'])
    assert.equal(3, s['moonwatch_notifications_queued{notifier="webhook"}'])
    held = false
    metrics:on_result(m, r)
    s = parse(metrics:render())
    assert.equal(1, s['moonwatch_monitor_state{monitor="api",state="down"}'])
  end)

  it("on_remove drops a monitor's series; a new monitor of that name keeps it", function()
    local metrics = mw.Metrics()
    local old, new, other = { name = "api" }, { name = "api" }, { name = "db" }
    metrics:on_monitor(old, "api")
    metrics:on_monitor(other, "db")
    metrics:on_result(old, { monitor = "api", up = true, duration = 0.1 })
    -- a reload: the changed monitor comes, then the old one goes
    metrics:on_monitor(new, "api")
    metrics:on_remove(old, "api")
    metrics:on_result(new, { monitor = "api", up = true, duration = 0.1 })
    local s = parse(metrics:render())
    assert.equal(2, s['moonwatch_checks_total{monitor="api",result="up"}'])
    metrics:on_remove(other, "db")
    metrics:on_result(other, { monitor = "db", up = true, duration = 0.1 }) -- late: dropped
    assert.is_nil(metrics:render():find('monitor="db"', 1, true))
  end)

  it("refuses bad options", function()
    assert.has_error(function() mw.Metrics{ regsitry = 1 } end,
      "Metrics: unknown option 'regsitry' (registry, state, alerts)")
    assert.has_error(function() mw.Metrics{ alerts = {} } end,
      "Metrics: alerts must be an Alerts (mw.Alerts)")
    assert.has_error(function() mw.Metrics{ state = 1 } end,
      "Metrics: state must be a State (mw.State)")
  end)
end)
