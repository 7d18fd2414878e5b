-- TCP and TLS fixtures for the TCP probe specs: starts
-- spec/fixtures/tcp_server.py on 127.0.0.1 and ::1 (see its header for the
-- services) with three TLS services made at start:
--
--   local tcp_fixture = require("support.tcp_fixture")
--   local srv = tcp_fixture.start()
--   srv.ports.echo, srv.ports.banner, ... srv.ports.refused, srv.ports.backlog
--   srv.ports.tls_valid  (a certificate for localhost / 127.0.0.1, 3 days)
--   srv.ports.tls_expired (the same names, expired a day ago)
--   srv.ports.tls_wrong_host (valid 3 days, for wrong.example only)
--   srv.ca.valid, srv.ca.expired, srv.ca.wrong_host: each self-signed
--   certificate, the CA file that verifies it
--   srv:stop()
local fixture = require("support.fixture")

local M = {}

local q = fixture.shell_quote

local function run(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end

local function openssl(dir, args)
  local log = dir .. "/openssl.log"
  if not run("openssl " .. args .. " >" .. q(log) .. " 2>&1") then
    error("tcp_fixture: openssl " .. args .. " failed:\n" .. (fixture.read_file(log) or ""), 3)
  end
  os.remove(log)
end

--- A self-signed certificate for CN=wrong.example (SAN DNS:wrong.example),
--- valid `days` days: cert path, key path.
function M.make_wrong_host_cert(dir, days)
  local cert, key = dir .. "/wrong.pem", dir .. "/wrong-key.pem"
  openssl(dir, "req -x509 -newkey rsa:2048 -nodes -sha256 -days " .. math.tointeger(days)
    .. " -subj /CN=wrong.example -addext " .. q("subjectAltName=DNS:wrong.example")
    .. " -keyout " .. q(key) .. " -out " .. q(cert))
  return cert, key
end

--- fixture.make_cert's certificate (localhost, 127.0.0.1) re-signed so that
--- it expired a day ago: cert path, key path.
function M.make_expired_cert(dir)
  local sub = dir .. "/expired"
  assert(run("mkdir " .. q(sub)))
  local fresh, key = fixture.make_cert(sub, 1)
  local cert = sub .. "/expired.pem"
  -- -days -1: notAfter a day before notBefore (now), so it has expired
  openssl(dir, "x509 -in " .. q(fresh) .. " -signkey " .. q(key) .. " -days -1 -out " .. q(cert))
  return cert, key
end

local Server = {}
Server.__index = Server

function Server:stop()
  if self._stopped then return true end
  self._stopped = true
  run("kill -TERM " .. math.tointeger(self.pid) .. " 2>/dev/null")
  self._stdin:close()
  local ok, how, code = self._proc:close()
  fixture.rmtree(self.dir)
  return ok, how, code
end

Server.__gc = function(self)
  if not self._stopped then pcall(Server.stop, self) end
end

function M.start()
  local dir = fixture.tmpdir()
  local ok, err = pcall(function()
    local valid_dir = dir .. "/valid"
    assert(run("mkdir " .. q(valid_dir)))
    local valid, valid_key = fixture.make_cert(valid_dir, 3)
    local expired, expired_key = M.make_expired_cert(dir)
    local wrong, wrong_key = M.make_wrong_host_cert(dir, 3)
    return { valid = { valid, valid_key }, expired = { expired, expired_key },
             wrong_host = { wrong, wrong_key } }
  end)
  if not ok then
    fixture.rmtree(dir)
    error(err, 2)
  end
  local certs = err
  local script = fixture.server_script:gsub("server%.py$", "tcp_server.py")
  local args = {}
  for _, name in ipairs{ "valid", "expired", "wrong_host" } do
    args[#args + 1] = ("--tls tls_%s %s %s"):format(name, q(certs[name][1]), q(certs[name][2]))
  end
  local fifo, log_file = dir .. "/stdin", dir .. "/server.log"
  assert(run("mkfifo -m 600 " .. q(fifo)))
  local cmd = ("exec %s %s %s <%s 2>%s"):format(fixture.python, q(script),
    table.concat(args, " "), q(fifo), q(log_file))
  local proc = assert(io.popen(cmd, "r"))
  local stdin = assert(io.open(fifo, "r+"))
  local line = proc:read("l")
  if not line or not line:match("^READY ") then
    stdin:close()
    local rest = proc:read("a") or ""
    proc:close()
    local out = (line or "") .. "\n" .. rest .. (fixture.read_file(log_file) or "")
    fixture.rmtree(dir)
    error("tcp_fixture.start: server did not start (" .. cmd .. "):\n" .. out, 2)
  end
  os.remove(fifo)
  local ports = {}
  for k, v in line:gmatch("(%w[%w_]*)=(%d+)") do ports[k] = tonumber(v) end
  return setmetatable({
    ports = ports, pid = ports.pid, dir = dir, log_file = log_file,
    ca = { valid = certs.valid[1], expired = certs.expired[1], wrong_host = certs.wrong_host[1] },
    _proc = proc, _stdin = stdin,
  }, Server)
end

return M
