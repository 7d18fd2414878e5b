-- moonwatch.core: name resolution on the loop (c-ares), against the fixture's
-- DNS responder and its blackhole; never the system's DNS servers.
local core = require("moonwatch.core")
local fixture = require("support.fixture")

local function proc_status(field)
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match(field .. ":%s*(%d+)"))
end

-- The resolver's defaults: the servers of /etc/resolv.conf, 2 s x 2 tries.
local function system_servers()
  local servers = {}
  local f = io.open("/etc/resolv.conf")
  if f then
    for line in f:lines() do
      local ip = line:match("^%s*nameserver%s+(%S+)")
      if ip then
        servers[#servers + 1] = ip:find(":", 1, true) and ("[" .. ip .. "]:53") or (ip .. ":53")
      end
    end
    f:close()
  end
  if #servers == 0 then servers[1] = "127.0.0.1:53" end
  return servers
end

local DEFAULTS = { servers = system_servers(), timeout = 2, tries = 2, cache = true }

-- core.dns_configure raises while lookups are in progress, and (see the
-- failing spec below) counts lookups that requests gave up on, which c-ares
-- ends only at its own timeout: let the loop run until they are gone.
local function configure(opts, patience)
  local deadline = core.now() + (patience or 5)
  while true do
    local ok, err = pcall(core.dns_configure, opts)
    if ok then return end
    if not tostring(err):find("in progress", 1, true) or core.now() > deadline then
      error(err, 2)
    end
    core.run(function() core.sleep(0.05) end)
  end
end

describe("core DNS", function()
  local srv

  lazy_setup(function() srv = fixture.start{ tls = false } end)
  lazy_teardown(function()
    configure(DEFAULTS)
    if srv then srv:stop() end
  end)

  after_each(function()
    configure(DEFAULTS)
    assert.same({ tasks = 0, handles = 0 }, core.stats())
  end)

  local function url(host, path)
    return ("http://%s:%d%s"):format(host, srv.port, path or "/page")
  end

  it("resolves through the configured server (anything.test)", function()
    core.dns_configure{ servers = { "127.0.0.1:" .. srv.dns_port } }
    local r, msg = core.run(function() return core.http_request{ url = url("anything.test") } end)
    assert.is_table(r, msg)
    assert.equals(200, r.status)
    assert.equals("127.0.0.1", r.ip)
    assert.equals(url("anything.test"), r.url)
    local t = r.time
    assert.is_true(t.dns > 0 and t.dns <= t.connect and t.connect <= t.first_byte
                   and t.first_byte <= t.total)
    -- a redirect to another name is resolved on the loop too
    local target = url("other.test", "/status/204"):gsub(":", "%%3A"):gsub("/", "%%2F")
    r, msg = core.run(function()
      return core.http_request{ url = url("anything.test", "/redirect-to?url=" .. target),
                                follow_redirects = true }
    end)
    assert.is_table(r, msg)
    assert.equals(204, r.status)
    assert.equals(1, r.redirects)
    assert.equals(url("other.test", "/status/204"), r.url)
  end)

  it("looks names up in /etc/hosts first", function()
    core.dns_configure{ servers = { "127.0.0.1:" .. srv.dns_blackhole_port }, timeout = 5,
                        tries = 1 }
    local t0 = core.now()
    local r, msg = core.run(function()
      return core.http_request{ url = url("localhost"), timeout = 3 }
    end)
    assert.is_table(r, msg)
    assert.equals(200, r.status)
    assert.is_true(core.now() - t0 < 1)
  end)

  it("fails with kind dns for a name that does not exist or is malformed", function()
    core.dns_configure{ servers = { "127.0.0.1:" .. srv.dns_blackhole_port }, timeout = 5,
                        tries = 1 }
    -- .invalid (RFC 6761) and .onion (RFC 7686) names are never sent to a
    -- server: not found at once, although the server here never answers
    local t0 = core.now()
    local r, msg, kind = core.run(function()
      return core.http_request{ url = url("nothing-here.invalid"), timeout = 3 }
    end)
    assert.is_nil(r)
    assert.equals("dns", kind)
    assert.matches("^dns: could not resolve host 'nothing%-here%.invalid': not found", msg)
    r, msg, kind = core.run(function()
      return core.http_request{ url = url("nothing-here.onion"), timeout = 3 }
    end)
    assert.is_nil(r)
    assert.equals("dns", kind)
    assert.matches("^dns: could not resolve host 'nothing%-here%.onion': not found", msg)
    r, msg, kind = core.run(function()
      return core.http_request{ url = url("bad..name"), timeout = 3 }
    end)
    assert.is_nil(r)
    assert.equals("dns", kind)
    assert.matches("^dns: ", msg)
    assert.is_true(core.now() - t0 < 0.5)
  end)

  it("fails with kind dns at the request timeout when the server never answers", function()
    core.dns_configure{ servers = { "127.0.0.1:" .. srv.dns_blackhole_port }, timeout = 1.3,
                        tries = 1 }
    local t0 = core.now()
    local r, msg, kind = core.run(function()
      return core.http_request{ url = url("slow.test"), timeout = 1 }
    end)
    local dt = core.now() - t0
    assert.is_nil(r)
    assert.equals("dns", kind)
    assert.matches("no answer within the 1 s timeout", msg, 1, true)
    assert.is_true(dt >= 0.95 and dt < 1.25, "failed after " .. dt)
  end)

  it("fails with kind dns when the resolver's own timeout comes first", function()
    core.dns_configure{ servers = { "127.0.0.1:" .. srv.dns_blackhole_port }, timeout = 0.3,
                        tries = 1 }
    local t0 = core.now()
    local r, msg, kind = core.run(function()
      return core.http_request{ url = url("slow.test"), timeout = 5 }
    end)
    local dt = core.now() - t0
    assert.is_nil(r)
    assert.equals("dns", kind)
    assert.matches("did not answer", msg, 1, true)
    assert.is_true(dt >= 0.25 and dt < 1, "failed after " .. dt)
  end)

  it("a request cancelled while resolving leaves nothing behind", function()
    core.dns_configure{ servers = { "127.0.0.1:" .. srv.dns_blackhole_port }, timeout = 0.5,
                        tries = 1 }
    local t = core.spawn(function() return core.http_request{ url = url("slow.test") } end)
    core.run(function()
      for _ = 1, 1000 do -- until the request waits on the lookup
        if t:status() == "waiting" then break end
        core.sleep(0)
      end
      assert.equals("waiting", t:status())
      assert.is_true(t:cancel())
    end)
    assert.equals("cancelled", t:status())
    assert.same({ tasks = 0, handles = 0 }, core.stats())
  end)

  it("a DNS server that never answers delays only the checks that use it", function()
    core.dns_configure{ servers = { "127.0.0.1:" .. srv.dns_blackhole_port }, timeout = 1.2,
                        tries = 1 }
    local threads0 = proc_status("Threads")
    local threads_max = threads0
    local slow = {} -- { elapsed, kind, msg } of each request to the dead server
    local function slow_check(i)
      local t0 = core.now()
      local r, msg, kind = core.http_request{ url = url("slow" .. i .. ".test"), timeout = 1 }
      slow[#slow + 1] = { core.now() - t0, r and r.status or kind, msg }
    end
    local ok, bad = 0, {}
    local monitor = {
      check = function()
        local r, msg = core.http_request{ url = srv:url("/page"), timeout = 1 }
        if r and r.status == 200 then ok = ok + 1 else bad[#bad + 1] = msg end
        threads_max = math.max(threads_max, proc_status("Threads"))
      end,
    }
    local d = core.dispatcher{ spread = false }
    d:add(monitor, { interval = 0.1, name = "local" })
    -- 2 waves of 40 lookups that will never be answered
    for i = 1, 40 do core.spawn(slow_check, i) end
    core.spawn(function()
      core.sleep(0.5)
      for i = 41, 80 do core.spawn(slow_check, i) end
    end)
    core.spawn(function()
      d:start() -- from a task: see core_dispatch_spec about d:start() outside the loop
      core.sleep(1.65)
      d:stop()
    end)
    core.run()
    local st = d:stats()
    assert.equals(80, #slow)
    for _, s in ipairs(slow) do
      assert.equals("dns", s[2], s[3])
      assert.is_true(s[1] >= 0.95 and s[1] < 1.3, "a dns failure took " .. s[1])
    end
    assert.same({}, bad)
    assert.is_true(st.run >= 16 and st.run <= 18, "run " .. st.run)
    assert.equals(st.run, ok)
    assert.equals(0, st.skipped)
    assert.equals(0, st.failed)
    assert.is_true(st.lateness.p99 < 20, "p99 lateness " .. st.lateness.p99 .. " ms")
    assert.is_true(st.lateness.max < 50, "max lateness " .. st.lateness.max .. " ms")
    assert.equals(threads0, threads_max)
    assert.equals(threads0, proc_status("Threads"))
  end)

  it("core.dns_configure refuses bad settings", function()
    assert.has_error(function() core.dns_configure{ timeout = 0 } end)
    assert.has_error(function() core.dns_configure{ tries = 0 } end)
    assert.has_error(function() core.dns_configure{ servers = { 53 } } end)
    assert.has_error(function() core.dns_configure("127.0.0.1") end)
  end)

  it("core.dns_configure raises while a lookup is in flight", function()
    core.dns_configure{ servers = { "127.0.0.1:" .. srv.dns_blackhole_port }, timeout = 0.3,
                        tries = 1 }
    local msg = core.run(function()
      local t = core.spawn(function() return core.http_request{ url = url("slow.test") } end)
      core.sleep(0.05)
      local ok, err = pcall(core.dns_configure, { timeout = 1 })
      assert.is_false(ok)
      t:cancel()
      return err
    end)
    assert.matches("lookups are in progress", msg, 1, true)
  end)

  -- Lookups whose request gave up (timeout or cancel) do not count as in
  -- progress: c-ares would end them only at its own timeout.
  it("core.dns_configure works right after a request gave up on a lookup", function()
    core.dns_configure{ servers = { "127.0.0.1:" .. srv.dns_blackhole_port }, timeout = 1,
                        tries = 1 }
    local r, _, kind = core.run(function()
      return core.http_request{ url = url("slow.test"), timeout = 0.2 }
    end)
    assert.is_nil(r)
    assert.equals("dns", kind)
    assert.same({ tasks = 0, handles = 0 }, core.stats())
    local ok, err = pcall(core.dns_configure, { servers = { "127.0.0.1:" .. srv.dns_port } })
    assert.is_true(ok, err)
  end)
end)
