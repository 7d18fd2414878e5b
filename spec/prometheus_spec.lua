-- The default monitors.lua's HTTP endpoint under real Prometheus tools:
-- `promtool check metrics` accepts /metrics with monitors up, down and
-- pending; a real Prometheus (Debian's, on 127.0.0.1, scraping every 1 s)
-- answers probe_success with the monitors' values; an edited file and
-- SIGHUP show the new monitor in /metrics within 2 s while the old ones
-- keep their counters. The waits are bounded polls of other processes.
local core = require("moonwatch.core")
local cjson = require("cjson")
local socket = require("socket")
local fixture = require("support.fixture")
local daemon = require("support.daemon")

local PROMETHEUS = os.getenv("MOONWATCH_PROMETHEUS") or "/usr/bin/prometheus"
local PROMTOOL = os.getenv("MOONWATCH_PROMTOOL") or "/usr/bin/promtool"
local q = fixture.shell_quote

local function need(path, pkg)
  local f = io.open(path, "r")
  if not f then error(path .. " is missing: apt-get install " .. pkg .. " (scripts/deps test)") end
  f:close()
end

local function write_file(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

local function free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return math.tointeger(tonumber(port))
end

local function get(url)
  local r
  core.run(function() r = core.http_request{ url = url, timeout = 5, max_body = 1 << 24 } end)
  return r
end

-- promtool's verdict on an exposition: ok, and what it printed.
local function promtool(text)
  local dir = fixture.tmpdir()
  local f = assert(io.open(dir .. "/metrics", "w"))
  f:write(text)
  f:close()
  local p = assert(io.popen(q(PROMTOOL) .. " check metrics <" .. q(dir .. "/metrics") .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  fixture.rmtree(dir)
  return ok, out
end

-- The value of the sample `series` (name and labels as written) in text.
local function sample(text, series)
  local v = text:match("\n" .. series:gsub("%p", "%%%0") .. " ([^\n]+)")
  return v and tonumber(v)
end

local function start_prometheus(target)
  need(PROMETHEUS, "prometheus")
  local dir = fixture.tmpdir()
  local cfg = assert(io.open(dir .. "/prometheus.yml", "w"))
  cfg:write(([[
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: moonwatch
    static_configs:
      - targets: ["%s"]
]]):format(target))
  cfg:close()
  local port = free_port()
  local cmd = table.concat({ "exec", q(PROMETHEUS), "--config.file=" .. q(dir .. "/prometheus.yml"),
    "--storage.tsdb.path=" .. q(dir .. "/data"), "--web.listen-address=127.0.0.1:" .. port,
    ">" .. q(dir .. "/log"), "2>&1" }, " ")
  local p = assert(io.popen("(" .. cmd .. ") & echo $!", "r"))
  local pid = math.tointeger(tonumber(p:read("l")))
  p:close()
  return { pid = pid, dir = dir, url = "http://127.0.0.1:" .. port }
end

local function stop_prometheus(prom)
  os.execute("kill -TERM " .. prom.pid .. " 2>/dev/null")
  daemon.wait_for(10, function()
    return not os.execute("kill -0 " .. prom.pid .. " 2>/dev/null")
  end)
  fixture.rmtree(prom.dir)
end

-- The value Prometheus has for query, once it has one.
local function query(prom, expr)
  local r = get(prom.url .. "/api/v1/query?query=" .. expr:gsub("[^%w]", function(c)
    return ("%%%02X"):format(c:byte())
  end))
  if not r or r.status ~= 200 then return nil end
  local doc = cjson.decode(r.body)
  local first = doc.data and doc.data.result and doc.data.result[1]
  return first and tonumber(first.value[2])
end

describe("the default monitors.lua's /metrics", function()
  local srv, dir, d
  before_each(function()
    need(PROMTOOL, "prometheus")
    srv = fixture.start()
    dir = fixture.tmpdir()
    write_file(dir .. "/monitors.lua", fixture.read_file("monitors.lua"))
    d = daemon.start({ dir .. "/monitors.lua" }, {
      MOONWATCH_SERVER__LISTEN = "127.0.0.1:0",
      MOONWATCH_MONITORS__EXAMPLE__URL = srv:url("/page"),
      MOONWATCH_MONITORS__EXAMPLE__CHECK_EVERY = "0.2",
      MOONWATCH_MONITORS__HTTPBIN__URL = srv:url("/status/500"),
      MOONWATCH_MONITORS__HTTPBIN__CHECK_EVERY = "0.2",
    })
  end)
  after_each(function()
    d:cleanup()
    fixture.rmtree(dir)
    srv:stop()
  end)

  local function metrics_url()
    d:wait_output("Listening on 127.0.0.1:")
    local port = d:stdout():match("Listening on 127%.0%.0%.1:(%d+)")
    return "http://127.0.0.1:" .. port .. "/metrics", "127.0.0.1:" .. port
  end

  it("passes promtool, is scraped by a real Prometheus, and shows a monitor added by SIGHUP",
    function()
    local url, target = metrics_url()
    local text = daemon.wait_for(5, function()
      local r = get(url)
      return r and r.status == 200 and r.body:find('probe_success{monitor="httpbin"}', 1, true)
        and r.body
    end)
    assert.truthy(text, "no probe_success of both monitors in /metrics")
    assert.equals(1, sample(text, 'probe_success{monitor="example"}'))
    assert.equals(0, sample(text, 'probe_success{monitor="httpbin"}'))
    assert.equals(500, sample(text, 'probe_http_status_code{monitor="httpbin"}'))
    local ok, out = promtool(text)
    assert.is_true(ok, out)

    local prom = start_prometheus(target)
    local seen = daemon.wait_for(30, function()
      local a = query(prom, 'probe_success{monitor="example"}')
      local b = query(prom, 'probe_success{monitor="httpbin"}')
      if a and b then return { a, b } end
    end)
    stop_prometheus(prom)
    assert.same({ 1, 0 }, seen)

    -- a third monitor, whose check hangs: PENDING after the reload
    local before = sample(get(url).body, 'moonwatch_checks_total{monitor="example",result="up"}')
    local file = dir .. "/monitors.lua"
    local src = fixture.read_file(file)
    src = src:gsub('(    httpbin = { method = "GET", url = "https://httpbin.org/get", timeout = 5, '
      .. 'check_every = 5 },\n)', '%1    slow = { method = "GET", url = "' .. srv:url("/hang")
      .. '", timeout = 30, check_every = 60 },\n')
    src = src:gsub("(  c%.dispatcher = )", '  c.slow_monitor = providers.Factory('
      .. 'mw.monitors.HttpMonitor, {\n    http_client = c.http_client,\n'
      .. '    options = config.monitors.slow,\n  })\n%1')
    src = src:gsub("providers%.List%(c%.example_monitor, c%.httpbin_monitor%)",
      "providers.List(c.example_monitor, c.httpbin_monitor, c.slow_monitor)")
    assert.truthy(src:find("c.slow_monitor)", 1, true), "monitors.lua changed: the edit failed")
    write_file(file, src)
    local hup = daemon.now()
    d:signal("HUP")
    local after = daemon.wait_for(5, function()
      local body = get(url).body
      return body:find('moonwatch_monitor_state{monitor="slow",state="pending"} 1', 1, true)
        and body
    end)
    local took = daemon.now() - hup
    assert.truthy(after, "the new monitor is not in /metrics:\n" .. d:stdout())
    assert.is_true(took < 2, ("the new monitor showed after %.2f s"):format(took))
    assert.is_true(sample(after, 'moonwatch_checks_total{monitor="example",result="up"}')
      >= before, "the old monitor's counter was reset")
    ok, out = promtool(after)
    assert.is_true(ok, out)
    assert.truthy(d:stdout():find("Configuration reloaded: 1 added, 0 changed, 0 removed, "
      .. "2 unchanged", 1, true))
  end)
end)
