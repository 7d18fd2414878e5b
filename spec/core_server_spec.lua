-- core.http_server: the embedded HTTP/1.1 server. Clients: core.http_request
-- (curl on the same loop) and, for what curl would not send, a raw socket
-- read without blocking the loop.
local core = require("moonwatch.core")
local log = require("moonwatch.log")
local mime = require("mime")
local socket = require("socket")

local function url(port, path, host)
  return ("http://%s:%d%s"):format(host or "127.0.0.1", port, path)
end

local function get(port, path, opts)
  opts = opts or {}
  opts.url = url(port, path, opts.host)
  opts.host = nil
  return core.http_request(opts)
end

-- A raw connection: bytes in, bytes out, polled from a task so the server
-- on the same loop goes on.
local Raw = {}
Raw.__index = Raw

local function raw(port, host)
  local c = assert(socket.tcp())
  c:settimeout(2)
  assert(c:connect(host or "127.0.0.1", port)) -- the kernel completes it
  c:settimeout(0)
  return setmetatable({ c = c, buf = "", closed = false }, Raw)
end

function Raw:send(s)
  local i = 1
  while i <= #s do
    local n, err, partial = self.c:send(s, i)
    if n then
      i = n + 1
    elseif err == "timeout" then
      i = partial + 1
      core.sleep(0.002)
    else
      error("raw send: " .. err)
    end
  end
  return self
end

-- Reads until done(buf) or the peer closes; fails the spec after seconds.
function Raw:read_until(done, seconds)
  local deadline = core.now() + (seconds or 3)
  while not (done and done(self.buf)) do
    local data, err, partial = self.c:receive(65536)
    local got = data or partial
    if got and #got > 0 then self.buf = self.buf .. got end
    if err == "closed" then
      self.closed = true
      return self.buf
    end
    if not (got and #got > 0) then
      if core.now() > deadline then
        error("raw read: timed out with " .. ("%q"):format(self.buf), 2)
      end
      core.sleep(0.003)
    end
  end
  return self.buf
end

-- Whether anything came (or the peer closed), without waiting.
function Raw:poll()
  local data, err, partial = self.c:receive(65536)
  local got = data or partial
  if got and #got > 0 then self.buf = self.buf .. got end
  if err == "closed" then self.closed = true end
  return #self.buf > 0 or self.closed
end

-- Reads until the peer closes.
function Raw:read_all(seconds) return self:read_until(nil, seconds) end

function Raw:close() self.c:close() end

-- The number of complete responses in s (bodies counted by Content-Length).
local function responses(s)
  local n, i = 0, 1
  while true do
    local head_end = s:find("\r\n\r\n", i, true)
    if not head_end then return n end
    local head = s:sub(i, head_end)
    local len = tonumber(head:match("[Cc]ontent%-[Ll]ength: (%d+)")) or 0
    if head:match("^HTTP/1%.1 1%d%d") then len = 0 end
    if #s < head_end + 3 + len then return n end
    if not head:match("^HTTP/1%.1 1%d%d") then n = n + 1 end
    i = head_end + 4 + len
  end
end

local function has(n) return function(s) return responses(s) >= n end end

local function status_of(s) return tonumber(s:match("^HTTP/1%.1 (%d%d%d)")) end

local function echo(req)
  return 200, req.method .. " " .. req.path, { ["X-Query"] = req.query or "-" }
end

-- Runs fn(server, port) in a task with a server of opts; the server is
-- closed after it, however it ends.
local function with_server(opts, fn)
  opts.listen = opts.listen or "127.0.0.1:0"
  core.run(function()
    local srv = core.http_server(opts)
    local _, port = srv:address()
    -- a task that raises does not close its to-be-closed variables
    local ok, err = pcall(fn, srv, port)
    srv:close()
    if not ok then error(err, 0) end
  end)
end

describe("core.http_server", function()
  describe("options", function()
    local function fails(opts, pattern)
      local ok, err = pcall(core.http_server, opts)
      assert.is_false(ok)
      assert.matches(pattern, err)
    end

    it("names an unknown option", function()
      fails({ listen = "127.0.0.1:0", lisen = 1 }, "core.http_server: unknown option 'lisen'")
    end)

    it("needs listen as host:port", function()
      fails({}, "option 'listen' must be a string \"host:port\", got nil")
      fails({ listen = "127.0.0.1" }, "'127.0.0.1' is not host:port")
      fails({ listen = "127.0.0.1:99999" }, "is not host:port")
      fails({ listen = "::1:80" }, "is not host:port")
      fails({ listen = "example.com:80" }, "'example.com' is not an IP address %(or localhost%)")
    end)

    it("checks each limit, naming it", function()
      fails({ listen = "127.0.0.1:0", max_connections = 0 },
        "option 'max_connections' must be an integer from 1 to 100000, got 0")
      fails({ listen = "127.0.0.1:0", max_header_bytes = 10 },
        "option 'max_header_bytes' must be an integer from 256")
      fails({ listen = "127.0.0.1:0", max_body_bytes = -1 }, "option 'max_body_bytes'")
      fails({ listen = "127.0.0.1:0", request_timeout = 0 },
        "option 'request_timeout' must be a number of seconds from 0.001 to 86400, got 0")
      fails({ listen = "127.0.0.1:0", idle_timeout = "x" }, "option 'idle_timeout'")
      fails({ listen = "127.0.0.1:0", handler = 1 }, "option 'handler' must be a function")
    end)

    it("checks auth", function()
      fails({ listen = "127.0.0.1:0", auth = "x" }, "option 'auth' must be a table")
      fails({ listen = "127.0.0.1:0", auth = { token = "x" } },
        "core.http_server: auth: unknown option 'token'")
      fails({ listen = "127.0.0.1:0", auth = { bearer = "x", user = "u", password = "p" } },
        "a bearer token or a user and password, not both")
      fails({ listen = "127.0.0.1:0", auth = { user = "u" } }, "needs bearer, or both user and")
      fails({ listen = "127.0.0.1:0", auth = { bearer = "" } },
        "option 'auth.bearer' must be a non%-empty string")
      fails({ listen = "127.0.0.1:0", auth = { bearer = "x", scope = "some" } },
        "option 'auth.scope' must be \"all\" or \"marked\"")
      fails({ listen = "127.0.0.1:0", auth_always = { "reload" } },
        "option 'auth_always' must list paths starting with '/', got reload")
    end)

    it("says why it cannot listen", function()
      with_server({}, function(_, port)
        fails({ listen = "127.0.0.1:" .. port },
          "cannot listen on 127.0.0.1:%d+: Address already in use")
      end)
    end)
  end)

  describe("addresses", function()
    it("binds port 0 to a free port it tells", function()
      with_server({ handler = echo }, function(srv, port)
        local host = srv:address()
        assert.equals("127.0.0.1", host)
        assert.is_true(port > 0)
        assert.is_true(srv:is_loopback())
        assert.equals(200, get(port, "/").status)
        assert.matches("127.0.0.1:" .. port, tostring(srv))
      end)
    end)

    it("listens on an IPv6 literal", function()
      with_server({ listen = "[::1]:0", handler = echo }, function(srv, port)
        assert.equals("::1", (srv:address()))
        assert.is_true(srv:is_loopback())
        assert.equals(200, get(port, "/", { host = "[::1]" }).status)
      end)
    end)

    it("listens on both loopbacks for localhost", function()
      with_server({ listen = "localhost:0", handler = echo }, function(_, port)
        assert.equals(200, get(port, "/", { host = "127.0.0.1" }).status)
        assert.equals(200, get(port, "/", { host = "[::1]" }).status)
      end)
    end)

    it("is not loopback on every interface", function()
      with_server({ listen = "0.0.0.0:0", handler = echo }, function(srv, port)
        assert.is_false(srv:is_loopback())
        assert.equals(200, get(port, "/").status)
      end)
    end)
  end)

  describe("the handler", function()
    it("gets method, path, query, headers, body and remote, and answers", function()
      local seen
      with_server({ handler = function(req)
        seen = req
        return 201, "made", { ["X-Thing"] = "1", ["Content-Type"] = "application/json" }
      end }, function(_, port)
        local r = assert(get(port, "/a/b?x=1&y=2", { method = "POST", body = "hello",
          headers = { ["X-Custom"] = "Value" } }))
        assert.equals(201, r.status)
        assert.equals("made", r.body)
        assert.equals("1", r.headers["x-thing"])
        assert.equals("application/json", r.headers["content-type"])
        assert.equals("4", r.headers["content-length"])
        assert.is_string(r.headers.date)
      end)
      assert.equals("POST", seen.method)
      assert.equals("/a/b", seen.path)
      assert.equals("x=1&y=2", seen.query)
      assert.equals("hello", seen.body)
      assert.equals("Value", seen.headers["x-custom"])
      assert.matches("^127%.0%.0%.1:%d+$", seen.remote)
    end)

    it("cannot set the framing headers the server writes", function()
      with_server({ handler = function()
        return 200, "abc", { ["Content-Length"] = "99", Connection = "close",
                             ["transfer-encoding"] = "chunked", ["X-Ok"] = "1" }
      end }, function(_, port)
        local c = raw(port)
        local s = c:send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"):read_until(has(1))
        assert.matches("Content%-Length: 3\r\n", s)
        assert.not_matches("99", s)
        assert.not_matches("[Cc]hunked", s)
        assert.not_matches("[Cc]onnection", s)
        assert.matches("X%-Ok: 1\r\n", s)
        assert.is_false(c.closed)
        c:close()
      end)
    end)

    it("may wait in core calls", function()
      with_server({ handler = function(req)
        core.sleep(0.02)
        return 200, "slept " .. req.path
      end }, function(_, port)
        assert.equals("slept /z", get(port, "/z").body)
      end)
    end)

    it("answers 500 and logs when it raises", function()
      local cap <close> = log.capture()
      with_server({ handler = function() error("kaput") end }, function(_, port)
        local r = get(port, "/broken")
        assert.equals(500, r.status)
        assert.equals("500 Internal Server Error\n", r.body)
        assert.equals(500, get(port, "/broken").status) -- still serving
      end)
      assert.equals(2, #cap)
      assert.equals("HttpServer", cap[1].name)
      assert.matches("handler of GET /broken failed %(answered 500%)", cap[1].message)
      assert.matches("kaput", cap[1].message)
    end)

    it("answers 500 and logs what is wrong with what it returned", function()
      local cap <close> = log.capture()
      local returns = {
        ["/nothing"] = {},
        ["/status"] = { 42, "x" },
        ["/body"] = { 200, {} },
        ["/headers"] = { 200, "x", { ["X-Bad"] = "a\r\nb" } },
      }
      with_server({ handler = function(req) return table.unpack(returns[req.path]) end },
        function(_, port)
          for path in pairs(returns) do assert.equals(500, get(port, path).status, path) end
        end)
      assert.equals(4, #cap)
      assert.matches("must return a status from 100 to 599", cap:text())
      assert.matches("the body%) must be a string or nil", cap:text())
      assert.matches("headers must map names to string values without line breaks", cap:text())
    end)

    it("is bounded by request_timeout: cancelled, 503", function()
      local cancelled = false
      with_server({ request_timeout = 0.2, handler = function()
        local _ <close> = setmetatable({}, { __close = function() cancelled = true end })
        core.sleep(1000)
      end }, function(_, port)
        local started = core.now()
        local r = get(port, "/forever")
        assert.equals(503, r.status)
        assert.is_true(core.now() - started < 1)
        assert.equals("close", r.headers.connection)
      end)
      assert.is_true(cancelled)
    end)

    it("without a handler, every path is 404", function()
      with_server({}, function(_, port)
        local r = get(port, "/anything")
        assert.equals(404, r.status)
        assert.equals("404 Not Found\n", r.body)
      end)
    end)
  end)

  describe("HTTP/1.1", function()
    it("keeps the connection alive between requests", function()
      with_server({ handler = echo }, function(_, port)
        local c = raw(port)
        c:send("GET /one HTTP/1.1\r\nHost: x\r\n\r\n")
        c:read_until(has(1))
        c:send("GET /two HTTP/1.1\r\nHost: x\r\n\r\n")
        local s = c:read_until(has(2))
        assert.is_false(c.closed)
        assert.matches("GET /one.*GET /two", s)
        assert.not_matches("[Cc]onnection: close", s)
        c:close()
        assert.equals(0, get(port, "/a").connects + get(port, "/b").connects - 1)
      end)
    end)

    it("answers pipelined requests in order, one at a time", function()
      local running, most = 0, 0
      with_server({ handler = function(req)
        running = running + 1
        most = math.max(most, running)
        core.sleep(req.path == "/1" and 0.03 or 0)
        running = running - 1
        return 200, req.path
      end }, function(_, port)
        local c = raw(port)
        c:send("GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n"
          .. "GET /3 HTTP/1.1\r\nHost: x\r\n\r\n")
        local s = c:read_until(has(3))
        local order = {}
        for body in s:gmatch("\r\n\r\n(/%d)") do order[#order + 1] = body end
        assert.same({ "/1", "/2", "/3" }, order)
        c:close()
      end)
      assert.equals(1, most)
    end)

    it("closes after Connection: close", function()
      with_server({ handler = echo }, function(_, port)
        local c = raw(port)
        local s = c:send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"):read_all()
        assert.is_true(c.closed)
        assert.equals(200, status_of(s))
        assert.matches("Connection: close", s)
        c:close()
      end)
    end)

    it("answers HEAD without a body, with GET's Content-Length", function()
      with_server({ handler = function() return 200, "twelve bytes" end }, function(_, port)
        local c = raw(port)
        c:send("HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        local s = c:read_until(function(b) return b:find("twelve bytes", 1, true) end)
        assert.matches("^HTTP/1%.1 200 OK\r\n.-Content%-Length: 12\r\n\r\nHTTP/1%.1 200", s)
        c:close()
      end)
    end)

    it("sends 100 Continue to a request that expects it", function()
      with_server({ handler = function(req) return 200, "got " .. req.body end }, function(_, port)
        local c = raw(port)
        c:send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
        c:read_until(function(b) return b:find("100 Continue\r\n\r\n", 1, true) end)
        local s = c:send("abc"):read_until(function(b) return b:find("got abc", 1, true) end)
        assert.matches("^HTTP/1%.1 100 Continue\r\n\r\nHTTP/1%.1 200 OK", s)
        c:close()
      end)
    end)

    it("reads a chunked body", function()
      with_server({ handler = function(req) return 200, "got " .. req.body end }, function(_, port)
        local c = raw(port)
        c:send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
          .. "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        assert.matches("got abcde", c:read_until(has(1)))
        c:close()
      end)
    end)
  end)

  describe("HTTP/1.0", function()
    it("closes after the response", function()
      with_server({ handler = echo }, function(_, port)
        local c = raw(port)
        local s = c:send("GET /old HTTP/1.0\r\n\r\n"):read_all()
        assert.is_true(c.closed)
        assert.matches("^HTTP/1%.1 200 OK\r\n", s)
        assert.matches("Connection: close", s)
        assert.matches("GET /old$", s)
        c:close()
      end)
    end)

    it("keeps alive with Connection: keep-alive", function()
      with_server({ handler = echo }, function(_, port)
        local c = raw(port)
        c:send("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        local s = c:read_until(has(1))
        assert.matches("Connection: keep%-alive", s)
        c:send("GET /b HTTP/1.0\r\n\r\n")
        c:read_all()
        assert.is_true(c.closed)
        assert.equals(2, responses(c.buf))
        c:close()
      end)
    end)
  end)

  describe("limits", function()
    it("answers 400 to a malformed request, and closes", function()
      with_server({ handler = echo }, function(_, port)
        for _, bad in ipairs({ "GARBAGE\r\n\r\n", "GET / HTTP/1.1\r\nBad Header\r\n\r\n",
                               "GET * HTTP/1.1\r\nHost: x\r\n\r\n",
                               "GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n" }) do
          local c = raw(port)
          local s = c:send(bad):read_all()
          assert.equals(400, status_of(s), bad)
          assert.matches("Connection: close", s)
          c:close()
        end
      end)
    end)

    it("answers 505 to a version other than HTTP/1.x", function()
      with_server({ handler = echo }, function(_, port)
        local c = raw(port)
        assert.equals(505, status_of(c:send("GET / HTTP/2.0\r\n\r\n"):read_all()))
        c:close()
      end)
    end)

    it("answers 431 to headers past max_header_bytes", function()
      with_server({ handler = echo, max_header_bytes = 1024 }, function(_, port)
        local c = raw(port)
        local s = c:send("GET / HTTP/1.1\r\nHost: x\r\nX-Big: " .. ("a"):rep(2000) .. "\r\n\r\n")
          :read_all()
        assert.equals(431, status_of(s))
        c:close()
        local many = {}
        for i = 1, 120 do many[i] = "X-" .. i .. ": 1\r\n" end
        c = raw(port)
        s = c:send("GET / HTTP/1.1\r\n" .. table.concat(many) .. "\r\n"):read_all()
        assert.equals(431, status_of(s))
        c:close()
        assert.equals(200, get(port, "/").status) -- what fits is served
      end)
    end)

    it("answers 413 to a body past max_body_bytes", function()
      with_server({ handler = echo, max_body_bytes = 100 }, function(_, port)
        local r = get(port, "/", { method = "POST", body = ("x"):rep(101) })
        assert.equals(413, r.status)
        local c = raw(port)
        local s = c:send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
          .. "50\r\n" .. ("y"):rep(80) .. "\r\n50\r\n" .. ("y"):rep(80) .. "\r\n0\r\n\r\n")
          :read_all()
        assert.equals(413, status_of(s))
        c:close()
        assert.equals(200, get(port, "/", { method = "POST", body = ("x"):rep(100) }).status)
      end)
    end)

    it("answers 408 to a request not complete within request_timeout", function()
      with_server({ handler = echo, request_timeout = 0.2 }, function(_, port)
        local c = raw(port)
        local started = core.now()
        local s = c:send("GET / HTTP/1.1\r\nHost: x\r\n"):read_all()
        assert.equals(408, status_of(s))
        assert.is_true(core.now() - started >= 0.19)
        c:close()
      end)
    end)

    it("does not restart request_timeout as bytes trickle in", function()
      with_server({ handler = echo, request_timeout = 0.3 }, function(_, port)
        local c = raw(port)
        local started = core.now()
        c:send("GET / HTTP/1.1\r\nHost: x\r\n")
        for i = 1, 40 do
          if c:poll() then break end
          c:send("X-" .. i .. ": b\r\n")
          core.sleep(0.025)
        end
        assert.equals(408, status_of(c:read_all()))
        assert.is_true(core.now() - started < 0.9)
        c:close()
      end)
    end)

    it("closes a kept-alive connection idle past idle_timeout", function()
      with_server({ handler = echo, idle_timeout = 0.2 }, function(_, port)
        local c = raw(port)
        local started = core.now()
        c:send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"):read_all()
        assert.is_true(c.closed)
        assert.equals(1, responses(c.buf))
        assert.is_true(core.now() - started >= 0.19)
        c:close()
      end)
    end)

    it("counts idle_timeout from the last request", function()
      with_server({ handler = echo, idle_timeout = 0.25 }, function(_, port)
        local c = raw(port)
        for i = 1, 5 do
          c:send("GET /" .. i .. " HTTP/1.1\r\nHost: x\r\n\r\n"):read_until(has(i))
          assert.is_false(c.closed, "closed before request " .. i)
          core.sleep(0.1)
        end
        c:close()
      end)
    end)

    it("answers 503 past max_connections, and closes", function()
      with_server({ handler = echo, max_connections = 1 }, function(_, port)
        local first = raw(port)
        first:send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"):read_until(has(1))
        local second = raw(port)
        local s = second:send("GET / HTTP/1.1\r\nHost: x\r\n\r\n"):read_all()
        assert.equals(503, status_of(s))
        assert.is_true(second.closed)
        second:close()
        first:send("GET /again HTTP/1.1\r\nHost: x\r\n\r\n"):read_until(has(2))
        first:close()
        -- once the first is gone, a new one is served
        local r = core.http_request{ url = url(port, "/"), fresh_connection = true }
        assert.equals(200, r.status)
      end)
    end)
  end)

  describe("auth", function()
    local function authorized_status(port, authorization)
      return get(port, "/x", { headers = { Authorization = authorization } }).status
    end

    local function basic(user, password) return "Basic " .. mime.b64(user .. ":" .. password) end

    it("with a bearer token, answers 401 without it", function()
      with_server({ handler = echo, auth = { bearer = "s3cret" } }, function(_, port)
        local r = get(port, "/x")
        assert.equals(401, r.status)
        assert.equals('Bearer realm="moonwatch"', r.headers["www-authenticate"])
        local function with(h) return authorized_status(port, h) end
        assert.equals(401, with("Bearer nope"))
        assert.equals(401, with("Bearer s3cret2"))
        assert.equals(401, with("Basic s3cret"))
        assert.equals(200, with("Bearer s3cret"))
        assert.equals(200, with("bearer s3cret"))
      end)
    end)

    it("with basic auth, needs the user and the password", function()
      with_server({ handler = echo, auth = { user = "ann", password = "pw:1" } }, function(_, port)
        local r = get(port, "/x")
        assert.equals(401, r.status)
        assert.matches('^Basic realm="moonwatch"', r.headers["www-authenticate"])
        local function with(h) return authorized_status(port, h) end
        assert.equals(200, with(basic("ann", "pw:1")))
        assert.equals(401, with(basic("ann", "pw:2")))
        assert.equals(401, with(basic("bob", "pw:1")))
        assert.equals(401, with("Basic !!!!"))
        assert.equals(401, with("Basic " .. mime.b64("annpw")))
      end)
    end)

    it("with scope marked, needs it only on the auth_always paths", function()
      with_server({ handler = echo, auth = { bearer = "t", scope = "marked" },
                    auth_always = { "/-/reload" } }, function(_, port)
        assert.equals(200, get(port, "/open").status)
        assert.equals(401, get(port, "/-/reload").status)
        local authorized = { headers = { Authorization = "Bearer t" } }
        assert.equals(200, get(port, "/-/reload", authorized).status)
      end)
    end)

    it("answers 403 on an auth_always path of a server without credentials", function()
      with_server({ handler = echo, auth_always = { "/-/reload" } }, function(_, port)
        assert.equals(200, get(port, "/open").status)
        assert.equals(403, get(port, "/-/reload").status)
      end)
    end)
  end)

  describe("closing", function()
    it("stops listening and serving; its methods say it is closed", function()
      core.run(function()
        local srv = core.http_server{ listen = "127.0.0.1:0", handler = function()
          core.sleep(10)
        end }
        local _, port = srv:address()
        local c = raw(port)
        c:send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        core.sleep(0.02) -- the handler is waiting
        srv:close()
        srv:close()
        c:read_all()
        assert.is_true(c.closed)
        c:close()
        assert.matches("closed", tostring(srv))
        assert.error_matches(function() srv:address() end, "http server: it is closed")
        local r, err, kind = core.http_request{ url = url(port, "/"), timeout = 2 }
        assert.is_nil(r, err)
        assert.equals("refused", kind)
      end)
      assert.equals(0, core.stats().tasks)
    end)

    it("closes with the state, mid-request, without a leak", function()
      -- the sanitizer build checks the leak at exit; here: nothing is left
      local script = [[
        local core = require("moonwatch.core")
        local srv = core.http_server{ listen = "127.0.0.1:0", handler = function()
          core.sleep(100) end }
        local _, port = srv:address()
        core.run(function()
          core.spawn(function() core.http_request{ url = "http://127.0.0.1:" .. port .. "/" } end)
          core.sleep(0.05)
        end)
        print("ok")
      ]]
      local path = os.tmpname()
      local f = assert(io.open(path, "w"))
      f:write(script)
      f:close()
      local bin = os.getenv("MOONWATCH_BIN")
      local cmd = bin and (bin .. " -l " .. path)
        or ("LUA_CPATH='build/lib/?.so;;' lua5.4 " .. path)
      local p = assert(io.popen(cmd .. " 2>&1"))
      local out = p:read("a")
      local ok = p:close()
      os.remove(path)
      assert.is_true(ok, out)
      assert.matches("ok", out)
    end)
  end)
end)
