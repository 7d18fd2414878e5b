-- Local SMTP fixture: starts spec/fixtures/smtp_server.py (Debian's
-- python3-aiosmtpd) on 127.0.0.1, like support.fixture starts server.py.
--
--   local smtp_fixture = require("support.smtp_fixture")
--   local srv = smtp_fixture.start{ auth = { "user", "pass" }, auth_login_only = false,
--                                   starttls = true,
--                                   reject = "bob@example.com", slow_verdict = 2 }
--   srv.url                 --> "smtp://127.0.0.1:PORT"
--   srv:messages()          --> { { mail_from, rcpt_tos, data, login, tls }, ... }
--   srv:stop()
--
-- smtp_fixture.start{ hang = true } never answers; { close = true } closes
-- each connection at once; { tls = true } speaks TLS from the start
-- (smtps). With starttls or tls, srv.ca_file verifies its certificate (made
-- at start, CN localhost, IP 127.0.0.1).
local cjson = require("cjson")
local fixture = require("support.fixture")

local smtp_fixture = {}

local q = fixture.shell_quote
local script = fixture.server_script:gsub("server%.py$", "smtp_server.py")
-- aiosmtpd is Debian's package: Debian's interpreter has it.
local python = os.getenv("MOONWATCH_SMTP_PYTHON")
  or (io.open("/usr/bin/python3") and "/usr/bin/python3") or "python3"

local Server = {}
Server.__index = Server

--- The messages received so far, oldest first.
function Server:messages()
  local list = {}
  local f = io.open(self.out)
  if not f then return list end
  for line in f:lines() do list[#list + 1] = cjson.decode(line) end
  f:close()
  return list
end

--- Stops the server, waits for it and removes its files. Safe to repeat.
function Server:stop()
  if self._stopped then return true end
  self._stopped = true
  os.execute("kill -TERM " .. math.tointeger(self.pid) .. " 2>/dev/null")
  self._stdin:close()
  local ok, how, code = self._proc:close()
  fixture.rmtree(self.dir)
  return ok, how, code
end

Server.__gc = function(self)
  if not self._stopped then pcall(Server.stop, self) end
end

function smtp_fixture.start(opts)
  opts = opts or {}
  local dir = fixture.tmpdir()
  local out, fifo, log = dir .. "/messages.jsonl", dir .. "/stdin", dir .. "/server.log"
  local args = { "--out", q(out) }
  local ca_file
  if opts.auth then
    args[#args + 1] = "--auth " .. q(opts.auth[1]) .. " " .. q(opts.auth[2])
  end
  if opts.starttls or opts.tls then
    local cert, key = fixture.make_cert(dir)
    args[#args + 1] = (opts.tls and "--tls " or "--starttls ") .. q(cert) .. " " .. q(key)
    ca_file = cert
  end
  if opts.auth_login_only then args[#args + 1] = "--auth-login-only" end
  if opts.reject then args[#args + 1] = "--reject " .. q(opts.reject) end
  if opts.slow_verdict then args[#args + 1] = "--slow-verdict " .. opts.slow_verdict end
  if opts.hang then args[#args + 1] = "--hang" end
  if opts.close then args[#args + 1] = "--close" end
  assert(os.execute("mkfifo -m 600 " .. q(fifo)), "smtp_fixture: mkfifo failed")
  -- stdin is a FIFO only this process writes: the server sees EOF when we go.
  local cmd = ("exec %s %s %s <%s 2>%s"):format(python, q(script), table.concat(args, " "),
    q(fifo), q(log))
  local proc = assert(io.popen(cmd, "r"))
  local stdin = assert(io.open(fifo, "r+"))
  local line = proc:read("l")
  local port, pid = (line or ""):match("^READY smtp=(%d+) pid=(%d+)$")
  if not port then
    stdin:close()
    proc:close()
    local err = fixture.read_file(log) or ""
    fixture.rmtree(dir)
    error("smtp_fixture: the server did not start (" .. cmd .. "):\n" .. err, 2)
  end
  os.remove(fifo)
  return setmetatable({
    port = tonumber(port),
    pid = tonumber(pid),
    url = "smtp://127.0.0.1:" .. port,
    ca_file = ca_file,
    dir = dir,
    out = out,
    log_file = log,
    _proc = proc,
    _stdin = stdin,
  }, Server)
end

return smtp_fixture
