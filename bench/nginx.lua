-- A private nginx for the benchmarks: one worker, keep-alive, a 648-byte
-- page (and health.json, a 648-byte JSON document), on a free port of
-- 127.0.0.1, everything in a temporary directory.
--
--   local nginx = require("nginx")
--   local server = nginx.start{ cpu = "1" }   -- pinned with taskset, or not
--   ... server.url, server.pid, server:worker_pid(), nginx.version() ...
--   server:stop()
--
-- BENCH_ACCESS_LOG=1 makes nginx write its access log (off by default: it
-- would cost nginx more than the client being measured).
local util = require("util")

local M = {}

M.PAGE_SIZE = 648

local Nginx = {}
Nginx.__index = Nginx

local function page()
  local p = "<!DOCTYPE html><html><body><p>moonwatch bench</p></body></html>\n"
  p = p .. ("x"):rep(M.PAGE_SIZE - #p - 1) .. "\n"
  assert(#p == M.PAGE_SIZE)
  return p
end

-- The same size as the page, in JSON, for the conditions of `--expect three`.
local function health()
  local p = '{"status":"ok","service":"moonwatch bench","checks":[{"name":"db","ok":true}],'
    .. '"pad":"'
  p = p .. ("x"):rep(M.PAGE_SIZE - #p - 3) .. '"}\n'
  assert(#p == M.PAGE_SIZE)
  return p
end
M.HEALTH = "health.json"

local function config(dir, port)
  local access = os.getenv("BENCH_ACCESS_LOG") == "1"
    and ("access_log %s/access.log combined buffer=256k flush=1s;"):format(dir)
    or "access_log off;"
  return table.concat({
    "worker_processes 1;",
    "worker_rlimit_nofile 65536;",
    "daemon off;",
    ("pid %s/nginx.pid;"):format(dir),
    ("error_log %s/error.log warn;"):format(dir),
    "events { worker_connections 30000; multi_accept on; }",
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
  }, "\n")
end

--- Starts nginx and waits until it accepts connections.
---@param opts {cpu?: string}  cpu: pin nginx (master and worker) to this CPU
function M.start(opts)
  opts = opts or {}
  local dir = util.tmpdir("nginx")
  assert(util.sh("mkdir -m 755 " .. util.q(dir .. "/www")))
  util.write_file(dir .. "/www/index.html", page())
  util.write_file(dir .. "/www/" .. M.HEALTH, health())
  local port = util.free_port()
  util.write_file(dir .. "/nginx.conf", config(dir, port))
  local prefix = opts.cpu and ("taskset -c " .. opts.cpu .. " ") or ""
  local cmd = ("%snginx -c %s -p %s >%s 2>&1 </dev/null &"):format(prefix,
    util.q(dir .. "/nginx.conf"), util.q(dir .. "/"), util.q(dir .. "/nginx.out"))
  assert(util.sh(cmd), "could not start nginx")
  local self = setmetatable({
    dir = dir, port = port, cpu = opts.cpu,
    url = ("http://127.0.0.1:%d/"):format(port),
  }, Nginx)
  -- ready when the pid file names a process and the port accepts
  local deadline = util.now() + 10
  while true do
    local pid = (util.read_file(dir .. "/nginx.pid") or ""):match("%d+")
    if pid and not self.pid then
      self.pid = pid
      util.track(pid)
    end
    if pid and util.accepts(port) then return self end
    if util.now() > deadline then
      local log = (util.read_file(dir .. "/nginx.out") or "")
        .. (util.read_file(dir .. "/error.log") or "")
      self:stop()
      error("nginx did not start:\n" .. log, 0)
    end
    util.sleep(0.05)
  end
end

--- The pid of the (one) worker process.
function Nginx:worker_pid()
  local children = util.read_file(("/proc/%s/task/%s/children"):format(self.pid, self.pid))
  return children and children:match("%d+")
end

--- "nginx/1.22.1"
function M.version()
  return (util.read_cmd("nginx -v 2>&1"):match("nginx/%S+")) or "nginx"
end

function Nginx:stop()
  local pid = self.pid or (util.read_file(self.dir .. "/nginx.pid") or ""):match("%d+")
  if pid then util.terminate(pid, 5) end
  util.rmdir(self.dir)
end

return M
