-- A real Alertmanager (Debian's prometheus-alertmanager), started here on
-- 127.0.0.1 with a 1 s group_wait and a webhook receiver on the fixture:
-- it gets moonwatch's alert, then the resolve. The waits are bounded polls
-- of external processes (Alertmanager's /-/ready, the fixture's records).
local core = require("moonwatch.core")
local cjson = require("cjson")
local socket = require("socket")
local mw = require("moonwatch")
local fixture = require("support.fixture")

local BIN = os.getenv("MOONWATCH_ALERTMANAGER") or "/usr/bin/prometheus-alertmanager"

local function free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return math.tointeger(tonumber(port))
end

local function await(what, seconds, probe)
  return fixture.await(what, seconds, probe, 0.1)
end

local CONFIG = [[
route:
  receiver: hook
  group_by: [alertname, monitor]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: %s
        send_resolved: true
]]

local function start_alertmanager(hook_url)
  local f = io.open(BIN, "r")
  if not f then
    error(BIN .. " is missing: apt-get install prometheus-alertmanager (scripts/deps test)")
  end
  f:close()
  local dir = fixture.tmpdir()
  local cfg = assert(io.open(dir .. "/alertmanager.yml", "w"))
  cfg:write(CONFIG:format(hook_url))
  cfg:close()
  local port = free_port()
  local q = fixture.shell_quote
  local cmd = table.concat({ "exec", q(BIN), "--config.file=" .. q(dir .. "/alertmanager.yml"),
    "--storage.path=" .. q(dir .. "/data"), "--web.listen-address=127.0.0.1:" .. port,
    "--cluster.listen-address=", ">" .. q(dir .. "/log"), "2>&1" }, " ")
  local p = assert(io.popen("(" .. cmd .. ") & echo $!", "r"))
  local pid = math.tointeger(tonumber(p:read("l")))
  p:close()
  return { pid = pid, dir = dir, url = "http://127.0.0.1:" .. port,
           log = function() return fixture.read_file(dir .. "/log") or "" end }
end

local function stop_alertmanager(am)
  os.execute("kill -TERM " .. am.pid .. " 2>/dev/null")
  -- not our child (started through a shell): wait until it is gone
  for _ = 1, 100 do
    if not os.execute("kill -0 " .. am.pid .. " 2>/dev/null") then break end
    os.execute("sleep 0.05")
  end
  fixture.rmtree(am.dir)
end

describe("alerts to a real Alertmanager", function()
  local srv, am
  before_each(function()
    srv = fixture.start()
    am = start_alertmanager(srv:url("/hook/am"))
  end)
  after_each(function()
    core.cancel_all()
    stop_alertmanager(am)
    srv:stop()
  end)

  it("receives the alert and then its resolve", function()
    local state = mw.State()
    local notifier = mw.Alerts.notifiers.Alertmanager{ name = "am", url = am.url,
      labels = { team = "web" }, timeout = 2 }
    local alerts = mw.Alerts{ state = state, notifiers = { notifier }, resend = 1 }
    local monitor = { name = "app", url = "http://app.example/" }
    alerts:on_monitor(monitor, "app")
    local function received(status)
      local resp = core.http_request{ url = srv:url("/hook/am/received"), timeout = 2 }
      for _, body in ipairs(cjson.decode(resp.body).bodies) do
        local doc = cjson.decode(body)
        if doc.status == status then return doc end
      end
    end
    local firing, resolved
    core.run(function()
      await("Alertmanager's /-/ready", 20, function()
        local resp = core.http_request{ url = am.url .. "/-/ready", timeout = 1 }
        return resp and resp.status == 200
      end)
      state:on_result(monitor, { monitor = "app", up = false, reason = "status 500" })
      firing = await("the firing alert at the receiver", 20,
        function() return received("firing") end)
      state:on_result(monitor, { monitor = "app", up = true })
      resolved = await("the resolve at the receiver", 20,
        function() return received("resolved") end)
      alerts:stop()
    end)
    local a = firing.alerts[1]
    assert.same({ alertname = "MonitorDown", monitor = "app", team = "web" }, a.labels)
    assert.equal("app is DOWN: status 500", a.annotations.summary)
    assert.equal("http://app.example/", a.generatorURL)
    assert.equal("resolved", resolved.alerts[1].status)
    assert.equal("app", resolved.alerts[1].labels.monitor)
    assert.is_true(alerts:counters().am.sent >= 2)
  end)
end)
