-- The local test fixture itself (spec/fixtures/server.py via support.fixture).
local socket = require("socket")
local http = require("socket.http")
local ltn12 = require("ltn12")
local fixture = require("support.fixture")

local function get(url, method, body)
  local out = {}
  local _, code, headers = http.request{
    url = url,
    method = method or "GET",
    sink = ltn12.sink.table(out),
    source = body and ltn12.source.string(body) or nil,
    headers = body and { ["content-length"] = #body } or nil,
    redirect = false,
  }
  return code, table.concat(out), headers
end

local function dns_query(name, qtype)
  local q = { string.pack(">I2I2I2I2I2I2", 0x4d57, 0x0100, 1, 0, 0, 0) }
  for label in name:gmatch("[^.]+") do q[#q + 1] = string.pack("s1", label) end
  q[#q + 1] = string.pack(">BI2I2", 0, qtype, 1)
  return table.concat(q)
end

local function alive(pid)
  local ok = os.execute("kill -0 " .. pid .. " 2>/dev/null")
  return ok == true or ok == 0
end

describe("test fixture", function()
  local srv

  lazy_setup(function() srv = fixture.start() end)
  lazy_teardown(function() if srv then srv:stop() end end)

  it("serves pages, statuses, echo and 404s", function()
    assert.matches("^http://127%.0%.0%.1:%d+$", srv.base)
    local code, body = get(srv:url("/page"))
    assert.equals(200, code)
    assert.equals(648, #body)
    code, body = get(srv:url("/status/503"))
    assert.equals(503, code)
    assert.equals("status 503", body)
    code, body = get(srv:url("/echo"), "POST", "hi there")
    assert.equals(200, code)
    assert.matches('"method": "POST"', body, 1, true)
    assert.matches('"body": "hi there"', body, 1, true)
    code = get(srv:url("/no/such/thing"))
    assert.equals(404, code)
    local _, stats = get(srv:url("/stats"))
    assert.truthy(stats:match('"connections": %d+'))
  end)

  it("answers A queries with 127.0.0.1 and has a blackhole that never answers", function()
    local udp = assert(socket.udp())
    udp:settimeout(2)
    assert(udp:sendto(dns_query("fixture.test", 1), "127.0.0.1", srv.dns_port))
    local reply = assert(udp:receive())
    local id, flags, qd, an = string.unpack(">I2I2I2I2", reply)
    assert.same({ 0x4d57, 0x8000, 1, 1 }, { id, flags & 0x800F, qd, an }) -- response, NOERROR
    assert.equals("\127\0\0\1", reply:sub(-4))

    udp:settimeout(0.3)
    assert(udp:sendto(dns_query("fixture.test", 1), "127.0.0.1", srv.dns_blackhole_port))
    local none, err = udp:receive()
    assert.is_nil(none)
    assert.equals("timeout", err)
    udp:close()
  end)

  it("serves TLS with a fresh certificate and stops without leftovers", function()
    local tls = fixture.start{ tls = true }
    assert.matches("^https://localhost:%d+$", tls.base)
    local f = assert(io.open(tls.ca_file))
    assert.matches("^%-%-%-%-%-BEGIN CERTIFICATE", f:read("a"))
    f:close()
    local c = assert(socket.connect("127.0.0.1", tls.port))
    c:close()
    local pid, dir = tls.pid, tls.dir
    assert.truthy(alive(pid))
    tls:stop()
    assert.falsy(alive(pid))
    assert.is_nil(io.open(dir .. "/cert.pem"))
  end)
end)
