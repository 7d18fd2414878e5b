-- moonwatch.core: HTTP requests on the loop (curl multi + libuv), against the
-- local fixture only.
local core = require("moonwatch.core")
local fixture = require("support.fixture")
local socket = require("socket")

local PATTERN = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/"

-- VmRSS of this process in bytes.
local function rss()
  local f = assert(io.open("/proc/self/status"))
  local s = f:read("a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)")) * 1024
end

-- A port nothing listens on: bound, then closed.
local function closed_port()
  local s = assert(socket.tcp())
  assert(s:bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return port
end

-- Set of "local:remote" of the ESTABLISHED TCP sockets whose remote port is
-- port (our side of the connections to the fixture).
local function established_to(port)
  local set = {}
  local f = assert(io.open("/proc/net/tcp"))
  for line in f:lines() do
    local l, r, rport, st = line:match("^%s*%d+:%s+(%x+:%x+)%s+(%x+:(%x+))%s+(%x+)")
    if l and tonumber(st, 16) == 1 and tonumber(rport, 16) == port then
      set[l .. "-" .. r] = true
    end
  end
  f:close()
  return set
end

local function stats_of(body)
  return tonumber(body:match('"connections": (%d+)')), tonumber(body:match('"requests": (%d+)'))
end

-- Asserts that a request failed as a result (not an error) of this kind.
local function assert_failure(kind, res, msg, got_kind)
  assert.is_nil(res, "expected a failure of kind " .. kind)
  assert.equals(kind, got_kind, msg)
  assert.is_string(msg)
  assert.equals(kind .. ": ", msg:sub(1, #kind + 2))
  return msg
end

local function assert_ordered(t)
  assert.is_true(t.dns >= 0, "dns >= 0")
  assert.is_true(t.dns <= t.connect, "dns <= connect")
  assert.is_true(t.connect <= t.tls, "connect <= tls")
  assert.is_true(t.tls <= t.first_byte, "tls <= first_byte")
  assert.is_true(t.first_byte <= t.total, "first_byte <= total")
  assert.is_true(t.total > 0, "total > 0")
end

describe("core HTTP", function()
  local srv

  lazy_setup(function() srv = fixture.start{ tls = false } end)
  lazy_teardown(function() if srv then srv:stop() end end)

  after_each(function()
    assert.same({ tasks = 0, handles = 0 }, core.stats())
  end)

  it("gets a page: status, headers, body, size, url, ip, timings", function()
    local r = core.run(function() return core.http_request{ url = srv:url("/page") } end)
    assert.equals(200, r.status)
    assert.equals(648, #r.body)
    assert.equals(648, r.size)
    assert.is_false(r.truncated)
    assert.equals("text/html; charset=utf-8", r.headers["content-type"])
    assert.equals("648", r.headers["content-length"])
    assert.equals(srv:url("/page"), r.url)
    assert.equals("127.0.0.1", r.ip)
    assert.equals(0, r.redirects)
    assert.is_number(r.connects)
    assert_ordered(r.time)
    assert.equals(0, r.time.redirect)
  end)

  it("keeps 1,000 requests in flight at once on one loop", function()
    local n, inflight, peak = 1000, 0, 0
    local statuses = {}
    local stats = core.http_prepare{ url = srv:url("/stats") }
    local c0 = stats_of(core.run(function() return stats:perform() end).body)
    for i = 1, n do
      core.spawn(function()
        inflight = inflight + 1
        if inflight > peak then peak = inflight end
        local r, msg = core.http_request{ url = srv:url("/delay/300"), timeout = 20 }
        inflight = inflight - 1
        statuses[i] = r and r.status or msg
      end)
    end
    local t0 = core.now()
    core.run()
    local elapsed = core.now() - t0
    assert.equals(n, peak) -- every request started before the first ended
    local ok = 0
    for i = 1, n do
      if statuses[i] == 200 then ok = ok + 1 end
    end
    assert.equals(n, ok, "first non-200: " .. tostring(statuses[1]))
    -- one after the other this would take 300 s
    assert.is_true(elapsed < 5, "1,000 x 300 ms took " .. elapsed .. " s")
    local c1 = stats_of(core.run(function() return stats:perform() end).body)
    assert.is_true(c1 - c0 >= n - 50, ("only %d new connections"):format(c1 - c0))
  end)

  describe("fails with a kind, as a result and not an error:", function()
    it("refused (a closed port)", function()
      local port = closed_port()
      local r, msg, kind = core.run(function()
        return core.http_request{ url = "http://127.0.0.1:" .. port .. "/", timeout = 5 }
      end)
      assert_failure("refused", r, msg, kind)
    end)

    it("timeout (/hang with timeout 0.3), after about 0.3 s", function()
      local t0 = core.now()
      local r, msg, kind = core.run(function()
        return core.http_request{ url = srv:url("/hang"), timeout = 0.3 }
      end)
      local dt = core.now() - t0
      assert_failure("timeout", r, msg, kind)
      assert.is_true(dt >= 0.28 and dt < 1.0, "took " .. dt)
    end)

    it("reset (/drop)", function()
      local r, msg, kind = core.run(function()
        return core.http_request{ url = srv:url("/drop"), timeout = 5 }
      end)
      assert_failure("reset", r, msg, kind)
    end)

    it("protocol (/malformed and /garbage)", function()
      for _, path in ipairs({ "/malformed", "/garbage" }) do
        local r, msg, kind = core.run(function()
          return core.http_request{ url = srv:url(path), timeout = 5 }
        end)
        assert_failure("protocol", r, msg, kind)
      end
    end)

    it("protocol (a chunk size that is not hex), not reset", function()
      local r, msg, kind = core.run(function()
        return core.http_request{ url = srv:url("/bad-chunked"), timeout = 5 }
      end)
      msg = assert_failure("protocol", r, msg, kind)
      assert.matches("chunked-encoding", msg, 1, true)
    end)

    it("protocol (headers past 256 KiB in all), saying the limit", function()
      local r, msg, kind = core.run(function()
        return core.http_request{ url = srv:url("/header-lines/300"), timeout = 5 }
      end)
      msg = assert_failure("protocol", r, msg, kind)
      assert.equals("protocol: the response headers exceeded the limit of 262144 bytes", msg)
      -- below the limit every header is kept
      r = core.run(function()
        return core.http_request{ url = srv:url("/header-lines/200"), timeout = 5 }
      end)
      assert.equals(200, r.status)
      assert.equals(("v"):rep(1000), r.headers["x-h199"])
    end)

    it("protocol (one header line of 100 MB), not out of memory", function()
      local r, msg, kind = core.run(function()
        return core.http_request{ url = srv:url("/header-line/104857600"), timeout = 20 }
      end)
      msg = assert_failure("protocol", r, msg, kind)
      assert.equals("protocol: a response header line exceeded curl's limit of 102400 bytes", msg)
    end)

    it("local (no file descriptor left), naming EMFILE and the limit", function()
      local dir = fixture.tmpdir()
      local script = dir .. "/emfile.lua"
      local f = assert(io.open(script, "w"))
      f:write([[
local core = require("moonwatch.core")
local url = arg[1]
print(core.run(function()
  assert(core.http_request{ url = url }) -- the loop and curl have their descriptors
  local held = {}
  while true do
    local file = io.open("/dev/null")
    if not file then break end
    held[#held + 1] = file
  end
  local r, msg, kind = core.http_request{ url = url, fresh_connection = true, timeout = 5 }
  for _, file in ipairs(held) do file:close() end
  return tostring(r) .. "|" .. tostring(kind) .. "|" .. tostring(msg)
end))
]])
      f:close()
      local q = fixture.shell_quote
      local cmd = ("ulimit -n 64 && exec %s -l %s %s 2>&1"):format(
        q(os.getenv("MOONWATCH_BIN") or "build/moonwatch"), q(script), q(srv:url("/page")))
      local p = assert(io.popen("sh -c " .. q(cmd)))
      local out = p:read("a")
      p:close()
      fixture.rmtree(dir)
      assert.equals("nil|local|local: too many open files (EMFILE, limit 64): no socket could "
        .. "be opened\n", out)
    end)

    it("too_many_redirects (/loop), stopping at max_redirects", function()
      local r, msg, kind = core.run(function()
        return core.http_request{ url = srv:url("/loop"), follow_redirects = true }
      end)
      msg = assert_failure("too_many_redirects", r, msg, kind)
      assert.matches("stopped after 5 redirect", msg, 1, true)
      r, msg, kind = core.run(function()
        return core.http_request{ url = srv:url("/redirect/3"), follow_redirects = true,
                                  max_redirects = 2 }
      end)
      msg = assert_failure("too_many_redirects", r, msg, kind)
      assert.matches("stopped after 2 redirect", msg, 1, true)
    end)

    it("url (a redirect to a scheme other than http/https)", function()
      local r, msg, kind = core.run(function()
        return core.http_request{ url = srv:url("/redirect-to?url=ftp%3A%2F%2Fexample.test%2F"),
                                  follow_redirects = true }
      end)
      msg = assert_failure("url", r, msg, kind)
      assert.matches("ftp", msg, 1, true)
    end)
  end)

  it("follows redirects when asked, counting them", function()
    local r = core.run(function()
      return core.http_request{ url = srv:url("/redirect/3"), follow_redirects = true }
    end)
    assert.equals(200, r.status)
    assert.equals("done", r.body)
    assert.equals(3, r.redirects)
    assert.equals(srv:url("/redirect/0"), r.url)
    assert.is_true(r.time.redirect > 0 and r.time.redirect <= r.time.total)
    assert_ordered(r.time)
    -- not followed by default
    r = core.run(function() return core.http_request{ url = srv:url("/redirect/3") } end)
    assert.equals(302, r.status)
    assert.equals("/redirect/2", r.headers.location)
    assert.equals(0, r.redirects)
  end)

  it("bounds memory on a 50 MB body: keeps max_body bytes, counts them all", function()
    local max_body = 64 * 1024
    collectgarbage()
    collectgarbage()
    local before = rss()
    local r, msg = core.run(function()
      return core.http_request{ url = srv:url("/bytes/50000000"), max_body = max_body,
                                timeout = 30 }
    end)
    local grown = rss() - before
    assert.is_table(r, msg)
    assert.equals(200, r.status)
    assert.equals(max_body, #r.body)
    assert.equals(50000000, r.size)
    assert.is_true(r.truncated)
    assert.equals(PATTERN:rep(max_body // 64), r.body)
    assert.is_true(grown < 8 * 1024 * 1024, ("RSS grew by %.1f MB"):format(grown / 1e6))
  end)

  it("truncates at 1 MiB by default, also for a chunked body", function()
    local r = core.run(function()
      return core.http_request{ url = srv:url("/chunked/3000000") }
    end)
    assert.equals(200, r.status)
    assert.equals(1024 * 1024, #r.body)
    assert.equals(3000000, r.size)
    assert.is_true(r.truncated)
    r = core.run(function()
      return core.http_request{ url = srv:url("/bytes/1000"), max_body = 1000 }
    end)
    assert.equals(1000, #r.body)
    assert.is_false(r.truncated)
  end)

  it("has ordered timings on a new plain connection", function()
    local r = core.run(function()
      return core.http_request{ url = srv:url("/page"), fresh_connection = true }
    end)
    assert.equals(1, r.connects)
    assert_ordered(r.time)
    assert.is_true(r.time.connect > 0)
  end)

  it("cancels an in-flight request: no task, no handle, connection closed", function()
    local before = established_to(srv.port)
    local t = core.spawn(function()
      return core.http_request{ url = srv:url("/hang"), timeout = 30, fresh_connection = true }
    end)
    local during, left
    core.run(function()
      core.sleep(0.2)
      assert.equals("waiting", t:status())
      during = established_to(srv.port)
      assert.is_true(t:cancel())
      -- the fixture reads until EOF: wait for the connection to go
      for _ = 1, 100 do
        left = 0
        local now = established_to(srv.port)
        for k in pairs(during) do
          if not before[k] and now[k] then left = left + 1 end
        end
        if left == 0 then break end
        core.sleep(0.01)
      end
    end)
    assert.equals("cancelled", t:status())
    assert.same({ false, "cancelled" }, { t:result() })
    local new = 0
    for k in pairs(during) do
      if not before[k] then new = new + 1 end
    end
    assert.equals(1, new) -- the /hang connection was open while waiting
    assert.equals(0, left) -- and is closed after the cancel
    assert.same({ tasks = 0, handles = 0 }, core.stats())
  end)

  it("reuses the connection of a prepared request; fresh_connection does not", function()
    local stats = core.http_prepare{ url = srv:url("/stats") }
    local req = core.http_prepare{ url = srv:url("/page") }
    local fresh = core.http_prepare{ url = srv:url("/page"), fresh_connection = true }
    core.run(function()
      local c0 = stats_of(stats:perform().body)
      local r1 = req:perform()
      local r2 = req:perform()
      local c1 = stats_of(stats:perform().body)
      assert.equals(200, r1.status)
      assert.equals(200, r2.status)
      assert.equals(0, r2.connects)
      assert.is_true(c1 - c0 <= 1, "connections grew by " .. (c1 - c0))
      local f1 = fresh:perform()
      local f2 = fresh:perform()
      local c2 = stats_of(stats:perform().body)
      assert.equals(1, f1.connects)
      assert.equals(1, f2.connects)
      assert.equals(2, c2 - c1)
      -- a reused connection still has ordered timings
      assert_ordered(r2.time)
    end)
  end)

  it("refuses a second perform of a request that is in flight", function()
    local req = core.http_prepare{ url = srv:url("/delay/100") }
    local first = core.spawn(function() return req:perform() end)
    local second = core.spawn(function() return req:perform() end)
    core.run()
    assert.equals(200, select(2, first:result()).status)
    local ok, tb = second:result()
    assert.is_false(ok)
    assert.matches("already in flight", tb, 1, true)
  end)

  it("sends method, headers (map or list), body and user agent", function()
    local r = core.run(function()
      return core.http_request{
        url = srv:url("/echo?x=1"), method = "PUT", body = "hello body",
        headers = { ["X-One"] = "1" }, user_agent = "spec-agent/1",
      }
    end)
    assert.equals(200, r.status)
    assert.matches('"method": "PUT"', r.body, 1, true)
    assert.matches('"path": "/echo?x=1"', r.body, 1, true)
    assert.matches('"body": "hello body"', r.body, 1, true)
    assert.matches('"x-one": "1"', r.body, 1, true)
    assert.matches('"user-agent": "spec-agent/1"', r.body, 1, true)
    r = core.run(function()
      return core.http_request{ url = srv:url("/echo"), headers = { "X-Two: 2", "X-Two: 3" } }
    end)
    assert.matches('"method": "GET"', r.body, 1, true)
    assert.matches('"x-two": "2, 3"', r.body, 1, true)
    assert.matches('"user-agent": "moonwatch/', r.body, 1, true)
    r = core.run(function() return core.http_request{ url = srv:url("/page"), method = "HEAD" } end)
    assert.equals(200, r.status)
    assert.equals("", r.body)
  end)

  it("returns many headers with lower-case names", function()
    local r = core.run(function() return core.http_request{ url = srv:url("/headers/many") } end)
    assert.equals(200, r.status)
    assert.equals("value1", r.headers["x-h1"])
    assert.equals("value200", r.headers["x-h200"])
  end)

  it("returns non-2xx statuses as responses", function()
    local r = core.run(function() return core.http_request{ url = srv:url("/status/503") } end)
    assert.equals(503, r.status)
    assert.equals("status 503", r.body)
  end)

  describe("raises on bad input:", function()
    -- http_check (what monitors call when they are built) raises exactly
    -- what http_prepare (the first check) would.
    local function raises(opts, pattern)
      local ok, msg = pcall(core.http_prepare, opts)
      assert.is_false(ok, "no error for " .. pattern)
      assert.matches(pattern, msg, 1, true)
      local ok2, msg2 = pcall(core.http_check, opts)
      assert.is_false(ok2, "http_check: no error for " .. pattern)
      assert.equals(msg, msg2)
    end

    it("nothing from http_check on good options", function()
      assert.is_true(core.http_check{ url = srv:url("/"), headers = { A = "b" }, body = "x",
                                      method = "POST", trust_redirects = true })
      assert.same({ tasks = 0, handles = 0 }, core.stats())
    end)

    it("unknown option", function()
      raises({ url = srv:url("/"), tiemout = 1 }, "http request: unknown option 'tiemout'")
    end)

    it("bad option types and values", function()
      raises({ url = srv:url("/"), timeout = "1" }, "http request: option 'timeout' must be")
      raises({ url = srv:url("/"), timeout = -1 }, "http request: option 'timeout' must be")
      raises({ url = srv:url("/"), verify = "yes" }, "http request: option 'verify' must be")
      raises({ url = srv:url("/"), max_body = 1.5 }, "http request: option 'max_body' must be")
      raises({ url = srv:url("/"), headers = "X: 1" }, "http request: option 'headers' must be")
      raises({ url = srv:url("/"), method = "get" }, "is not an upper-case HTTP method")
      raises({ url = srv:url("/"), headers = { ["X-A"] = "1\r\nX-B: 2" } }, "header 'X-A'")
      raises({}, "http request: option 'url' is required")
    end)

    it("bad url", function()
      raises({ url = "not a url" }, "http request: bad url 'not a url'")
      raises({ url = "ftp://example.test/" }, "unsupported scheme 'ftp'")
      raises({ url = "http://example.test/a b" },
        "http request: bad url 'http://example.test/a b': a space at offset 21 (percent-encode it)")
      raises({ url = "http://example.test/a\r\nX: y" },
        "bad url 'http://example.test/a\\x0d\\x0aX: y': a control character at offset 21")
      raises({ url = "http://example.test/a\0b" },
        "http request: option 'url' must not contain a NUL byte")
    end)

    it("values out of range, wrong types, NUL bytes", function()
      raises({ url = srv:url("/"), timeout = 100000 },
        "http request: option 'timeout' must be a number of seconds in (0, 86400], got 100000")
      raises({ url = srv:url("/"), max_body = -1 },
        "http request: option 'max_body' must be a non-negative integer, got -1")
      raises({ url = srv:url("/"), body = {} },
        "http request: option 'body' must be a string, got table")
      raises({ url = srv:url("/"), ca_file = "/etc/ssl\0x" },
        "http request: option 'ca_file' must not contain a NUL byte")
      raises({ url = srv:url("/"), trust_redirects = "yes" },
        "http request: option 'trust_redirects' must be a boolean")
      raises({ url = srv:url("/"), allow_insecure_redirects = 1 },
        "http request: option 'allow_insecure_redirects' must be a boolean")
    end)

    it("a request outside a task", function()
      local ok, msg = pcall(core.http_request, { url = srv:url("/") })
      assert.is_false(ok)
      assert.matches("must be called from a task", msg, 1, true)
    end)
  end)
end)

describe("core HTTPS", function()
  local srv

  lazy_setup(function() srv = fixture.start{ tls = true } end)
  lazy_teardown(function() if srv then srv:stop() end end)

  after_each(function()
    assert.same({ tasks = 0, handles = 0 }, core.stats())
  end)

  it("fails with kind tls on a self-signed certificate without ca_file", function()
    local r, msg, kind = core.run(function() return core.http_request{ url = srv:url("/page") } end)
    assert_failure("tls", r, msg, kind)
  end)

  it("verifies with ca_file, and skips verification with verify=false", function()
    core.run(function()
      local r = core.http_request{ url = srv:url("/page"), ca_file = srv.ca_file }
      assert.equals(200, r.status)
      assert.equals(648, #r.body)
      r = core.http_request{ url = srv:url("/page"), verify = false }
      assert.equals(200, r.status)
      -- the certificate also names 127.0.0.1
      r = core.http_request{ url = "https://127.0.0.1:" .. srv.port .. "/page",
                             ca_file = srv.ca_file }
      assert.equals(200, r.status)
    end)
  end)

  it("has ordered timings with a TLS phase, and reuses the TLS connection", function()
    local req = core.http_prepare{ url = srv:url("/page"), ca_file = srv.ca_file }
    local fresh = core.http_prepare{ url = srv:url("/page"), ca_file = srv.ca_file,
                                     fresh_connection = true }
    core.run(function()
      local r = fresh:perform()
      assert.equals(200, r.status)
      assert.equals(1, r.connects)
      assert_ordered(r.time)
      assert.is_true(r.time.tls > r.time.connect, "the handshake takes time")
      local r1 = req:perform()
      local r2 = req:perform()
      assert.equals(200, r1.status)
      assert.equals(200, r2.status)
      assert.equals(0, r2.connects)
      assert_ordered(r2.time)
    end)
  end)

  it("fails with kind tls when ca_file does not sign the certificate", function()
    local dir = fixture.tmpdir()
    local other = fixture.make_cert(dir)
    local r, msg, kind = core.run(function()
      return core.http_request{ url = srv:url("/page"), ca_file = other }
    end)
    fixture.rmtree(dir)
    assert_failure("tls", r, msg, kind)
  end)
end)
