-- Local test fixture: starts spec/fixtures/server.py (HTTP/HTTPS on
-- 127.0.0.1, a DNS responder and a DNS blackhole) so that no spec ever
-- touches the internet.
--
--   local fixture = require("support.fixture")
--   local srv = fixture.start()            -- or fixture.start{ tls = true }
--   srv:url("/page")  --> "http://127.0.0.1:PORT/page"
--   srv:stop()
--
-- Server fields: port, dns_port, dns_blackhole_port, pid, base, tls, dir,
-- log_file, and for TLS ca_file (the self-signed certificate), cert_file,
-- key_file. See spec/fixtures/README.md for the endpoints.
local fixture = {}

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
fixture.shell_quote = shell_quote

-- Absolute directory of this file, so the server is found from any cwd.
local function this_dir()
  local src = debug.getinfo(1, "S").source
  src = src:sub(1, 1) == "@" and src:sub(2) or src
  local dir = src:match("^(.*)/[^/]*$") or "."
  if dir:sub(1, 1) ~= "/" then
    local p = io.popen("pwd")
    local cwd = p and p:read("l")
    if p then p:close() end
    cwd = cwd or os.getenv("PWD") or "."
    dir = (dir == ".") and cwd or (cwd .. "/" .. dir:gsub("^%./", ""))
  end
  return dir
end

local SUPPORT_DIR = this_dir()
fixture.server_script = SUPPORT_DIR .. "/../fixtures/server.py"
fixture.python = os.getenv("MOONWATCH_FIXTURE_PYTHON") or "python3"

local function run(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end

--- The contents of a file, or nil when it cannot be read.
local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end
fixture.read_file = read_file

--- Creates a fresh private temporary directory and returns its path.
--- Inside a task: polls `probe` every `every` seconds (0.02) until it
--- returns a true value, which it returns; fails the spec after `seconds`.
--- For waiting on another process (a receiver, Alertmanager) while the loop
--- goes on with moonwatch's own work.
function fixture.await(what, seconds, probe, every)
  local core = require("moonwatch.core")
  local deadline = core.now() + seconds
  while core.now() < deadline do
    local v = probe()
    if v then return v end
    core.sleep(every or 0.02)
  end
  error("timed out waiting for " .. what, 2)
end

function fixture.tmpdir()
  local path = os.tmpname() -- creates an empty file with a unique name
  os.remove(path)
  if not run("mkdir -m 700 " .. shell_quote(path) .. " 2>/dev/null") then
    error("fixture.tmpdir: cannot create " .. path)
  end
  return path
end

--- Removes a file or directory tree (rm -rf). Refuses suspicious paths.
function fixture.rmtree(path)
  if type(path) ~= "string" or path == "" or path == "/" or not path:find("[^/.]") then
    error("fixture.rmtree: refusing to remove " .. tostring(path))
  end
  return run("rm -rf -- " .. shell_quote(path))
end

--- Makes a self-signed certificate for CN localhost (SAN DNS:localhost,
-- IP:127.0.0.1), valid `days` days (default 1) from now, in dir (a fresh
-- tmpdir when nil). Returns cert path, key path.
function fixture.make_cert(dir, days)
  dir = dir or fixture.tmpdir()
  days = math.tointeger(days or 1)
  assert(days and days > 0, "fixture.make_cert: days must be a positive integer")
  local cert, key = dir .. "/cert.pem", dir .. "/key.pem"
  local log = dir .. "/openssl.log"
  local cmd = table.concat({
    "openssl req -x509 -newkey rsa:2048 -nodes -days " .. days .. " -sha256",
    "-subj /CN=localhost",
    "-addext", shell_quote("subjectAltName=DNS:localhost,IP:127.0.0.1"),
    "-keyout", shell_quote(key), "-out", shell_quote(cert),
    ">" .. shell_quote(log), "2>&1",
  }, " ")
  if not run(cmd) then
    error("fixture.make_cert: openssl failed:\n" .. (read_file(log) or ""))
  end
  os.remove(log)
  return cert, key
end

local Server = {}
Server.__index = Server

--- Full URL of path on this server ("/x" -> "http://127.0.0.1:PORT/x").
function Server:url(path)
  path = path or "/"
  if path:sub(1, 1) ~= "/" then path = "/" .. path end
  return self.base .. path
end

--- Stops the server and waits for the process to exit; removes temp files.
-- Safe to call more than once. Returns the process's exit status like
-- file:close() on a popen handle.
function Server:stop()
  if self._stopped then return true end
  self._stopped = true
  run("kill -TERM " .. math.tointeger(self.pid) .. " 2>/dev/null")
  if self._stdin then self._stdin:close() end -- EOF also makes it exit
  local ok, how, code = self._proc:close()   -- waits for the process
  if self.dir then fixture.rmtree(self.dir) end
  return ok, how, code
end

Server.__gc = function(self)
  if not self._stopped then pcall(Server.stop, self) end
end

--- Starts a fixture server. opts.tls = true serves HTTPS with a fresh
-- self-signed certificate (srv.ca_file verifies it), valid opts.cert_days
-- days (default 1). Errors, with the server's output, if it does not come up.
function fixture.start(opts)
  opts = opts or {}
  local dir = fixture.tmpdir()
  local fifo = dir .. "/stdin"
  local log_file = dir .. "/server.log"
  if not run("mkfifo -m 600 " .. shell_quote(fifo)) then
    fixture.rmtree(dir)
    error("fixture.start: mkfifo failed")
  end

  local args, cert, key = "", nil, nil
  if opts.tls then
    local ok, c, k = pcall(fixture.make_cert, dir, opts.cert_days)
    if not ok then
      fixture.rmtree(dir)
      error(c, 2)
    end
    cert, key = c, k
    args = " --tls " .. shell_quote(cert) .. " " .. shell_quote(key)
  end

  -- The server's stdin is a FIFO whose only writer is this process, so it
  -- sees EOF (and exits) when this process dies, whatever the cause. The
  -- shell's "<fifo" blocks until the io.open below opens the write side.
  local cmd = ("exec %s %s%s <%s 2>%s"):format(fixture.python,
    shell_quote(fixture.server_script), args, shell_quote(fifo), shell_quote(log_file))
  local proc = assert(io.popen(cmd, "r"))
  -- "r+" (O_RDWR) never blocks on a FIFO, even if the shell died early.
  local stdin = assert(io.open(fifo, "r+"))

  -- Blocks until the READY line, or EOF if the server fails to start.
  local line = proc:read("l")
  local http, bh, dns, pid
  if line then
    http, bh, dns, pid = line:match("^READY http=(%d+) dns_blackhole=(%d+) dns=(%d+) pid=(%d+)$")
  end
  if not http then
    stdin:close()
    local rest = proc:read("a") or ""
    proc:close()
    local out = (line or "") .. "\n" .. rest .. (read_file(log_file) or "")
    fixture.rmtree(dir)
    error("fixture.start: server did not start (" .. cmd .. "):\n" .. out, 2)
  end
  os.remove(fifo) -- both ends are open now

  local srv = setmetatable({
    port = tonumber(http),
    dns_port = tonumber(dns),
    dns_blackhole_port = tonumber(bh),
    pid = tonumber(pid),
    tls = opts.tls and true or false,
    dir = dir,
    log_file = log_file,
    cert_file = cert,
    key_file = key,
    ca_file = cert,
    _proc = proc,
    _stdin = stdin,
  }, Server)
  if srv.tls then
    srv.base = "https://localhost:" .. srv.port
  else
    srv.base = "http://127.0.0.1:" .. srv.port
  end
  return srv
end

return fixture
