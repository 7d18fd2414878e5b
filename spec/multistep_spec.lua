-- A check in several steps (README "A check in several steps", loaded from
-- the README as it is): core.dns_query against the fixture's DNS responder,
-- core.tcp_check to the fixture HTTP server's port at the address found,
-- core.http_request of a page there, run by a Dispatcher; and each step's
-- failure.
local mw = require("moonwatch")
local core = require("moonwatch.core")
local fixture = require("support.fixture")
local tcp_fixture = require("support.tcp_fixture")

local function readme_block(heading)
  local text = assert(fixture.read_file("README.md"))
  local start = assert(text:find("\n### " .. heading .. "\n", 1, true),
    "no README section " .. heading)
  return assert(text:match("```lua\n(.-)```", start), "no lua block under " .. heading)
end

local steps_monitor = assert(load(readme_block("A check in several steps"),
  "=README.md (A check in several steps)", "t", setmetatable({}, { __index = _ENV })))()

describe("a check in several steps", function()
  local srv, tcp

  lazy_setup(function()
    srv = fixture.start()
    tcp = tcp_fixture.start()
  end)
  lazy_teardown(function()
    if tcp then tcp:stop() end
    if srv then srv:stop() end
  end)
  after_each(function() assert.same({ tasks = 0, handles = 0 }, core.stats()) end)

  -- The fixture zone answers A 127.0.0.1 for a name it has no records of
  -- (www.probe.test), NXDOMAIN for nx.probe.test.
  local function monitor(o)
    local opts = { name = "steps", host = "www.probe.test", port = srv.port, path = "/page",
                   server = "127.0.0.1:" .. srv.dns_port, timeout = 5, check_every = 30 }
    for k, v in pairs(o or {}) do opts[k] = v end
    return steps_monitor(opts)
  end

  -- One check through the Dispatcher, as `--once` runs it: the result.
  local function check_once(m)
    local _ <close> = mw.log.capture() -- the State's records
    local results = mw.Dispatcher.new{ monitors = { m } }:check_once()
    return results[1]
  end

  it("resolves, connects and fetches: up, with the address and each step's time", function()
    local r = check_once(monitor())
    assert.is_true(r.up, r.reason)
    assert.equal("steps", r.monitor)
    assert.equal("127.0.0.1", r.ip)
    assert.equal(200, r.status)
    for _, step in ipairs{ "dns", "connect", "http" } do
      assert.is_number(r.times[step], step)
      assert.is_true(r.times[step] > 0, step)
    end
    assert.is_number(r.duration)
  end)

  it("runs as a plain table in a task too (core.run)", function()
    local m = monitor()
    local r = core.run(function() return m:check() end)
    assert.is_true(r.up, r.reason)
  end)

  it("an NXDOMAIN name is down at the first step, with kind nxdomain", function()
    local r = check_once(monitor{ host = "nx.probe.test" })
    assert.is_false(r.up)
    assert.equal("nxdomain", r.kind)
    assert.equal("resolve nx.probe.test: rcode NXDOMAIN", r.reason)
    assert.is_number(r.times.dns)
    assert.is_nil(r.times.connect)
  end)

  it("a name with no A record is down with kind dns", function()
    local r = check_once(monitor{ host = "aaaa.probe.test" })
    assert.is_false(r.up)
    assert.equal("dns", r.kind)
    assert.equal("resolve aaaa.probe.test: no A record", r.reason)
  end)

  it("a DNS server that never answers is down with kind timeout", function()
    local r = check_once(monitor{ server = "127.0.0.1:" .. srv.dns_blackhole_port,
                                  timeout = 0.3 })
    assert.is_false(r.up)
    assert.equal("timeout", r.kind)
    assert.matches("^resolve www%.probe%.test: timeout", r.reason)
  end)

  it("a refused port is down at the second step, with kind refused", function()
    local r = check_once(monitor{ port = tcp.ports.refused })
    assert.is_false(r.up)
    assert.equal("refused", r.kind)
    assert.matches("^connect 127%.0%.0%.1:" .. tcp.ports.refused .. ": refused", r.reason)
    assert.is_number(r.times.dns)
    assert.is_nil(r.times.http)
  end)

  it("a failed page is down at the third step", function()
    local r = check_once(monitor{ path = "/status/503" })
    assert.is_false(r.up)
    assert.equal("condition", r.kind)
    assert.equal("GET http://127.0.0.1:" .. srv.port .. "/status/503: status 503", r.reason)
    assert.is_number(r.times.connect)
  end)
end)
