-- Small helpers shared by the benchmark scripts: shell commands, files,
-- the machine's description and /proc figures of a process.
local socket = require("socket")

local M = {}

--- A shell word: 'it''s' quoted for sh.
function M.q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- Runs a shell command; true when it exited 0.
function M.sh(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0
end

--- The standard output of a shell command.
function M.read_cmd(cmd)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  return out
end

function M.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

function M.write_file(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

function M.have(tool)
  return M.sh("command -v " .. tool .. " >/dev/null 2>&1")
end

M.sleep = socket.sleep
M.now = socket.gettime

--- A TCP port of 127.0.0.1 that nothing listens on right now.
function M.free_port()
  local s = assert(socket.tcp())
  assert(s:bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return port
end

--- Whether 127.0.0.1:port accepts a connection.
function M.accepts(port)
  local c = socket.tcp()
  c:settimeout(0.2)
  local ok = c:connect("127.0.0.1", port)
  c:close()
  return ok ~= nil
end

--- A new private directory under /tmp (mode 755: nginx's worker reads it).
function M.tmpdir(tag)
  local dir = M.read_cmd("mktemp -d /tmp/moonwatch-" .. (tag or "bench") .. ".XXXXXX")
    :gsub("%s+$", "")
  assert(dir:match("^/tmp/moonwatch%-"), "mktemp failed")
  assert(M.sh("chmod 755 " .. M.q(dir)))
  return dir
end

--- Removes a directory made by tmpdir.
function M.rmdir(dir)
  if dir and dir:match("^/tmp/moonwatch%-") then M.sh("rm -rf -- " .. M.q(dir)) end
end

--- The machine: {nproc (CPUs this process may use), all (CPUs installed), model, kernel,
--- text}.
function M.machine()
  local cpuinfo = M.read_file("/proc/cpuinfo") or ""
  local model = cpuinfo:match("model name%s*:%s*([^\n]+)") or "unknown CPU"
  local nproc = tonumber(M.read_cmd("nproc 2>/dev/null"):match("%d+"))
  local all = tonumber(M.read_cmd("nproc --all 2>/dev/null"):match("%d+"))
  local kernel = M.read_cmd("uname -sr 2>/dev/null"):gsub("%s+$", "")
  return {
    nproc = nproc or 1,
    all = all or nproc or 1,
    model = model,
    kernel = kernel,
    text = ("%s CPUs (nproc --all), %s, %s"):format(tostring(all or nproc or "?"), model,
      kernel),
  }
end

local clk_tck
--- utime + stime of a process in seconds (nil when it is gone).
function M.cpu_seconds(pid)
  local stat = M.read_file("/proc/" .. pid .. "/stat")
  if not stat then return nil end
  local rest = stat:match("%) (.*)$") or ""
  local fields = {}
  for f in rest:gmatch("%S+") do fields[#fields + 1] = f end
  clk_tck = clk_tck or tonumber(M.read_cmd("getconf CLK_TCK 2>/dev/null"):match("%d+")) or 100
  -- after the command: state is field 3, utime 14 and stime 15 of stat(5)
  return ((tonumber(fields[12]) or 0) + (tonumber(fields[13]) or 0)) / clk_tck
end

--- VmRSS of a process in kB (nil when it is gone).
function M.rss_kb(pid)
  local status = M.read_file("/proc/" .. pid .. "/status")
  return status and tonumber(status:match("VmRSS:%s*(%d+)"))
end

--- Whether a process exists and is not a zombie.
function M.alive(pid)
  local stat = M.read_file("/proc/" .. pid .. "/stat")
  if not stat then return false end
  return (stat:match("%) (%a)")) ~= "Z"
end

--- 1234567 -> "1,234,567"
function M.thousands(n)
  local s = ("%d"):format(math.floor(n + 0.5))
  local sign, digits = s:match("^(%-?)(%d+)$")
  digits = digits:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", "")
  return sign .. digits
end

--- Processes the scripts started, written to $BENCH_PIDFILE so that
--- bench/run.sh can end them if this script is interrupted.
local pids = {}
local function save_pids()
  local file = os.getenv("BENCH_PIDFILE")
  if not file or file == "" then return end
  local list = {}
  for pid in pairs(pids) do list[#list + 1] = pid end
  table.sort(list)
  M.write_file(file, #list > 0 and (table.concat(list, "\n") .. "\n") or "")
end

function M.track(pid)
  pids[tostring(pid)] = true
  save_pids()
end

function M.untrack(pid)
  pids[tostring(pid)] = nil
  save_pids()
end

--- Sends SIGTERM to a process and waits up to `timeout` seconds for it to
--- end, then SIGKILL. True when it ended on SIGTERM.
function M.terminate(pid, timeout)
  M.sh("kill -TERM " .. pid .. " 2>/dev/null")
  local deadline = M.now() + (timeout or 5)
  while M.alive(pid) do
    if M.now() > deadline then
      M.sh("kill -KILL " .. pid .. " 2>/dev/null")
      M.sleep(0.1)
      M.untrack(pid)
      return false
    end
    M.sleep(0.02)
  end
  M.untrack(pid)
  return true
end

return M
