-- examples/probes.lua through the command: --check builds it as it is, and
-- --once with every target set to a local fixture (the TCP echo and TLS
-- servers, the DNS responder's probe.test zone, ping of 127.0.0.1) finds
-- every monitor UP; a mistyped setting is an error naming the right one.
local fixture = require("support.fixture")
local tcp_fixture = require("support.tcp_fixture")
local daemon = require("support.daemon")

local EXAMPLE = "examples/probes.lua"
local q = fixture.shell_quote

-- Runs the executable with args; returns { status, stdout, stderr }. A run
-- that does not end within 20 s is killed.
local function moonwatch(args)
  local dir = fixture.tmpdir()
  local parts = { daemon.CLEAN_ENV, "timeout -s KILL 20", q(daemon.BIN) }
  for _, a in ipairs(args) do parts[#parts + 1] = q(a) end
  parts[#parts + 1] = "</dev/null >" .. q(dir .. "/out") .. " 2>" .. q(dir .. "/err")
  local _, _, status = os.execute(table.concat(parts, " "))
  local r = { status = status, stdout = fixture.read_file(dir .. "/out") or "",
              stderr = fixture.read_file(dir .. "/err") or "" }
  fixture.rmtree(dir)
  return r
end

-- "--set k=v" arguments for each setting, in order.
local function sets(list)
  local args = {}
  for _, kv in ipairs(list) do
    args[#args + 1] = "--set"
    args[#args + 1] = kv
  end
  return args
end

describe("examples/probes.lua", function()
  local srv, tcp

  lazy_setup(function()
    srv = fixture.start()
    tcp = tcp_fixture.start()
  end)
  lazy_teardown(function()
    if tcp then tcp:stop() end
    if srv then srv:stop() end
  end)

  -- Every target on a fixture; the fixture's certificate is valid 3 days.
  local function local_targets()
    return {
      "monitors.tcp.address=127.0.0.1:" .. tcp.ports.echo,
      "monitors.tls.address=127.0.0.1:" .. tcp.ports.tls_valid,
      "monitors.tls.ca_file=" .. tcp.ca.valid,
      "monitors.tls.expect.cert_valid_days=2",
      "monitors.dns.name=www.probe.test",
      "monitors.dns.server=127.0.0.1:" .. srv.dns_port,
      "monitors.ping.host=127.0.0.1",
      "monitors.ping.interval=0.05",
    }
  end

  it("passes --check as it is", function()
    local r = moonwatch{ "--check", EXAMPLE }
    assert.equal(0, r.status, r.stderr)
    assert.equal(EXAMPLE .. ": OK\n", r.stdout)
    assert.equal("", r.stderr)
  end)

  it("finds every monitor UP against the local fixtures with --once", function()
    local args = sets(local_targets())
    table.insert(args, 1, "--once")
    args[#args + 1] = EXAMPLE
    local r = moonwatch(args)
    assert.equal(0, r.status, r.stdout .. r.stderr)
    local summary = {}
    for name, state in r.stdout:gmatch("\n(%a+) +(%u+) +%d+%.%d+ s") do summary[name] = state end
    assert.same({ tcp = "UP", tls = "UP", dns = "UP", ping = "UP" }, summary, r.stdout)
    assert.truthy(r.stdout:find("DNS www.probe.test A @127.0.0.1:" .. srv.dns_port, 1, true),
      r.stdout)
    assert.truthy(r.stdout:find("PING 127.0.0.1 (127.0.0.1)\n    received: 4 of 4", 1, true),
      r.stdout)
  end)

  it("is DOWN with the reason when a target fails its condition", function()
    local targets = local_targets()
    targets[4] = "monitors.tls.expect.cert_valid_days=14"
    targets[5] = "monitors.dns.name=nx.probe.test"
    local args = sets(targets)
    table.insert(args, 1, "--once")
    args[#args + 1] = EXAMPLE
    local r = moonwatch(args)
    assert.equal(1, r.status, r.stdout .. r.stderr)
    assert.matches("\ntls +DOWN +certificate expires in [23]%.%d days %(.-%), "
      .. "expected more than 14\n", r.stdout)
    assert.matches("\ndns +DOWN +rcode NXDOMAIN, expected NOERROR\n", r.stdout)
    assert.matches("\ntcp +UP ", r.stdout)
  end)

  describe("a mistyped setting is an error naming the right one", function()
    it("a name no provider reads", function()
      local r = moonwatch{ "--check", "--set", "monitors.dns.nmae=example.org", EXAMPLE }
      assert.equal(1, r.status)
      assert.equal("", r.stdout)
      assert.equal("moonwatch: --set monitors.dns.nmae: no provider reads this setting "
        .. "(did you mean monitors.dns.name?)\n", r.stderr)
    end)

    it("an option or condition of a monitor", function()
      local r = moonwatch{ "--check", "--set", "monitors.tcp.adress=127.0.0.1:1", EXAMPLE }
      assert.equal(1, r.status)
      assert.equal("moonwatch: " .. EXAMPLE .. ": tcp_monitor: monitors.tcp: unknown option "
        .. "'adress' (did you mean 'address'?)\n", r.stderr)
      r = moonwatch{ "--check", "--set", "monitors.ping.expect.max_los=0", EXAMPLE }
      assert.equal(1, r.status)
      assert.equal("moonwatch: " .. EXAMPLE .. ": ping_monitor: monitors.ping: unknown "
        .. "condition 'max_los' (did you mean 'max_loss'?)\n", r.stderr)
    end)

    it("a bad value, with where it came from", function()
      local r = moonwatch{ "--check", "--set", "monitors.tls.address=example.com:http", EXAMPLE }
      assert.equal(1, r.status)
      assert.matches("monitors.tls.address must be \"host:port\"", r.stderr, 1, true)
      assert.matches('got "example.com:http" (a string, from --set)', r.stderr, 1, true)
    end)
  end)
end)
