-- moonwatch.core: core.ping of 127.0.0.1 and ::1 (loopback only). The
-- socket it opens depends on the machine: a datagram socket where
-- net.ipv4.ping_group_range includes our group, else a raw one (CAP_NET_RAW);
-- on a machine with neither, these specs fail with the error saying so.
local core = require("moonwatch.core")
local fixture = require("support.fixture")
local daemon = require("support.daemon")

local function read(path)
  local f = io.open(path)
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- Whether lo has ::1 (the kernel's list of IPv6 addresses, as `ip -6 addr`).
local function has_ipv6_loopback()
  local f = io.open("/proc/net/if_inet6")
  local out = f and f:read("a") or ""
  if f then f:close() end
  return out:find("^" .. ("0"):rep(31) .. "1 ") ~= nil
    or out:find("\n" .. ("0"):rep(31) .. "1 ") ~= nil
end

-- What this machine allows: a datagram socket for our group, a raw socket.
local function machine()
  local lo, hi = (read("/proc/sys/net/ipv4/ping_group_range") or ""):match("(%d+)%s+(%d+)")
  local p = io.popen("id -g")
  local gid = tonumber(p:read("l"))
  p:close()
  local cap = (read("/proc/self/status") or ""):match("CapEff:%s*(%x+)")
  local net_raw = cap and (tonumber(cap, 16) >> 13) & 1 == 1
  return { dgram = lo and gid >= tonumber(lo) and gid <= tonumber(hi), raw = net_raw }
end

-- Runs a ping in a fresh process (the executable as an interpreter) with
-- MOONWATCH_ICMP_SOCKETS set: the core reads it from the environment.
local function ping_with(sockets)
  local dir = fixture.tmpdir()
  local script = dir .. "/ping.lua"
  local f = assert(io.open(script, "w"))
  f:write([[
local core = require("moonwatch.core")
local r, err, kind = core.run(function() return core.ping{ host = "127.0.0.1", count = 1 } end)
io.write(r and ("ok " .. r.socket .. " " .. r.received) or (kind .. "\n" .. err))
]])
  f:close()
  local p = io.popen(("MOONWATCH_ICMP_SOCKETS=%s %s -l %s 2>&1"):format(sockets,
    fixture.shell_quote(daemon.BIN), fixture.shell_quote(script)))
  local out = p:read("a")
  p:close()
  fixture.rmtree(dir)
  return out
end

describe("core.ping", function()
  after_each(function() assert.same({ tasks = 0, handles = 0 }, core.stats()) end)

  local function ping(opts)
    return core.run(function() return core.ping(opts) end)
  end

  local function assert_all_answered(r, err, count)
    assert.is_table(r, err)
    assert.equals(count, r.sent)
    assert.equals(count, r.received)
    assert.equals(0, r.loss)
    assert.equals(count, #r.rtts)
    for _, rtt in ipairs(r.rtts) do assert.is_true(rtt > 0 and rtt < 1) end
    assert.is_true(r.rtt.min <= r.rtt.avg and r.rtt.avg <= r.rtt.max)
    assert.is_true(r.socket == "dgram" or r.socket == "raw", r.socket)
  end

  it("pings 127.0.0.1: sent, received, loss 0, RTT min <= avg <= max", function()
    local r, err = ping{ host = "127.0.0.1", count = 3, interval = 0.05 }
    assert_all_answered(r, err, 3)
    assert.equals("127.0.0.1", r.address)
    assert.is_true(r.time.total >= 0.1, r.time.total) -- two intervals between three
  end)

  it("pings ::1", function()
    assert(has_ipv6_loopback(), "this machine has no ::1 on lo: the IPv6 ping cannot run")
    local r, err = ping{ host = "::1", count = 2, interval = 0.02 }
    assert_all_answered(r, err, 2)
    assert.equals("::1", r.address)
    r, err = ping{ host = "[::1]", count = 1 }
    assert_all_answered(r, err, 1)
  end)

  it("resolves a name first (localhost)", function()
    local r, err = ping{ host = "localhost", count = 1 }
    assert_all_answered(r, err, 1)
    assert.equals("127.0.0.1", r.address)
  end)

  it("a name that does not resolve: nil, 'dns: ...', 'dns'", function()
    local r, err, kind = ping{ host = "nothing.invalid", count = 1 }
    assert.is_nil(r)
    assert.equals("dns", kind)
    assert.equals("dns: could not resolve host 'nothing.invalid': not found", err)
  end)

  it("runs many pings at once, each matching its own replies", function()
    local n = core.run(function()
      local tasks = {}
      for i = 1, 20 do
        tasks[i] = core.spawn(function()
          return core.ping{ host = i % 2 == 0 and "127.0.0.1" or "::1", count = 3,
                            interval = 0.01 }
        end)
      end
      local good = 0
      for _, t in ipairs(tasks) do
        while t:status() ~= "done" and t:status() ~= "failed" do core.sleep(0.005) end
        local ok, r = t:result()
        if ok and r and r.received == 3 and r.sent == 3 then good = good + 1 end
      end
      return good
    end)
    assert.equals(20, n)
  end)

  it("is cancelled with its task: socket and timer closed", function()
    local t = core.spawn(function()
      return core.ping{ host = "127.0.0.1", count = 10, interval = 5 }
    end)
    core.run(function()
      fixture.await("the ping to wait", 5, function() return t:status() == "waiting" end)
      assert.is_true(t:cancel())
    end)
    assert.equals("cancelled", t:status())
    assert.same({ tasks = 0, handles = 0 }, core.stats())
  end)

  it("with neither socket allowed, fails as permission naming both", function()
    local out = ping_with("none")
    assert.truthy(out:find("permission\npermission: cannot open an ICMP socket: unprivileged "
      .. "datagram socket: not tried (MOONWATCH_ICMP_SOCKETS=none)", 1, true), out)
    assert.truthy(out:find("net.ipv4.ping_group_range", 1, true), out)
    assert.truthy(out:find("raw socket: not tried (MOONWATCH_ICMP_SOCKETS=none) (it needs "
      .. "CAP_NET_RAW)", 1, true), out)
  end)

  it("a datagram socket only: works where ping_group_range allows, else says so", function()
    local out = ping_with("dgram")
    if machine().dgram then
      assert.equals("ok dgram 1", out)
    else
      assert.truthy(out:find("^permission\n"), out)
      assert.truthy(out:find("unprivileged datagram socket: Permission denied (it needs "
        .. "net.ipv4.ping_group_range, now", 1, true), out)
    end
  end)

  it("a raw socket only: works with CAP_NET_RAW, else says so", function()
    local out = ping_with("raw")
    if machine().raw then
      assert.equals("ok raw 1", out)
    else
      assert.truthy(out:find("raw socket: Operation not permitted (it needs CAP_NET_RAW)", 1,
        true), out)
    end
  end)

  it("must be called from a task", function()
    local ok, err = pcall(core.ping, { host = "127.0.0.1" })
    assert.is_false(ok)
    assert.truthy(err:find("core.ping must be called from a task", 1, true), err)
  end)

  describe("bad options raise naming the option", function()
    local cases = {
      { {}, "core.ping: option 'host' must be a host name or an IP address" },
      { { host = "" }, "core.ping: option 'host' must be a host name or an IP address" },
      { { host = "x", count = 0 }, "core.ping: option 'count' must be an integer from 1 to 100" },
      { { host = "x", count = 1.5 }, "core.ping: option 'count' must be an integer from 1 to 100" },
      { { host = "x", interval = 0 }, "core.ping: option 'interval' must be a number of seconds "
        .. "from 0.01 to 60" },
      { { host = "x", timeout = "1" }, "core.ping: option 'timeout' must be a number of seconds" },
      { { host = "x", timeout = 61 }, "core.ping: option 'timeout' must be a number of seconds" },
      { { host = "x", cout = 3 }, "core.ping: unknown option 'cout'" },
    }
    for _, case in ipairs(cases) do
      it(case[2], function()
        local ok, err = pcall(core.ping_check, case[1])
        assert.is_false(ok)
        assert.truthy(tostring(err):find(case[2], 1, true), err)
        ok, err = core.run(function() return pcall(core.ping, case[1]) end)
        assert.is_false(ok)
        assert.truthy(tostring(err):find(case[2], 1, true), err)
      end)
    end
  end)
end)
