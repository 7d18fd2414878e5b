-- A first benchmark: HTTP checks per second on one core.
--
-- Starts a private nginx (1 worker, keep-alive, a 648-byte page, on a free
-- port of 127.0.0.1, everything in a temporary directory), runs N tasks that
-- each loop req:perform() on a prepared request for D seconds, then runs wrk
-- against the same URL for comparison, and prints both figures.
--
--   taskset -c 0 lua5.4 bench/http_checks.lua [seconds] [tasks]
--
-- bench/run.sh builds the module if needed and does the pinning: this
-- process on core 0, nginx on core 1 (when the machine has two cores).
-- Environment: BENCH_SECONDS, BENCH_TASKS, BENCH_WRK_SECONDS,
-- BENCH_WRK_CONNECTIONS, BENCH_NGINX_CPU (default 1), BENCH_CLIENT_CPU
-- (default 0: the core wrk is pinned to), BENCH_ACCESS_LOG=1 to have nginx
-- write its access log (off by default: it would cost nginx more than the
-- client being measured).
local script_dir = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.cpath = script_dir .. "/../build/lib/?.so;" .. package.cpath
local core = require("moonwatch.core")
local socket = require("socket")

local SECONDS = tonumber(arg[1] or os.getenv("BENCH_SECONDS")) or 10
local TASKS = math.tointeger(tonumber(arg[2] or os.getenv("BENCH_TASKS"))) or 200
local WRK_SECONDS = tonumber(os.getenv("BENCH_WRK_SECONDS")) or 5
local WRK_CONNECTIONS = math.tointeger(tonumber(os.getenv("BENCH_WRK_CONNECTIONS"))) or 100
local NGINX_CPU = os.getenv("BENCH_NGINX_CPU") or "1"
local CLIENT_CPU = os.getenv("BENCH_CLIENT_CPU") or "0"
local PAGE_SIZE = 648

local function q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function sh(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end

local function read_cmd(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  return out
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function write_file(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

local function have(tool)
  return sh("command -v " .. tool .. " >/dev/null 2>&1")
end

local function free_port()
  local s = assert(socket.tcp())
  assert(s:bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return port
end

local function machine()
  local cpuinfo = read_file("/proc/cpuinfo") or ""
  local model = cpuinfo:match("model name%s*:%s*([^\n]+)") or "unknown CPU"
  local nproc = read_cmd("nproc --all 2>/dev/null"):match("%d+") or "?"
  local status = read_file("/proc/self/status") or ""
  local allowed = status:match("Cpus_allowed_list:%s*(%S+)") or "?"
  return ("%s x %s; this process may run on CPU(s) %s"):format(nproc, model, allowed), nproc
end

local function cpu_seconds()
  -- utime + stime of this process, in clock ticks (fields 14 and 15)
  local stat = read_file("/proc/self/stat") or ""
  local rest = stat:match("%) (.*)$") or ""
  local fields = {}
  for f in rest:gmatch("%S+") do fields[#fields + 1] = f end
  local ticks = tonumber(read_cmd("getconf CLK_TCK 2>/dev/null"):match("%d+")) or 100
  return ((tonumber(fields[12]) or 0) + (tonumber(fields[13]) or 0)) / ticks
end

-- nginx --------------------------------------------------------------------

local Nginx = {}
Nginx.__index = Nginx

local function start_nginx(pin)
  local dir = os.tmpname()
  os.remove(dir)
  -- readable by nginx's worker, which runs as nobody when started as root
  assert(sh("mkdir -m 755 " .. q(dir) .. " && mkdir -m 755 " .. q(dir .. "/www")))
  local port = free_port()
  local page = ("<!DOCTYPE html><html><body><p>moonwatch bench</p></body></html>\n")
  page = page .. ("x"):rep(PAGE_SIZE - #page - 1) .. "\n"
  assert(#page == PAGE_SIZE)
  write_file(dir .. "/www/index.html", page)
  local access = os.getenv("BENCH_ACCESS_LOG") == "1"
    and ("access_log %s/access.log combined buffer=256k flush=1s;"):format(dir)
    or "access_log off;"
  write_file(dir .. "/nginx.conf", table.concat({
    "worker_processes 1;",
    "daemon off;",
    ("pid %s/nginx.pid;"):format(dir),
    ("error_log %s/error.log warn;"):format(dir),
    "events { worker_connections 8192; multi_accept on; }",
    "http {",
    "  " .. access,
    ("  client_body_temp_path %s/body;"):format(dir),
    ("  proxy_temp_path %s/proxy;"):format(dir),
    ("  fastcgi_temp_path %s/fastcgi;"):format(dir),
    ("  uwsgi_temp_path %s/uwsgi;"):format(dir),
    ("  scgi_temp_path %s/scgi;"):format(dir),
    "  default_type text/html;",
    "  sendfile on;",
    "  tcp_nopush on;",
    "  keepalive_timeout 120s;",
    "  keepalive_requests 100000000;",
    "  server {",
    ("    listen 127.0.0.1:%d reuseport backlog=4096;"):format(port),
    ("    root %s/www;"):format(dir),
    "    location / { index index.html; }",
    "  }",
    "}",
    "",
  }, "\n"))
  local prefix = pin and ("taskset -c " .. NGINX_CPU .. " ") or ""
  local cmd = ("%snginx -c %s -p %s >%s 2>&1 </dev/null &"):format(prefix, q(dir .. "/nginx.conf"),
    q(dir .. "/"), q(dir .. "/nginx.out"))
  assert(sh(cmd), "could not start nginx")
  local self = setmetatable({ dir = dir, port = port, url = ("http://127.0.0.1:%d/"):format(port) },
                            Nginx)
  -- ready when the pid file names a process and the port accepts
  local deadline = os.time() + 10
  while true do
    local pid = (read_file(dir .. "/nginx.pid") or ""):match("%d+")
    if pid then
      local c = socket.tcp()
      c:settimeout(0.2)
      if c:connect("127.0.0.1", port) then
        c:close()
        self.pid = pid
        return self
      end
      c:close()
    end
    if os.time() > deadline then
      local log = (read_file(dir .. "/nginx.out") or "") .. (read_file(dir .. "/error.log") or "")
      self:stop()
      error("nginx did not start:\n" .. log)
    end
    socket.sleep(0.05)
  end
end

function Nginx:stop()
  local pid = self.pid or (read_file(self.dir .. "/nginx.pid") or ""):match("%d+")
  if pid then
    sh("kill -TERM " .. pid .. " 2>/dev/null")
    for _ = 1, 100 do -- wait up to 5 s for it to go
      if not sh("kill -0 " .. pid .. " 2>/dev/null") then break end
      socket.sleep(0.05)
    end
  end
  if self.dir and self.dir:match("^/tmp/") then sh("rm -rf -- " .. q(self.dir)) end
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
local pin = have("taskset") and tonumber(nproc) and tonumber(nproc) >= 2
print("machine: " .. desc)
print(("moonwatch.core %s (%s), %s"):format(core.version, _VERSION,
  read_cmd("nginx -v 2>&1"):gsub("%s+$", "")))
if not pin then
  print("note: fewer than 2 CPUs or no taskset: client and nginx share the CPU")
end

local nginx = start_nginx(pin)
local ok, err = pcall(function()
  print(("nginx: %s (pid %s%s), 1 worker, %d-byte page, keep-alive"):format(nginx.url, nginx.pid,
    pin and (", CPU " .. NGINX_CPU) or "", PAGE_SIZE))
  print(("moonwatch: %d tasks looping req:perform() for %g s ..."):format(TASKS, SECONDS))
  local m = bench_moonwatch(nginx.url, TASKS, SECONDS)
  print(("  %d checks in %.2f s, %d failed%s; this process used %.0f%% of a CPU"):format(m.ok,
    m.elapsed, m.failed, m.first_error and (" (first: " .. m.first_error .. ")") or "",
    m.cpu * 100))
  local wrk_rate, wrk_out
  if have("wrk") then
    print(("wrk: -t1 -c%d -d%ds%s ..."):format(WRK_CONNECTIONS, math.ceil(WRK_SECONDS),
      pin and (" on CPU " .. CLIENT_CPU) or ""))
    wrk_rate, wrk_out = bench_wrk(nginx.url, pin)
    if not wrk_rate then print(wrk_out) end
  end
  print(("moonwatch: %.0f checks/s on one core; wrk: %s requests/s"):format(m.rate,
    wrk_rate and ("%.0f"):format(wrk_rate) or "n/a"))
end)
nginx:stop()
assert(core.stats().tasks == 0, "tasks left")
if not ok then error(err, 0) end
