-- The moonwatch benchmark: runs the `moonwatch` executable on a generated
-- monitors.lua against a local nginx and checks the figures against the
-- targets of the README's "Performance" section.
--
--   lua5.4 bench/bench.lua SCENARIO [options]      (bench/run.sh does this)
--
-- Scenarios: saturation, conditions, scale, startup, soak, fresh, storm,
-- valgrind, tcp (fresh, then the same with TcpMonitors: TCP connect
-- probes), dns, all (every one but soak, storm and tcp). Options: --monitors N,
-- --interval T, --duration D, --timeout S, --fresh, --expect none|three,
-- --alerts off|none|webhook, --receiver-delay S, --storm-after S, --metrics S,
-- --wrk-duration S, --no-wrk, --keep, --moonwatch PATH.
-- Run with --help for details.
--
-- Each run: nginx (one worker) pinned to CPU 1, a monitors.lua with N
-- HttpMonitors at check_every = T spread over the interval, logging to a
-- file; `moonwatch --stats` pinned to CPU 0 for D seconds after it logged
-- "Starting up"; SIGTERM; the JSON line --stats prints; the log records
-- counted; then wrk -t1 -c100 against the same nginx, pinned to CPU 0.
-- With --alerts webhook, every monitor's state changes go through mw.Alerts
-- to a webhook on a slow local receiver (bench/receiver.py, on CPU 1).
-- The dns scenario has DnsMonitors instead, asking a local dnsmasq (CPU 1).
local script_dir = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = script_dir .. "/?.lua;" .. package.path
local cjson = require("cjson")
local util = require("util")
local nginx = require("nginx")
local dnsmasq = require("dnsmasq")

local q, sh, thousands = util.q, util.sh, util.thousands

local ROOT = util.read_cmd("cd " .. q(script_dir .. "/..") .. " && pwd"):gsub("%s+$", "")

-- Scenarios ------------------------------------------------------------------

local SCENARIOS = {
  saturation = { monitors = 200, interval = 0.005, duration = 10, fresh = false,
    about = "more checks scheduled than one core can run: the checks/s it reaches" },
  scale = { monitors = 10000, interval = 1, duration = 60, fresh = false,
    about = "10,000 monitors every second: schedule kept, CPU and memory",
    target = { monitors = 10000, interval = 1, duration = 60 } },
  startup = { monitors = 10000, interval = 1, duration = 5, fresh = false,
    about = "start-up of 10,000 monitors: config loaded, monitors built, first ticks armed",
    target = { monitors = 10000 } },
  soak = { monitors = 10000, interval = 1, duration = 600, fresh = false,
    about = "scale for 10 minutes: RSS sampled every 10 s",
    target = { monitors = 10000, interval = 1, duration = 600 } },
  conditions = { monitors = 200, interval = 0.005, duration = 10, fresh = false,
    expect = "three",
    about = "saturation with three conditions: status, body contains, a JSON path" },
  fresh = { monitors = 200, interval = 0.005, duration = 10, fresh = true,
    about = "saturation with a new TCP connection per check" },
  storm = { monitors = 10000, interval = 1, duration = 60, fresh = false, alerts = "webhook",
    storm_after = 20,
    about = "scale with alerts; after a warm-up every monitor goes DOWN at once",
    target = { monitors = 10000, interval = 1, duration = 60 } },
  valgrind = { monitors = 100, interval = 0.1, duration = 10, fresh = false,
    about = "a short run under valgrind memcheck: leaks and errors" },
  -- run after `fresh`, in the same run: its rate is the target
  tcp = { monitors = 200, interval = 0.005, duration = 10, fresh = true, probe = "tcp",
    about = "saturation with TCP connect probes (TcpMonitor, no TLS, nothing sent)" },
  dns = { monitors = 200, interval = 0.005, duration = 10, fresh = false, probe = "dns",
    about = "DNS probes: DnsMonitors asking a local dnsmasq over UDP, probes/s" },
}
-- What `--expect` puts in each monitor's options: nothing (the default
-- judgement, status 200-299), or three conditions on the JSON page.
local EXPECTS = {
  none = { code = "nil" },
  three = { code = '{ status = 200, body_contains = "moonwatch bench", '
    .. 'json = { ["$.status"] = "ok" } }', path = nginx.HEALTH },
}

local ALERT_MODES = { off = true, none = true, webhook = true }
-- The page the storm's monitors check: removed after the warm-up (404).
local STORM_PAGE = "storm.html"

local ALL = { "saturation", "conditions", "scale", "startup", "fresh", "valgrind", "dns" }

local USAGE = [[
Usage: bench/run.sh SCENARIO [options]

Scenarios (defaults: monitors N, interval T s, duration D s):
  saturation  N=200   T=0.005 D=10  more scheduled than one core runs: checks/s
  scale       N=10000 T=1     D=60   schedule kept, CPU, memory
  startup     N=10000 T=1     D=5    time to start 10,000 monitors
  soak        N=10000 T=1     D=600  scale for 10 minutes, RSS growth
  conditions  N=200   T=0.005 D=10  saturation, three conditions (--expect three)
  fresh       N=200   T=0.005 D=10   saturation, a new connection per check
  storm       N=10000 T=1     D=60   scale with --alerts webhook; after --storm-after
                                     s every monitor's page answers 404: 10,000 DOWN
                                     at once, alerts to a slow receiver
  valgrind    N=100   T=0.1   D=10   memcheck: leaks and errors
  tcp         N=200   T=0.005 D=10   fresh, then the same number of TcpMonitors
                                     connecting to nginx's port (connect only):
                                     TCP probes/s beside fresh's checks/s
  dns         N=200   T=0.005 D=10  DnsMonitors (A, UDP) against a local dnsmasq
                                     (dnsmasq-base): DNS probes/s
  all         saturation, conditions, scale, startup, fresh, valgrind and dns (not
              soak, not storm, not tcp)

Options:
  --monitors N        number of monitors
  --interval T        check_every, seconds
  --duration D        seconds to run after start-up
  --timeout S         each check's timeout (default 5)
  --fresh             a new TCP connection per check
  --expect none|three the monitors' conditions: none (the default judgement,
                      status 200-299), or three (status 200, body contains,
                      one JSON path) on a 648-byte JSON page
  --alerts MODE       off (the default: no state, no alerts), none (mw.State
                      and mw.Alerts without a notifier) or webhook (mw.State
                      and mw.Alerts with a webhook notifier for every monitor,
                      to a local receiver answering 204 after --receiver-delay)
  --receiver-delay S  seconds the receiver takes per notification (default 0.2)
  --storm-after S     storm: seconds of warm-up before the page fails (default 20)
  --metrics S         mw.Metrics and mw.Endpoint in the daemon; S > 0: a real
                      Prometheus (Debian's, CPU 1) scrapes /metrics every S s;
                      0: no scrapes (the run to compare with); either way one
                      scrape is timed with curl after the run
  --wrk-duration S    seconds of wrk (default 5; 0 or --no-wrk: no wrk)
  --keep              keep the work directory (monitors.lua, log, stats)
  --moonwatch PATH    the executable (default build/moonwatch)
  --perf FILE         also profile the daemon during the run: perf record -g
                      -p PID -o FILE (on the other CPU); then perf report -i FILE
With `all`, the options apply to every scenario.
]]

local function die(msg)
  io.stderr:write("bench: ", msg, "\n")
  os.exit(2)
end

local function parse(argv)
  local o = { wrk_duration = 5, moonwatch = ROOT .. "/build/moonwatch" }
  local scenario
  local i = 1
  local function value(name)
    i = i + 1
    local v = argv[i]
    if v == nil then die(name .. " needs a value") end
    return v
  end
  local function number(name)
    local v = tonumber(value(name))
    if not v or v < 0 then die(name .. " needs a number >= 0") end
    return v
  end
  while i <= #argv do
    local a = argv[i]
    if a == "--help" or a == "-h" then
      io.stdout:write(USAGE)
      os.exit(0)
    elseif a == "--monitors" then
      o.monitors = math.tointeger(number(a))
      if not o.monitors or o.monitors < 1 then die("--monitors needs an integer >= 1") end
    elseif a == "--interval" then o.interval = number(a)
    elseif a == "--duration" then o.duration = number(a)
    elseif a == "--timeout" then o.timeout = number(a)
    elseif a == "--fresh" then o.fresh = true
    elseif a == "--expect" then
      o.expect = value(a)
      if not EXPECTS[o.expect] then die("--expect is none or three, got " .. o.expect) end
    elseif a == "--alerts" then
      o.alerts = value(a)
      if not ALERT_MODES[o.alerts] then
        die("--alerts is off, none or webhook, got " .. o.alerts)
      end
    elseif a == "--receiver-delay" then o.receiver_delay = number(a)
    elseif a == "--storm-after" then o.storm_after = number(a)
    elseif a == "--metrics" then
      o.metrics = number(a)
      if o.metrics < 0 then die("--metrics needs seconds >= 0 (0: no scrapes)") end
    elseif a == "--wrk-duration" then o.wrk_duration = number(a)
    elseif a == "--no-wrk" then o.wrk_duration = 0
    elseif a == "--keep" then o.keep = true
    elseif a == "--moonwatch" then o.moonwatch = value(a)
    elseif a == "--perf" then o.perf = value(a)
    elseif a:sub(1, 1) == "-" then die("unknown option " .. a .. " (see --help)")
    elseif scenario then die("one scenario only, got " .. scenario .. " and " .. a)
    else scenario = a end
    i = i + 1
  end
  if not scenario then
    io.stderr:write(USAGE)
    os.exit(2)
  end
  if scenario ~= "all" and not SCENARIOS[scenario] then
    die("unknown scenario '" .. scenario .. "' (see --help)")
  end
  if o.interval and o.interval <= 0 then die("--interval must be > 0") end
  return scenario, o
end

-- The generated monitors.lua -----------------------------------------------------

local MONITORS_LUA = [[
-- Generated by bench/bench.lua: %d HTTP monitors of one local nginx.
local mw = require("moonwatch")
local providers = mw.providers

local N, URL, EVERY, TIMEOUT, FRESH = %d, %q, %s, %s, %s
-- http: HttpMonitors of URL; tcp: TcpMonitors connecting to ADDRESS
local PROBE, ADDRESS = %q, %q
local LOG = %q
local EXPECT = %s
-- off, none or webhook; the receiver; where the notifiers' counters go at exit
local ALERTS, HOOK, COUNTERS = %q, %q, %q
-- mw.Metrics and mw.Endpoint on this address ("": neither)
local METRICS_LISTEN = %q

-- A consumer that writes the alerts' counters when the Dispatcher stops.
local function counters_writer(kwargs)
  return { on_stop = function()
    local f = assert(io.open(COUNTERS, "w"))
    f:write(require("cjson").encode(kwargs.alerts:counters()))
    f:close()
  end }
end

return mw.container(function(c)
  c.logging = providers.Resource(mw.log.setup, { level = "INFO", file = LOG })
  c.http_client = providers.Singleton(mw.http.Client)
  local monitors = {}
  for i = 1, N do
    local name = "m" .. i
    if PROBE == "tcp" then
      c[name] = providers.Factory(mw.TcpMonitor, { name = name,
        options = { address = ADDRESS, timeout = TIMEOUT, check_every = EVERY } })
    else
    c[name] = providers.Factory(mw.monitors.HttpMonitor, {
      http_client = c.http_client,
      options = {
        method = "GET", url = URL .. "?m=" .. i, timeout = TIMEOUT,
        check_every = EVERY, fresh_connection = FRESH, expect = EXPECT,
      },
    })
    end
    monitors[i] = c[name]
  end
  local consumers = {}
  if ALERTS ~= "off" then
    c.state = providers.Singleton(mw.State)
    c.webhook = providers.Singleton(mw.Alerts.notifiers.Webhook, { name = "hook", url = HOOK })
    c.alerts = providers.Singleton(mw.Alerts, { state = c.state,
      notifiers = ALERTS == "webhook" and providers.List(c.webhook) or {} })
    c.counters = providers.Singleton(counters_writer, { alerts = c.alerts })
    consumers = { c.state, c.alerts, c.counters }
  end
  if METRICS_LISTEN ~= "" then
    if ALERTS == "off" then
      c.state = providers.Singleton(mw.State)
      consumers[#consumers + 1] = c.state
    end
    c.metrics = providers.Singleton(mw.Metrics)
    c.endpoint = providers.Singleton(mw.Endpoint, { listen = METRICS_LISTEN, metrics = c.metrics })
    consumers[#consumers + 1] = c.metrics
    consumers[#consumers + 1] = c.endpoint
  end
  c.dispatcher = providers.Factory(mw.Dispatcher, {
    monitors = providers.List(table.unpack(monitors, 1, N)),
    consumers = providers.List(table.unpack(consumers)),
    spread = true,
  })
end)
]]

-- The dns scenario's: N DnsMonitors, each asking for its own name.
local DNS_MONITORS_LUA = [[
-- Generated by bench/bench.lua: %d DNS monitors of one local dnsmasq.
local mw = require("moonwatch")
local providers = mw.providers

local N, SERVER, ZONE, EVERY, TIMEOUT, LOG = %d, %q, %q, %s, %s, %q

return mw.container(function(c)
  c.logging = providers.Resource(mw.log.setup, { level = "INFO", file = LOG })
  local monitors = {}
  for i = 1, N do
    local name = "m" .. i
    c[name] = providers.Factory(mw.DnsMonitor, { options = {
      name = name, query = name .. "." .. ZONE, type = "A", server = SERVER,
      timeout = TIMEOUT, check_every = EVERY,
    } })
    monitors[i] = c[name]
  end
  c.dispatcher = providers.Factory(mw.Dispatcher, {
    monitors = providers.List(table.unpack(monitors, 1, N)),
    spread = true,
  })
end)
]]

local function monitors_lua(p, url, log, hook, counters)
  if p.probe == "dns" then
    return DNS_MONITORS_LUA:format(p.monitors, p.monitors, url, dnsmasq.ZONE,
      ("%.17g"):format(p.interval), ("%.17g"):format(p.timeout), log)
  end
  local e = EXPECTS[p.expect]
  local path = p.storm_after and STORM_PAGE or e.path or ""
  return MONITORS_LUA:format(p.monitors, p.monitors, url .. path,
    ("%.17g"):format(p.interval), ("%.17g"):format(p.timeout), tostring(p.fresh), p.probe,
    url:match("^http://([^/]+)"), log, e.code,
    p.alerts, hook or "http://127.0.0.1:9/", counters, p.metrics_listen or "")
end

-- A real Prometheus scraping the endpoint ----------------------------------------

local function start_prometheus(p, env, dir)
  if not util.have("prometheus") then die("--metrics S needs prometheus (scripts/deps test)") end
  local port = util.free_port()
  util.write_file(dir .. "/prometheus.yml", ([[
global:
  scrape_interval: %gs
  scrape_timeout: %gs
scrape_configs:
  - job_name: moonwatch
    static_configs:
      - targets: ["%s"]
]]):format(p.metrics, math.min(p.metrics, 10), p.metrics_listen))
  local pin = env.pin and "taskset -c 1 " or ""
  assert(sh(("%sprometheus --config.file=%s --storage.tsdb.path=%s "
    .. "--web.listen-address=127.0.0.1:%d >%s 2>&1 </dev/null & echo $! >%s"):format(pin,
    q(dir .. "/prometheus.yml"), q(dir .. "/tsdb"), port, q(dir .. "/prometheus.log"),
    q(dir .. "/prometheus.pid"))), "could not start prometheus")
  local pid = (util.read_file(dir .. "/prometheus.pid") or ""):match("%d+")
  util.track(pid)
  return { pid = pid, url = "http://127.0.0.1:" .. port }
end

-- The scrapes Prometheus made over the run: count, mean and max duration,
-- samples of the last; then it is stopped.
local function prometheus_figures(prom, p)
  local function query(expr)
    local out = util.read_cmd(("curl -s --data-urlencode %s %s/api/v1/query"):format(
      q("query=" .. expr), prom.url)) or ""
    local ok, doc = pcall(cjson.decode, out)
    local first = ok and doc.data and doc.data.result and doc.data.result[1]
    return first and tonumber(first.value[2])
  end
  local range = ("%ds"):format(math.ceil(p.duration) + 5)
  local f = {
    count = query(("count_over_time(scrape_duration_seconds[%s])"):format(range)),
    mean = query(("avg_over_time(scrape_duration_seconds[%s])"):format(range)),
    max = query(("max_over_time(scrape_duration_seconds[%s])"):format(range)),
    samples = query("scrape_samples_scraped"),
    up = query("up"),
  }
  util.terminate(prom.pid, 10)
  return f
end

-- The slow receiver of the notifications --------------------------------------

local function start_receiver(delay, env, dir)
  local port = util.free_port()
  local pin = env.pin and "taskset -c 1 " or ""
  assert(sh(("%spython3 %s %d %s >%s 2>&1 </dev/null & echo $! >%s"):format(pin,
    q(ROOT .. "/bench/receiver.py"), port, ("%.17g"):format(delay), q(dir .. "/receiver.out"),
    q(dir .. "/receiver.pid"))), "could not start the receiver")
  local pid = (util.read_file(dir .. "/receiver.pid") or ""):match("%d+")
  util.track(pid)
  local deadline = util.now() + 10
  while not util.accepts(port) do
    if util.now() > deadline then
      util.terminate(pid, 2)
      error("the receiver did not start: " .. (util.read_file(dir .. "/receiver.out") or ""), 0)
    end
    util.sleep(0.05)
  end
  return { pid = pid, port = port, url = ("http://127.0.0.1:%d/hook"):format(port),
           answered = function()
             return tonumber((require("socket.http").request(
               ("http://127.0.0.1:%d/count"):format(port))))
           end }
end

-- Running the daemon -----------------------------------------------------------

local function count_lines(pattern, file)
  return tonumber(util.read_cmd(("grep -c -e %s %s 2>/dev/null"):format(q(pattern), q(file)))
    :match("%d+")) or 0
end

-- Valgrind's summary: errors and bytes lost of each kind.
local function parse_valgrind(text)
  local function bytes(kind)
    local n = text:match(kind .. " lost: ([%d,]+) bytes")
    return n and tonumber((n:gsub(",", ""))) or 0
  end
  local reachable = text:match("still reachable: ([%d,]+) bytes")
  return {
    errors = tonumber(((text:match("ERROR SUMMARY: ([%d,]+) errors") or "-1"):gsub(",", ""))),
    definitely = bytes("definitely"),
    indirectly = bytes("indirectly"),
    possibly = bytes("possibly"),
    reachable = reachable and tonumber((reachable:gsub(",", ""))) or 0,
    no_leaks = text:find("All heap blocks were freed", 1, true) ~= nil,
  }
end

local VALGRIND = "valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect "
  .. "--error-exitcode=99 --num-callers=30"

--- Runs moonwatch on the generated file; returns the figures.
local function run_daemon(p, env, server, dir, receiver)
  local gen, log = dir .. "/monitors.lua", dir .. "/checks.log"
  local stats_file, rc_file, pid_file = dir .. "/stats.txt", dir .. "/rc.txt", dir .. "/pid.txt"
  local vg_file = dir .. "/valgrind.txt"
  local counters_file = dir .. "/counters.json"
  local storm_page = server.dir .. "/www/" .. STORM_PAGE
  if p.storm_after then
    util.write_file(storm_page, util.read_file(server.dir .. "/www/index.html"))
  end
  util.write_file(gen, monitors_lua(p, server.url or server.server, log,
    receiver and receiver.url, counters_file))
  local pin = env.pin and "taskset -c 0 " or ""
  local vg = p.valgrind and (VALGRIND .. " --log-file=" .. q(vg_file) .. " ") or ""
  -- sh starts the daemon, says its pid, waits for it and keeps its status
  local inner = ("%s%s%s --stats %s >/dev/null 2>%s </dev/null & pid=$!; echo $pid >%s; "
    .. "wait $pid; echo $? >%s"):format(pin, vg, q(p.moonwatch), q(gen), q(stats_file),
    q(pid_file), q(rc_file))
  local t_spawn = util.now()
  assert(sh(("sh -c %s >/dev/null 2>&1 </dev/null &"):format(q(inner))), "could not start sh")
  local pid
  while not pid do
    pid = (util.read_file(pid_file) or ""):match("%d+")
    if not pid then
      if util.now() - t_spawn > 10 then error("the daemon's pid never came", 0) end
      util.sleep(0.01)
    end
  end
  util.track(pid)
  local r = { pid = pid, rss = {}, samples = {} }
  local stop_limit = p.valgrind and 300 or 30
  local ok, err = pcall(function()
    -- start-up: until the dispatcher logs "Starting up" (or the daemon ends)
    local limit = p.valgrind and 300 or 60
    while count_lines("Starting up$", log) == 0 do
      if not util.alive(pid) then return end
      if util.now() - t_spawn > limit then error("no 'Starting up' after " .. limit .. " s", 0) end
      util.sleep(0.02)
    end
    r.started = util.now()
    if p.metrics and p.metrics > 0 then r.prometheus = start_prometheus(p, env, dir) end
    if p.perf then
      -- perf itself on the other CPU; it ends with its `sleep`
      sh(("%sperf record -q -F 999 -g -p %s -o %s -- sleep %g >%s 2>&1 </dev/null &"):format(
        env.pin and "taskset -c 1 " or "", pid, q(p.perf), p.duration, q(dir .. "/perf.txt")))
    end
    local worker = server:worker_pid()
    local nginx_cpu0 = worker and util.cpu_seconds(worker)
    -- D seconds; RSS sampled every 10 s (every second of a short run)
    local every = p.duration >= 60 and 10 or 1
    local t = 0
    local storm_at = p.storm_after and math.min(p.storm_after, p.duration)
    while t < p.duration do
      local step = math.min(every, p.duration - t)
      if storm_at and t < storm_at and t + step > storm_at then step = storm_at - t end
      util.sleep(r.started + t + step - util.now())
      t = t + step
      if not util.alive(pid) then break end
      if storm_at and t == storm_at then
        -- every monitor's page is gone: each check is a 404 from now on
        os.remove(storm_page)
        r.storm_started = util.now()
      end
      local rss = util.rss_kb(pid)
      if rss then r.samples[#r.samples + 1] = { t = t, rss = rss } end
    end
    r.stopped = util.now()
    if r.prometheus then r.scrapes = prometheus_figures(r.prometheus, p) end
    if p.metrics_listen then
      -- one scrape, timed by curl: its time and bytes (in both runs, alike)
      local out = util.read_cmd(("curl -s -o /dev/null -w '%%{time_total} %%{size_download}' "
        .. "http://%s/metrics"):format(p.metrics_listen)) or ""
      local secs, bytes = out:match("^([%d.]+) (%d+)")
      r.scrape_s, r.scrape_bytes = tonumber(secs), tonumber(bytes)
    end
    local nginx_cpu1 = worker and util.cpu_seconds(worker)
    if nginx_cpu0 and nginx_cpu1 then
      r.nginx_cpu = (nginx_cpu1 - nginx_cpu0) / (r.stopped - r.started)
    end
  end)
  -- SIGTERM, then wait for the exit (valgrind's leak check takes a while)
  r.clean_exit = util.terminate(pid, stop_limit)
  local deadline = util.now() + 10
  while not (util.read_file(rc_file) or ""):match("%d") and util.now() < deadline do
    util.sleep(0.02)
  end
  r.exit_status = tonumber((util.read_file(rc_file) or ""):match("%d+"))
  if p.storm_after then os.remove(storm_page) end
  if receiver then r.received = receiver.answered() end
  local counters = util.read_file(counters_file)
  if counters then
    local decoded, c = pcall(cjson.decode, counters)
    if decoded then r.alerts = c end
  end
  if not ok then error(err, 0) end
  local stderr = util.read_file(stats_file) or ""
  for line in stderr:gmatch("[^\n]+") do
    if line:match("^{") then
      local decoded, s = pcall(cjson.decode, line)
      if decoded then r.stats = s end
    else
      r.stderr = (r.stderr or "") .. line .. "\n"
    end
  end
  if not r.stats then
    error(("the daemon printed no --stats line (%s, exit status %s)%s"):format(
      r.clean_exit and "it ended on SIGTERM"
        or ("it did not end within " .. stop_limit .. " s of SIGTERM and was killed"),
      tostring(r.exit_status), stderr ~= "" and (":\n" .. stderr) or ""), 0)
  end
  r.records = count_lines("^\\[", log)
  local class = p.probe == "tcp" and "TcpMonitor" or p.probe == "dns" and "DnsMonitor"
    or "HttpMonitor"
  r.check_records = count_lines("^\\[[^]]*\\] \\[[A-Z]*\\] \\[" .. class .. "\\]: Check", log)
  if p.probe == "tcp" then
    r.ok_records = count_lines("^\\[[^]]*\\] \\[INFO\\] \\[TcpMonitor\\]: Check$", log)
  elseif p.probe == "dns" then
    r.ok_records = math.min(count_lines("^    rcode: NOERROR$", log),
      count_lines("^    answers: 1$", log))
  else
    r.ok_records = math.min(count_lines("^    response code: 200$", log),
      count_lines("^    content length: " .. nginx.PAGE_SIZE .. "$", log))
  end
  r.failed_records = count_lines("^\\[[^]]*\\] \\[WARNING\\] \\[" .. class
    .. "\\]: Check failed$", log)
  r.error_records = count_lines("^\\[[^]]*\\] \\[ERROR\\] \\[Dispatcher\\]: Error executing", log)
  r.down_records = count_lines(" is DOWN after ", log)
  r.log_bytes = tonumber(util.read_cmd("stat -c %s " .. q(log) .. " 2>/dev/null"):match("%d+"))
  if p.valgrind then r.valgrind = parse_valgrind(util.read_file(vg_file) or "") end
  return r
end

local function run_wrk(url, seconds, env, extra)
  local pin = env.pin and "taskset -c 0 " or ""
  local out = util.read_cmd(("%swrk -t1 -c100 -d%ds %s%s 2>&1"):format(pin,
    math.ceil(seconds), extra or "", q(url)))
  local rate = tonumber(out:match("Requests/sec:%s*([%d%.]+)"))
  local problems = {}
  for line in out:gmatch("[^\n]+") do
    if line:match("Socket errors") or line:match("Non%-2xx") then
      problems[#problems + 1] = line:gsub("^%s+", "")
    end
  end
  return { rate = rate, problems = problems, out = out }
end

-- Report ------------------------------------------------------------------------

local function mb(kb) return ("%.1f MB"):format(kb / 1024) end

local function report(name, p, env, server, r, wrk, wrk_close)
  local s = r.stats
  local failed = s.failed + s.down
  local elapsed = s.elapsed_s
  local cpu = s.cpu_user_s + s.cpu_system_s
  local rate = s.run / elapsed
  local run_pct = s.scheduled > 0 and s.run / s.scheduled * 100 or 0
  local cpu_pct = cpu / elapsed * 100
  local rss_mb = s.maxrss_kb / 1024
  local lines = {}
  local function out(label, fmt, ...)
    lines[#lines + 1] = ("%-13s%s"):format(label, fmt:format(...))
  end
  local head = ("== %s: %s "):format(name, p.about)
  lines[#lines + 1] = head .. ("="):rep(math.max(3, 79 - #head))
  out("machine", "%s", env.machine.text)
  out("moonwatch", "%s%s%s", p.moonwatch:gsub("^" .. ROOT:gsub("%p", "%%%0") .. "/", ""),
    env.pin and ", pinned to CPU 0" or ", not pinned (fewer than 2 CPUs)",
    p.valgrind and ", under valgrind memcheck" or "")
  if p.probe == "dns" then
    out("dnsmasq", "%s%s, A records of %s (no upstream, no cache), UDP, %s", dnsmasq.version(),
      env.pin and " on CPU 1" or "", dnsmasq.ZONE, server.server)
  else
    out("nginx", "%s, 1 worker%s, keep-alive, %d-byte page, %s", nginx.version(),
      env.pin and " on CPU 1" or "", nginx.PAGE_SIZE, server.url)
  end
  out("parameters", "N=%s %s, check_every=%g s, D=%g s, timeout %g s, spread, %s",
    thousands(p.monitors), p.probe == "tcp" and "TcpMonitors (connect only)" or "monitors",
    p.interval, p.duration, p.timeout,
    p.probe == "dns" and "one query per check (type A, each monitor its own name)"
      or p.fresh and "a new connection per check" or "keep-alive connections")
  if p.alerts ~= "off" then
    out("alerts", "%s%s", p.alerts == "webhook"
      and ("mw.State, mw.Alerts, a webhook on every monitor to a receiver answering 204 "
        .. "after %g s%s"):format(p.receiver_delay, env.pin and " (CPU 1)" or "")
      or "mw.State and mw.Alerts, no notifier",
      p.storm_after and ("; every page 404 after %g s"):format(p.storm_after) or "")
  end
  out("conditions", "%s", p.probe == "tcp" and "none (up when the connection is made)"
    or p.probe == "dns" and "none given (rcode NOERROR)"
    or EXPECTS[p.expect].path
    and ("%s on /%s"):format(EXPECTS[p.expect].code, EXPECTS[p.expect].path)
    or "none given (status 200-299)")
  out("scheduled", "%s (%s/s)", thousands(s.scheduled), thousands(s.scheduled / elapsed))
  out("run", "%s (%.2f %% of scheduled)", thousands(s.run), run_pct)
  out("skipped", "%s (overlap, or the loop a whole interval behind)", thousands(s.skipped))
  out("failed", "%s (raised %s, down %s); cancelled at shutdown %s; in the log: %s "
    .. "'Check failed', %s 'Error executing'", thousands(failed), thousands(s.failed),
    thousands(s.down), thousands(s.cancelled), thousands(r.failed_records),
    thousands(r.error_records))
  out(p.probe == "http" and "checks/s" or "probes/s", "%s (run / %.2f s elapsed)",
    thousands(rate), elapsed)
  env.rates[name] = rate
  out("CPU", "%.3f s per 1,000 checks; %.1f %% of one core (user %.2f s, sys %.2f s)",
    s.run > 0 and cpu / s.run * 1000 or 0, cpu_pct, s.cpu_user_s, s.cpu_system_s)
  out("peak RSS", "%s", mb(s.maxrss_kb))
  out("lateness", "p50 %.2f ms, p99 %.2f ms, max %.2f ms", s.lateness_ms.p50,
    s.lateness_ms.p99, s.lateness_ms.max)
  out("startup", "%.3f s (process start to first ticks armed)", s.startup_s)
  local expected = s.run - s.cancelled - s.failed
  local logged_ok = r.check_records == expected
  out("log", "%s records (%s), %s check records (%s %s): %s",
    thousands(r.records), mb((r.log_bytes or 0) / 1024), thousands(r.check_records),
    thousands(r.ok_records), p.probe == "tcp" and "up"
      or p.probe == "dns" and "with NOERROR and 1 answer" or "with 200 and the page",
    logged_ok and "= run - cancelled - raised, OK"
      or ("MISMATCH, expected run - cancelled - raised = " .. thousands(expected)))
  if p.storm_after then
    out("went DOWN", "%s monitors (their 'is DOWN' records)", thousands(r.down_records))
  end
  if r.alerts then
    for nname, c in pairs(r.alerts) do
      out("notifier", "%s: %s delivered, %s queued at the end, %s dropped (%s overflow, "
        .. "%s max age), %s retried; the receiver answered %s", nname, thousands(c.sent),
        thousands(c.queued), thousands(c.dropped), thousands(c.dropped_overflow),
        thousands(c.dropped_max_age), thousands(c.retried),
        r.received and thousands(r.received) or "n/a")
    end
  end
  if p.metrics_listen then
    local sc = r.scrapes
    out("metrics", "mw.Metrics and mw.Endpoint on %s; %s", p.metrics_listen, sc
      and ("a real Prometheus (CPU 1) scraping every %g s: %s scrapes, mean %.1f ms, max "
        .. "%.1f ms, %s samples, up %s"):format(p.metrics, thousands(sc.count or 0),
        (sc.mean or 0) * 1000, (sc.max or 0) * 1000, thousands(sc.samples or 0),
        tostring(sc.up))
      or "no scrapes during the run")
    out("one scrape", "%s (curl, after the run)", r.scrape_s
      and ("%.1f ms, %s bytes"):format(r.scrape_s * 1000, thousands(r.scrape_bytes))
      or "failed")
  end
  if r.nginx_cpu then
    out(p.probe == "dns" and "dnsmasq CPU" or "nginx CPU", "%s used %.0f %% of a core during "
      .. "the run", p.probe == "dns" and "it" or "its worker", r.nginx_cpu * 100)
  end
  if wrk then
    out("wrk", "%s requests/s (-t1 -c100 -d%ds%s, same URL)%s",
      wrk.rate and thousands(wrk.rate) or "n/a", math.ceil(env.wrk_duration),
      env.pin and ", CPU 0" or "",
      #wrk.problems > 0 and ("; " .. table.concat(wrk.problems, "; ")) or "")
  end
  if wrk_close then
    out("wrk close", "%s requests/s (the same with Connection: close)%s",
      wrk_close.rate and thousands(wrk_close.rate) or "n/a",
      #wrk_close.problems > 0 and ("; " .. table.concat(wrk_close.problems, "; ")) or "")
  end
  if #r.samples > 1 and (name == "soak" or p.duration >= 60) then
    local parts = {}
    for _, smp in ipairs(r.samples) do
      parts[#parts + 1] = ("%gs %.1f"):format(smp.t, smp.rss / 1024)
    end
    out("RSS MB", "%s", table.concat(parts, ", "))
  end
  if r.stderr then out("stderr", "%s", (r.stderr:gsub("\n$", ""):gsub("\n", "\n             "))) end
  if not r.clean_exit or (r.exit_status ~= 0 and not p.valgrind) then
    out("exit", "status %s%s", tostring(r.exit_status),
      r.clean_exit and "" or " (did not end on SIGTERM: killed)")
  end

  -- targets
  local verdicts = {}
  local function target(ok, text, ...)
    verdicts[#verdicts + 1] = ("  %s  %s"):format(ok and "PASS" or "MISS", text:format(...))
    return ok
  end
  -- the targets are for given parameters: say so when this run had others
  local want, differs = SCENARIOS[name].target or {}, {}
  if want.monitors and p.monitors ~= want.monitors then
    differs[#differs + 1] = ("N=%s"):format(thousands(want.monitors))
  end
  if want.interval and p.interval ~= want.interval then
    differs[#differs + 1] = ("T=%g s"):format(want.interval)
  end
  if want.duration and p.duration < want.duration then
    differs[#differs + 1] = ("D=%g s"):format(want.duration)
  end
  local note = #differs == 0 and ""
    or (" (the target is for %s; this run differs)"):format(table.concat(differs, ", "))
  local all_ok = true
  local function t(ok, ...) all_ok = target(ok, ...) and all_ok end
  local saturated = s.skipped > 0 and cpu_pct >= 90
  local hint = saturated and "" or ": raise --monitors or lower --interval"
  if name == "saturation" then
    t(rate >= 30000, "1. >= 30,000 checks/s on one core: %s", thousands(rate))
    target(saturated, "   saturated (ticks skipped and CPU >= 90 %%): %s skipped, CPU %.0f %%%s",
      thousands(s.skipped), cpu_pct, hint)
  elseif name == "conditions" then
    -- its budget is relative: compare with `saturation` in the same session
    target(saturated, "   saturated (ticks skipped and CPU >= 90 %%): %s skipped, CPU %.0f %%%s",
      thousands(s.skipped), cpu_pct, hint)
  elseif name == "scale" or name == "soak" or name == "storm" then
    t(run_pct >= 99.9, "2. >= 99.9 %% of scheduled checks run: %.3f %%%s", run_pct, note)
    t(s.lateness_ms.p99 <= 5, "2. p99 lateness <= 5 ms: %.2f ms%s", s.lateness_ms.p99, note)
    t(cpu_pct <= 40, "2. <= 40 %% of one core: %.1f %%%s", cpu_pct, note)
    t(rss_mb <= 64, "2. peak RSS <= 64 MB: %.1f MB%s", rss_mb, note)
    if name == "soak" then
      local base, last, peak
      for _, smp in ipairs(r.samples) do
        if smp.t >= 60 then
          base = base or smp.rss
          last = smp.rss
          peak = math.max(peak or 0, smp.rss)
        end
      end
      if base then
        local growth = (peak - base) / base * 100
        t(growth <= 5, "4. RSS growth after the first minute <= 5 %%: %+.1f %% "
          .. "(%.1f MB at 60 s, peak %.1f MB, last %.1f MB)%s", growth, base / 1024,
          peak / 1024, last / 1024, note)
      else
        t(false, "4. RSS growth after the first minute: no sample after 60 s")
      end
    end
  elseif name == "startup" then
    t(s.startup_s <= 1, "3. start-up of %s monitors <= 1 s: %.3f s%s", thousands(p.monitors),
      s.startup_s, note)
  elseif name == "fresh" then
    t(rate >= 10000, "5. >= 10,000 checks/s with a new connection per check: %s",
      thousands(rate))
    target(saturated, "   saturated (ticks skipped and CPU >= 90 %%): %s skipped, CPU %.0f %%%s",
      thousands(s.skipped), cpu_pct, hint)
  elseif name == "tcp" then
    local http = env.rates.fresh
    if http then
      t(rate >= http, "7. TCP connect probes/s >= the fresh HTTP checks/s of this run: %s vs %s"
        .. " (%.2fx)", thousands(rate), thousands(http), rate / http)
    else
      t(false, "7. TCP connect probes/s >= fresh's checks/s: fresh did not run")
    end
    target(saturated, "   saturated (ticks skipped and CPU >= 90 %%): %s skipped, CPU %.0f %%%s",
      thousands(s.skipped), cpu_pct, hint)
  elseif name == "dns" then
    target(saturated, "   saturated (ticks skipped and CPU >= 90 %%): %s skipped, CPU %.0f %%%s",
      thousands(s.skipped), cpu_pct, hint)
  elseif name == "valgrind" then
    local v = r.valgrind
    local clean = v.errors == 0 and v.definitely == 0 and v.indirectly == 0
    t(clean and r.exit_status ~= 99, "4. valgrind: %d errors; lost: definitely %s B, "
      .. "indirectly %s B, possibly %s B; still reachable %s B; exit status %s",
      v.errors, thousands(v.definitely), thousands(v.indirectly), thousands(v.possibly),
      thousands(v.reachable), tostring(r.exit_status))
  end
  t(logged_ok, "   every check run wrote its log record")
  if p.storm_after then
    t(r.down_records == p.monitors, "   every monitor went DOWN: %s of %s",
      thousands(r.down_records), thousands(p.monitors))
    lines[#lines + 1] = "targets"
    for _, v in ipairs(verdicts) do lines[#lines + 1] = v end
    print(table.concat(lines, "\n"))
    print()
    return all_ok
  end
  local checks_ok = failed == 0 and r.failed_records == 0 and r.error_records == 0
    and r.ok_records == r.check_records
  if p.probe == "tcp" then
    t(checks_ok, "   every probe connected: %s of %s logged up", thousands(r.ok_records),
      thousands(r.check_records))
  else
    t(checks_ok, "   every check succeeded (%s): %s of %s logged with both",
      p.probe == "dns" and "NOERROR, 1 answer" or ("200, %d-byte page"):format(nginx.PAGE_SIZE),
      thousands(r.ok_records), thousands(r.check_records))
  end
  lines[#lines + 1] = "targets"
  for _, v in ipairs(verdicts) do lines[#lines + 1] = v end
  print(table.concat(lines, "\n"))
  print()
  return all_ok
end

-- Main --------------------------------------------------------------------------

local function params(name, o)
  local d = SCENARIOS[name]
  return {
    monitors = o.monitors or d.monitors,
    interval = o.interval or d.interval,
    duration = o.duration or d.duration,
    timeout = o.timeout or 5,
    fresh = o.fresh or d.fresh,
    expect = o.expect or d.expect or "none",
    alerts = o.alerts or d.alerts or "off",
    receiver_delay = o.receiver_delay or 0.2,
    storm_after = d.storm_after and (o.storm_after or d.storm_after),
    metrics = o.metrics,
    metrics_listen = o.metrics and ("127.0.0.1:" .. util.free_port()) or nil,
    valgrind = name == "valgrind",
    probe = d.probe or "http",
    moonwatch = o.moonwatch,
    perf = o.perf,
    about = d.about,
  }
end

local function run_scenario(name, o, env, server)
  local p = params(name, o)
  if p.valgrind and not util.have("valgrind") then
    print(("== %s: skipped, valgrind is not installed (apt-get install valgrind)\n"):format(name))
    return false
  end
  if p.probe == "dns" and not util.have("dnsmasq") then
    print(("== %s: skipped, dnsmasq is not installed (scripts/deps bench: dnsmasq-base)\n")
      :format(name))
    return false
  end
  local dir = util.tmpdir("bench")
  local dns_server
  local ok, res = pcall(function()
    if p.probe == "dns" then
      dns_server = dnsmasq.start{ cpu = env.pin and "1" or nil }
      server = dns_server
    end
    io.stderr:write(("bench: %s: %s monitors every %g s for %g s ...\n"):format(name,
      thousands(p.monitors), p.interval, p.duration))
    local receiver = p.alerts == "webhook" and start_receiver(p.receiver_delay, env, dir)
    local rok, r = pcall(run_daemon, p, env, server, dir, receiver or nil)
    if receiver then util.terminate(receiver.pid, 5) end
    if not rok then error(r, 0) end
    local wrk, wrk_close
    if env.wrk_duration > 0 and env.wrk and not p.valgrind and p.probe ~= "dns" then
      wrk = run_wrk(server.url, env.wrk_duration, env)
      if p.fresh then
        wrk_close = run_wrk(server.url, env.wrk_duration, env, "-H 'Connection: close' ")
      end
    end
    return report(name, p, env, server, r, wrk, wrk_close)
  end)
  if dns_server then dns_server:stop() end
  if o.keep then
    io.stderr:write("bench: kept " .. dir .. "\n")
  else
    util.rmdir(dir)
  end
  if not ok then
    if tostring(res):match("interrupted") then error(res, 0) end -- Ctrl-C: stop here
    print(("== %s: ERROR: %s\n"):format(name, tostring(res)))
    return false
  end
  return res
end

local function main(argv)
  local scenario, o = parse(argv)
  local f = io.open(o.moonwatch, "rb")
  if not f then die(o.moonwatch .. " does not exist: build it first (scripts/build)") end
  f:close()
  local names = scenario == "all" and ALL or { scenario }
  -- tcp's target is fresh's rate on the same machine in the same run
  if scenario == "tcp" then names = { "fresh", "tcp" } end
  local http = false -- whether a scenario needs nginx (all but dns)
  for _, name in ipairs(names) do http = http or SCENARIOS[name].probe ~= "dns" end
  if http and not util.have("nginx") then die("nginx is not installed (scripts/deps bench)") end
  local machine = util.machine()
  local env = {
    machine = machine,
    -- run.sh runs this script on CPU 1: count every CPU
    pin = util.have("taskset") and machine.all >= 2,
    wrk = util.have("wrk"),
    wrk_duration = o.wrk_duration,
    rates = {}, -- checks/s of each scenario run, by name
  }
  if not env.pin then
    io.stderr:write("bench: fewer than 2 CPUs or no taskset: nothing is pinned\n")
  end
  if not env.wrk then io.stderr:write("bench: wrk is not installed: no wrk figures\n") end
  local server = http and nginx.start{ cpu = env.pin and "1" or nil } or nil
  local ok, res = pcall(function()
    local all_ok = true
    for _, name in ipairs(names) do
      all_ok = run_scenario(name, o, env, server) and all_ok
    end
    return all_ok
  end)
  if server then server:stop() end
  if not ok then error(res, 0) end
  return res
end

local ok, res = pcall(main, arg)
if not ok then
  io.stderr:write("bench: ", tostring(res), "\n")
  os.exit(tostring(res):match("interrupted") and 130 or 1)
end
os.exit(res and 0 or 1)
