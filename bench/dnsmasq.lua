-- A local DNS server for the `dns` scenario: Debian's dnsmasq (package
-- dnsmasq-base) on 127.0.0.1 and a free port, answering every name under
-- bench.test with A 192.0.2.1 from its own configuration (no upstream, no
-- hosts file, no cache to warm), in the foreground, on the given CPU.
local util = require("util")
local socket = require("socket")

local M = {}

M.ZONE = "bench.test"
M.ADDRESS = "192.0.2.1"

local Dnsmasq = {}
Dnsmasq.__index = Dnsmasq

--- A UDP port of 127.0.0.1 that nothing uses right now.
local function free_udp_port()
  local s = assert(socket.udp())
  assert(s:setsockname("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return port
end

-- Whether the server answers a query for its zone (one UDP round trip).
local function answers(port)
  local s = assert(socket.udp())
  s:settimeout(0.2)
  s:setpeername("127.0.0.1", port)
  -- id 0x4d57, RD, one question: probe.bench.test A IN
  local q = "\x4d\x57\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
  for label in ("probe." .. M.ZONE):gmatch("[^.]+") do q = q .. string.char(#label) .. label end
  s:send(q .. "\x00\x00\x01\x00\x01")
  local reply = s:receive()
  s:close()
  return reply ~= nil and reply:sub(1, 2) == "\x4d\x57"
end

function M.start(opts)
  opts = opts or {}
  local dir = util.tmpdir("dnsmasq")
  local port = free_udp_port()
  local prefix = opts.cpu and ("taskset -c " .. opts.cpu .. " ") or ""
  local cmd = ("%sdnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts "
    .. "--no-poll --bind-interfaces --listen-address=127.0.0.1 --port=%d --pid-file= "
    .. "--cache-size=0 --address=/%s/%s >%s 2>&1 </dev/null & echo $! >%s"):format(prefix,
    port, M.ZONE, M.ADDRESS, util.q(dir .. "/dnsmasq.out"), util.q(dir .. "/pid"))
  assert(util.sh(cmd), "could not start dnsmasq")
  local self = setmetatable({ dir = dir, port = port, cpu = opts.cpu,
                              server = ("127.0.0.1:%d"):format(port) }, Dnsmasq)
  local deadline = util.now() + 10
  while true do
    local pid = (util.read_file(dir .. "/pid") or ""):match("%d+")
    if pid and not self.pid then
      self.pid = pid
      util.track(pid)
    end
    if pid and answers(port) then return self end
    if util.now() > deadline or (pid and not util.alive(pid)) then
      local log = util.read_file(dir .. "/dnsmasq.out") or ""
      self:stop()
      error("dnsmasq did not start:\n" .. log, 0)
    end
    util.sleep(0.05)
  end
end

--- The process that answers (dnsmasq has one).
function Dnsmasq:worker_pid() return self.pid end

--- "dnsmasq 2.90"
function M.version()
  return (util.read_cmd("dnsmasq --version 2>&1"):match("Dnsmasq version %S+") or "dnsmasq")
    :gsub("^Dnsmasq version", "dnsmasq"), nil
end

function Dnsmasq:stop()
  if self.pid then util.terminate(self.pid, 5) end
  util.rmdir(self.dir)
end

return M
