-- A first benchmark: HTTP checks per second on one core.
--
-- Starts a private nginx (1 worker, keep-alive, a 648-byte page, on a free
-- port of 127.0.0.1, everything in a temporary directory), runs N tasks that
-- each loop req:perform() on a prepared request for D seconds, then runs wrk
-- against the same URL for comparison, and prints both figures.
--
--   taskset -c 0 lua5.4 bench/http_checks.lua [seconds] [tasks]
--   bench/run.sh core [seconds] [tasks]
--
-- bench/run.sh builds the module if needed and does the pinning: this
-- process on core 0, nginx on core 1 (when the machine has two cores).
-- Environment: BENCH_SECONDS, BENCH_TASKS, BENCH_WRK_SECONDS,
-- BENCH_WRK_CONNECTIONS, BENCH_NGINX_CPU (default 1), BENCH_CLIENT_CPU
-- (default 0: the core wrk is pinned to), BENCH_ACCESS_LOG=1 to have nginx
-- write its access log (off by default: it would cost nginx more than the
-- client being measured).
local script_dir = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = script_dir .. "/?.lua;" .. package.path
package.cpath = script_dir .. "/../build/lib/?.so;" .. package.cpath
local core = require("moonwatch.core")
local util = require("util")
local nginx = require("nginx")

local SECONDS = tonumber(arg[1] or os.getenv("BENCH_SECONDS")) or 10
local TASKS = math.tointeger(tonumber(arg[2] or os.getenv("BENCH_TASKS"))) or 200
local WRK_SECONDS = tonumber(os.getenv("BENCH_WRK_SECONDS")) or 5
local WRK_CONNECTIONS = math.tointeger(tonumber(os.getenv("BENCH_WRK_CONNECTIONS"))) or 100
local NGINX_CPU = os.getenv("BENCH_NGINX_CPU") or "1"
local CLIENT_CPU = os.getenv("BENCH_CLIENT_CPU") or "0"
local PAGE_SIZE = nginx.PAGE_SIZE
local q, have, read_cmd = util.q, util.have, util.read_cmd

local function machine()
  local m = util.machine()
  local status = util.read_file("/proc/self/status") or ""
  local allowed = status:match("Cpus_allowed_list:%s*(%S+)") or "?"
  -- run.sh pins this process: count every CPU, not only those it may use
  return ("%s; this process may run on CPU(s) %s"):format(m.text, allowed), m.all
end

local function cpu_seconds()
  return util.cpu_seconds("self") or 0
end

-- the measurement ----------------------------------------------------------

local function bench_moonwatch(url, tasks, seconds)
  local ok, failed, first_error = 0, 0, nil
  local measuring, stop = false, false
  local requests = {}
  for i = 1, tasks do requests[i] = core.http_prepare{ url = url, timeout = 10 } end
  local function worker(req)
    while not stop do
      local r, msg = req:perform()
      if r and r.status == 200 and r.size == PAGE_SIZE then
        if measuring then ok = ok + 1 end
      else
        failed = failed + 1
        first_error = first_error or msg or ("status " .. tostring(r and r.status))
      end
    end
  end
  local t0, t1, cpu0, cpu1
  core.run(function()
    for i = 1, tasks do core.spawn(worker, requests[i]) end
    core.sleep(1) -- warm-up: every connection open, caches warm
    measuring = true
    t0, cpu0 = core.now(), cpu_seconds()
    core.sleep(seconds)
    measuring = false
    t1, cpu1 = core.now(), cpu_seconds()
    stop = true
  end)
  core.run() -- let the workers finish their last perform
  local elapsed = t1 - t0
  return {
    rate = ok / elapsed, ok = ok, failed = failed, first_error = first_error,
    elapsed = elapsed, cpu = (cpu1 - cpu0) / elapsed,
  }
end

local function bench_wrk(url, pin)
  local prefix = pin and ("taskset -c " .. CLIENT_CPU .. " ") or ""
  local out = read_cmd(("%swrk -t1 -c%d -d%ds %s 2>&1"):format(prefix, WRK_CONNECTIONS,
    math.ceil(WRK_SECONDS), q(url)))
  return tonumber(out:match("Requests/sec:%s*([%d%.]+)")), out
end

-- main ---------------------------------------------------------------------

local desc, nproc = machine()
local pin = have("taskset") and nproc >= 2
print("machine: " .. desc)
print(("moonwatch.core %s (%s), %s"):format(core.version, _VERSION,
  read_cmd("nginx -v 2>&1"):gsub("%s+$", "")))
if not pin then
  print("note: fewer than 2 CPUs or no taskset: client and nginx share the CPU")
end

local server = nginx.start{ cpu = pin and NGINX_CPU or nil }
local ok, err = pcall(function()
  print(("nginx: %s (pid %s%s), 1 worker, %d-byte page, keep-alive"):format(server.url, server.pid,
    pin and (", CPU " .. NGINX_CPU) or "", PAGE_SIZE))
  print(("moonwatch: %d tasks looping req:perform() for %g s ..."):format(TASKS, SECONDS))
  local m = bench_moonwatch(server.url, TASKS, SECONDS)
  print(("  %d checks in %.2f s, %d failed%s; this process used %.0f%% of a CPU"):format(m.ok,
    m.elapsed, m.failed, m.first_error and (" (first: " .. m.first_error .. ")") or "",
    m.cpu * 100))
  local wrk_rate, wrk_out
  if have("wrk") then
    print(("wrk: -t1 -c%d -d%ds%s ..."):format(WRK_CONNECTIONS, math.ceil(WRK_SECONDS),
      pin and (" on CPU " .. CLIENT_CPU) or ""))
    wrk_rate, wrk_out = bench_wrk(server.url, pin)
    if not wrk_rate then print(wrk_out) end
  end
  print(("moonwatch: %.0f checks/s on one core; wrk: %s requests/s"):format(m.rate,
    wrk_rate and ("%.0f"):format(wrk_rate) or "n/a"))
end)
server:stop()
assert(core.stats().tasks == 0, "tasks left")
if not ok then error(err, 0) end
