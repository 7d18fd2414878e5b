-- The metrics' costs, no network: what one check's result costs them, and
-- what one exposition of N monitors costs.
--
--   lua5.4 bench/metrics.lua [monitors] [calls]     (bench/run.sh metrics ...)
--
-- Prints, for `calls` calls (default 1,000,000), the ns per series:observe
-- (the C call alone) and per mw.Metrics:on_result of an HttpMonitor result
-- (what the Dispatcher runs per check), each less an empty loop's, beside a
-- math.max of as many arguments (any C call's cost on this machine); then the
-- time and bytes of registry:render() of `monitors` monitors (default
-- 10,000, every one with a result, a quarter with a certificate), the
-- median of 7.
local script_dir = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = script_dir .. "/../lua/?.lua;" .. script_dir .. "/../lua/?/init.lua;"
  .. package.path
package.cpath = script_dir .. "/../build/lib/?.so;" .. package.cpath
local core = require("moonwatch.core")
local Metrics = require("moonwatch.metrics")
local monitors = require("moonwatch.monitors")

local N = math.tointeger(tonumber(arg[1])) or 10000
local CALLS = math.tointeger(tonumber(arg[2])) or 1000000

local clock = os.clock

local function per_call(f)
  local t = clock()
  f(CALLS)
  return (clock() - t) / CALLS * 1e9
end

local empty = per_call(function(n) for _ = 1, n do end end)

-- A C call of as many arguments, for scale: what any such call costs here.
local max = math.max
local reference = per_call(function(n)
  for _ = 1, n do max(1, 0.067, 200, 648, 0, 0.001, 0.002, 0, 0.01, 0.001, 5) end
end) - empty

local registry = core.metrics()
local one = registry:monitor("bench")
local observe = per_call(function(n)
  for i = 1, n do
    one:observe(true, 0.067, 200, 648, 0, 0.001, 0.002, 0, 0.01, 0.001, nil)
    if i < 0 then break end
  end
end) - empty

-- A result as HttpMonitor makes it, through mw.Metrics as the Dispatcher
-- hands it over.
local metrics = Metrics{ registry = core.metrics() }
local monitor = setmetatable({ name = "api" }, monitors.HttpMonitor)
metrics:on_monitor(monitor, "api")
local result = { up = true, monitor = "api", status = 200, size = 648, duration = 0.067,
                 timings = { dns = 0.001, connect = 0.003, tls = 0.003, first_byte = 0.013,
                             total = 0.014, redirect = 0 } }
local on_result = per_call(function(n)
  for _ = 1, n do metrics:on_result(monitor, result) end
end) - empty

-- N monitors with results, the way a running daemon holds them.
local big = core.metrics()
for i = 1, N do
  local s = big:monitor(string.format("monitor-%05d", i))
  s:observe(i % 10 ~= 0, 0.0123 + i * 1e-7, i % 10 ~= 0 and 200 or 503, 648, 0, 0.000412,
    0.000231, i % 4 == 0 and 0.0021 or 0, 0.0113, 0.000094, i % 4 == 0 and 1.9e9 or nil)
  s:state(i % 10 ~= 0 and "up" or "down")
end
local times, text = {}, nil
for k = 1, 7 do
  local t = core.now()
  text = big:render()
  times[k] = core.now() - t
end
table.sort(times)

print(string.format("metrics bench (%s, Lua %s)", core.version, _VERSION))
print(string.format("  series:observe            %6.0f ns per call (%d calls)", observe, CALLS))
print(string.format("  math.max, 11 arguments    %6.0f ns per call (for scale)", reference))
print(string.format("  Metrics:on_result (HTTP)  %6.0f ns per call", on_result))
print(string.format("  render of %d monitors: %.1f ms, %d bytes (%.0f bytes per monitor), "
  .. "%d lines", N, times[4] * 1e3, #text, #text / N, select(2, text:gsub("\n", "\n"))))
