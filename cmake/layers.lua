-- Checks that no C file of the core calls a function of a higher layer.
-- Reads the call graphs gcc writes with -fcallgraph-info (one .ci file per
-- translation unit) and the layer of each file below. Callbacks are not
-- calls here: registering one is how a lower layer reaches a higher one.
--   lua5.4 cmake/layers.lua DIR_WITH_CI_FILES
local LAYERS = {
  -- L0: no loop, no Lua state of ours
  ["log.c"] = 0, ["dns_cache.c"] = 0, ["tick_heap.c"] = 0, ["watchdog.c"] = 0,
  -- L0 too: wrappers of one library each (PCRE2, OpenSSL)
  ["regex.c"] = 0, ["cert.c"] = 0, ["opts.c"] = 0, ["curl_kind.c"] = 0,
  -- L0 too: wall-clock time in a named zone (libc's, with TZ swapped)
  ["tz.c"] = 0,
  -- L0 too: HTTP credentials (OpenSSL's digest and constant-time compare)
  ["auth.c"] = 0,
  -- L0 too: DNS answer messages read into Lua tables (names by c-ares)
  ["dns_answer.c"] = 0,
  -- L0 too: SQLite, called from the thread pool only (no loop, no Lua)
  ["store.c"] = 0,
  -- L0 too: the metrics registry and exposition, the process's own figures
  ["metrics.c"] = 0, ["procstat.c"] = 0,
  -- L1: the loop
  ["loop.c"] = 1,
  -- L1 too: a serial queue of work on libuv's thread pool
  ["workq.c"] = 1,
  -- L2: tasks
  ["task.c"] = 2,
  -- L3: transports
  ["resolver.c"] = 3, ["http.c"] = 3, ["transfer.c"] = 3, ["tcp.c"] = 3,
  -- L3 too: the embedded HTTP server (sockets; the protocol on buffers)
  ["server.c"] = 3, ["server_http.c"] = 3,
  ["dns_channel.c"] = 3, ["dns_send.c"] = 3, ["icmp.c"] = 3,
  -- L4: users of the transports, and the Lua bindings
  ["request.c"] = 4, ["request_lua.c"] = 4, ["sleep.c"] = 4, ["signals.c"] = 4,
  ["dispatch.c"] = 4, ["log_lua.c"] = 4, ["regex_lua.c"] = 4,
  ["tz_lua.c"] = 4,
  ["store_lua.c"] = 4,
  ["metrics_lua.c"] = 4, ["metrics_serve.c"] = 4,
  ["smtp.c"] = 4, ["smtp_lua.c"] = 4, ["tcp_lua.c"] = 4,
  ["server_lua.c"] = 4,
  ["dns_lua.c"] = 4, ["icmp_lua.c"] = 4,
  -- L5: the module and the executable
  ["core.c"] = 5, ["main.c"] = 5,
}

local dir = assert(arg[1], "usage: layers.lua DIR")
local files = {}
for path in io.popen("find '" .. dir .. "' -name '*.ci' | sort"):lines() do
  files[#files + 1] = path
end
if #files == 0 then
  io.stderr:write("layers: no .ci files under ", dir, " (built with -fcallgraph-info?)\n")
  os.exit(1)
end

local function base(path) return path:match("([^/]+)$") end

local defined = {} -- function name -> file that defines it (ours only)
local edges = {}   -- { caller file, caller, callee name, where }
for _, path in ipairs(files) do
  for line in io.lines(path) do
    local title, label = line:match('^node: { title: "([^"]+)" label: "([^"]+)"')
    if title and not line:find("shape : ellipse", 1, true) then
      local name, file = label:match("^([^\\]+)\\n(.-):%d+:%d+$")
      if name and LAYERS[base(file)] then defined[title] = base(file) end
      if name and LAYERS[base(file)] and not title:find(":", 1, true) then
        defined[name] = base(file)
      end
    end
    local src, dst, where = line:match(
      '^edge: { sourcename: "([^"]+)" targetname: "([^"]+)" label: "([^"]+)"')
    if src then edges[#edges + 1] = { src, dst, where } end
  end
end

local unknown = {}
for _, path in ipairs(files) do
  local name = base(path):gsub("%.ci$", ""):gsub("%.o$", "")
  if name:match("%.c$") and not LAYERS[name] then unknown[#unknown + 1] = name end
end

local bad, ours = {}, 0
for _, e in ipairs(edges) do
  local from, to = defined[e[1]], defined[e[2]]
  if from and to and from ~= to then ours = ours + 1 end
  if from and to and LAYERS[to] > LAYERS[from] then
    bad[#bad + 1] = string.format("%s: %s (L%d) calls %s (L%d, %s)", e[3],
      e[1]:match("[^:]+$"), LAYERS[from], e[2]:match("[^:]+$"), LAYERS[to], to)
  end
end

for _, name in ipairs(unknown) do
  io.stderr:write("layers: c/", name, " has no layer: add it to cmake/layers.lua\n")
end
for _, msg in ipairs(bad) do io.stderr:write("layers: upward call: ", msg, "\n") end
if #bad > 0 or #unknown > 0 then os.exit(1) end
print(string.format("layers: %d files, %d calls from one of our files to another, none upward",
  #files, ours))
