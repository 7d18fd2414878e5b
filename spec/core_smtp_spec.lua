-- core.smtp_send and core.smtp_check against a local SMTP server (Debian's
-- python3-aiosmtpd, spec/fixtures/smtp_server.py).
local core = require("moonwatch.core")
local mail = require("moonwatch.mail")
local mime = require("mime")
local socket = require("socket")
local smtp_fixture = require("support.smtp_fixture")

local FROM, TO = "alerts@example.com", "ops@example.com"
local PASSWORD = "pa55-w0rd!"

local function message(subject)
  return mail.message{ from = FROM, to = { TO }, subject = subject or "api is down",
    body = "GET https://api.example.com/health\n.a line with a leading dot\nstatus: 503\n" }
end

local function opts(url, extra)
  local o = { url = url, from = FROM, to = { TO }, message = message(), timeout = 5 }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

local function send(o)
  return core.run(function() return core.smtp_send(o) end)
end

-- A port nothing listens on: bound, then closed.
local function closed_port()
  local s = assert(socket.tcp())
  assert(s:bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return port
end

-- Headers (unfolded, names in lower case) and body of a received message.
local function parse(data)
  local head, body = data:match("^(.-)\r\n\r\n(.*)$")
  local headers = {}
  for name, value in head:gsub("\r\n[ \t]+", " "):gmatch("([^:\r\n]+): ([^\r\n]*)") do
    headers[name:lower()] = value
  end
  return headers, body
end

local function decode_words(s)
  return (s:gsub("=%?UTF%-8%?B%?([^?]*)%?=%s*", function(b64) return (mime.unb64(b64)) end))
end

local function assert_failure(kind, ok, msg, got_kind)
  assert.is_nil(ok, "expected a failure of kind " .. kind)
  assert.equals(kind, got_kind, msg)
  assert.equals(kind .. ": ", msg:sub(1, #kind + 2))
  return msg
end

describe("core.smtp_send", function()
  after_each(function()
    assert.same({ tasks = 0, handles = 0 }, core.stats())
  end)

  describe("against a plain server", function()
    local srv
    lazy_setup(function() srv = smtp_fixture.start{ reject = "nobody@example.com" } end)
    lazy_teardown(function() srv:stop() end)

    it("delivers: envelope, headers and body arrive as sent", function()
      local before = #srv:messages()
      local subject = "Ünïcode alert: api is down ☃"
      local text = mail.message{ from = FROM, to = { TO, "dev@example.com" }, subject = subject,
        body = "first line\n.leading dot\nlast = line", date = 1700000000 }
      local ok, err = send(opts(srv.url, { starttls = false, message = text,
        to = { TO, "dev@example.com" } }))
      assert.is_true(ok, err)
      local got = srv:messages()
      assert.equals(before + 1, #got)
      local m = got[#got]
      assert.equals(FROM, m.mail_from)
      assert.same({ TO, "dev@example.com" }, m.rcpt_tos)
      assert.is_false(m.tls)
      -- what arrived is what was built: curl's dot-stuffing was undone
      assert.equals(text, m.data)
      local h, body = parse(m.data)
      assert.equals("Tue, 14 Nov 2023 22:13:20 +0000", h.date)
      assert.equals(FROM, h.from)
      assert.equals(TO .. ", dev@example.com", h.to)
      assert.equals(subject, decode_words(h.subject))
      assert.matches("^<%d+%.%x+%.%d+@[%w.-]+>$", h["message-id"])
      assert.equals("1.0", h["mime-version"])
      assert.equals("text/plain; charset=utf-8", h["content-type"])
      assert.equals("quoted-printable", h["content-transfer-encoding"])
      assert.equals("first line\r\n.leading dot\r\nlast = line\r\n", (mime.unqp(body)))
    end)

    it("fails tls when STARTTLS is required (the default) and not offered", function()
      local msg = assert_failure("tls", send(opts(srv.url)))
      assert.matches("STARTTLS", msg)
    end)

    it("sends in the clear with starttls = \"try\" when it is not offered", function()
      assert.is_true(send(opts(srv.url, { starttls = "try" })))
    end)

    it("fails rejected naming the recipient and the server's code", function()
      local before = #srv:messages()
      local msg = assert_failure("rejected",
        send(opts(srv.url, { starttls = false, to = { TO, "nobody@example.com" } })))
      assert.matches("recipient <nobody@example.com> refused: 550 ", msg, 1, true)
      assert.equals(before, #srv:messages())
    end)

    it("keeps the loop running while it waits", function()
      local ticks, result = 0, nil
      core.run(function()
        local sender = core.spawn(function()
          result = { core.smtp_send(opts(srv.url, { starttls = false })) }
        end)
        while sender:status() ~= "done" do
          core.sleep(0.001)
          ticks = ticks + 1
        end
      end)
      assert.is_true(result[1], result[2])
      assert.is_true(ticks >= 1)
    end)
  end)

  it("waits for a slow verdict without stalling the loop (curl would block on it)", function()
    local srv = smtp_fixture.start{ slow_verdict = 0.5 }
    local ticks, result = 0, nil
    local t0 = core.now()
    core.run(function()
      local sender = core.spawn(function()
        result = { core.smtp_send(opts(srv.url, { starttls = false })) }
      end)
      while sender:status() ~= "done" do
        core.sleep(0.01)
        ticks = ticks + 1
      end
    end)
    srv:stop()
    assert.is_true(result[1], result[2])
    assert.is_true(core.now() - t0 >= 0.5)
    -- 0.5 s of 10 ms sleeps: the loop turned all along
    assert.is_true(ticks >= 25, ticks .. " ticks")
  end)

  describe("with AUTH", function()
    local srv
    lazy_setup(function() srv = smtp_fixture.start{ auth = { "alerts", PASSWORD } } end)
    lazy_teardown(function() srv:stop() end)

    it("logs in and delivers", function()
      assert.is_true(send(opts(srv.url, { starttls = false, username = "alerts",
        password = PASSWORD })))
      assert.equals("alerts", srv:messages()[1].login)
    end)

    it("fails auth on a wrong password, without showing it", function()
      local wrong = "wr0ng-" .. PASSWORD
      local msg = assert_failure("auth", send(opts(srv.url, { starttls = false,
        username = "alerts", password = wrong })))
      assert.matches("535", msg)
      assert.is_nil(msg:find(wrong, 1, true))
      assert.is_nil(msg:find(PASSWORD, 1, true))
    end)

    it("fails auth over AUTH LOGIN without showing the password or its base64", function()
      local login = smtp_fixture.start{ auth = { "alerts", PASSWORD }, auth_login_only = true }
      local wrong = "wr0ng-" .. PASSWORD
      local ok, msg, kind = send(opts(login.url, { starttls = false, username = "alerts",
        password = wrong }))
      assert.is_true(send(opts(login.url, { starttls = false, username = "alerts",
        password = PASSWORD })))
      login:stop()
      assert_failure("auth", ok, msg, kind)
      assert.is_nil(msg:find(wrong, 1, true))
      assert.is_nil(msg:find((mime.b64(wrong)), 1, true))
    end)

    it("fails auth without credentials (530)", function()
      local msg = assert_failure("auth", send(opts(srv.url, { starttls = false })))
      assert.matches("530", msg)
    end)
  end)

  describe("with STARTTLS", function()
    local srv
    lazy_setup(function() srv = smtp_fixture.start{ starttls = true } end)
    lazy_teardown(function() srv:stop() end)

    it("delivers over TLS verified with the test CA", function()
      local url = "smtp://localhost:" .. srv.port
      local ok, err = send(opts(url, { ca_file = srv.ca_file }))
      assert.is_true(ok, err)
      assert.is_true(srv:messages()[1].tls)
    end)

    it("fails tls when the certificate cannot be verified", function()
      assert_failure("tls", send(opts("smtp://localhost:" .. srv.port)))
    end)

    it("skips verification with verify = false", function()
      assert.is_true(send(opts("smtp://localhost:" .. srv.port, { verify = false })))
    end)
  end)

  it("delivers over smtps (TLS from the start), whatever starttls says", function()
    local srv = smtp_fixture.start{ tls = true }
    local url = "smtps://localhost:" .. srv.port
    local ok, err = send(opts(url, { ca_file = srv.ca_file, starttls = false }))
    local unverified = { send(opts(url)) }
    local messages = srv:messages()
    srv:stop()
    assert.is_true(ok, err)
    assert.equals(1, #messages)
    assert.is_true(messages[1].tls)
    assert_failure("tls", table.unpack(unverified, 1, 3))
  end)

  it("fails refused on a closed port", function()
    assert_failure("refused", send(opts("smtp://127.0.0.1:" .. closed_port())))
  end)

  it("fails reset when the server closes at once", function()
    local srv = smtp_fixture.start{ close = true }
    local ok, msg, kind = send(opts(srv.url))
    srv:stop()
    assert_failure("reset", ok, msg, kind)
    assert.matches("the server closed the connection before its greeting", msg, 1, true)
  end)

  it("fails timeout after the timeout when the server never answers, the loop running", function()
    local srv = smtp_fixture.start{ hang = true }
    local ticks, result = 0, nil
    local t0 = core.now()
    core.run(function()
      local sender = core.spawn(function()
        result = { core.smtp_send(opts(srv.url, { timeout = 0.5 })) }
      end)
      while sender:status() ~= "done" do
        core.sleep(0.01)
        ticks = ticks + 1
      end
    end)
    local elapsed = core.now() - t0
    srv:stop()
    assert_failure("timeout", table.unpack(result, 1, 3))
    assert.is_true(elapsed >= 0.5 and elapsed < 2, elapsed .. " s")
    assert.is_true(ticks >= 25, ticks .. " ticks")
  end)

  it("times out while every worker thread is busy: the wait is bounded on the loop", function()
    local srv = smtp_fixture.start{ hang = true }
    local threads = tonumber(os.getenv("UV_THREADPOOL_SIZE")) or 4
    local result, elapsed
    core.run(function()
      local busy, started = {}, 0
      for i = 1, threads do
        busy[i] = core.spawn(function()
          started = started + 1
          core.smtp_send(opts(srv.url, { timeout = 30 }))
        end)
      end
      while started < threads do core.sleep(0) end -- they hold the threads first
      local t0 = core.now()
      result = { core.smtp_send(opts(srv.url, { timeout = 0.2 })) }
      elapsed = core.now() - t0
      for _, task in ipairs(busy) do task:cancel() end
    end)
    srv:stop()
    local msg = assert_failure("timeout", table.unpack(result, 1, 3))
    assert.matches("no outcome within the 0.2 s timeout", msg, 1, true)
    assert.is_true(elapsed >= 0.2 and elapsed < 2.5, elapsed .. " s")
  end)

  it("is cancellable: the task ends at once and nothing is left", function()
    local srv = smtp_fixture.start{ hang = true }
    core.run(function()
      local sender = core.spawn(function() core.smtp_send(opts(srv.url, { timeout = 30 })) end)
      core.sleep(0.05)
      assert.is_true(sender:cancel())
      assert.equals("cancelled", sender:status())
    end)
    srv:stop()
    assert.same({ tasks = 0, handles = 0 }, core.stats())
  end)

  it("must be called from a task", function()
    local ok, err = pcall(core.smtp_send, opts("smtp://127.0.0.1:25"))
    assert.is_false(ok)
    assert.matches("core.smtp_send must be called from a task", err, 1, true)
  end)
end)

describe("core.smtp_check", function()
  local function check_error(extra, expected)
    local o = opts("smtp://127.0.0.1:25", extra)
    local ok, err = pcall(core.smtp_check, o)
    assert.is_false(ok, "no error for " .. expected)
    assert.matches(expected, err, 1, true)
    -- smtp_send raises the same, before it needs a task
    local ok2, err2 = pcall(core.smtp_send, o)
    assert.is_false(ok2)
    assert.matches(expected, err2, 1, true)
  end

  it("accepts good options", function()
    assert.is_true(core.smtp_check(opts("smtps://mail.example.com:465", {
      username = "u", password = "p", verify = false, ca_file = "/x", connect_timeout = 1,
      starttls = "try" })))
  end)

  it("raises on bad options, naming them", function()
    check_error({ bogus = 1 }, "smtp send: unknown option 'bogus'")
    check_error({ url = false }, "option 'url' must be a string, got boolean")
    check_error({ url = "http://example.com" }, "unsupported scheme 'http'")
    check_error({ url = "smtp://u:pw@example.com" }, "must not hold credentials")
    check_error({ url = "smtp://exa mple.com" }, "option 'url': bad url")
    check_error({ from = "a@b\r\nRCPT TO:<x@y>" }, "option 'from' must not contain a control")
    check_error({ from = "Name <a@b>" }, "option 'from' ('Name <a@b>') must be a bare address")
    check_error({ from = "" }, "option 'from' must not be empty")
    check_error({ to = {} }, "option 'to' must list at least one address")
    check_error({ to = "ops@example.com" }, "option 'to' must be a list of addresses, got string")
    check_error({ to = { TO, "x@y\n" } }, "option 'to' [2] must not contain a control")
    check_error({ to = { TO, 42 } }, "option 'to' [2] must be an address string, got number")
    check_error({ to = { x = TO } }, "option 'to' must list at least one address")
    check_error({ message = "Subject: x\n\nbody" }, "must use CRLF line endings (a bare LF")
    check_error({ message = "a\0b\r\n" }, "option 'message' must not contain a NUL byte")
    check_error({ message = ("x"):rep(1000) .. "\r\n" }, "has a line longer than 998 bytes")
    check_error({ message = "" }, "option 'message' must not be empty")
    check_error({ starttls = true }, "option 'starttls' must be \"required\", \"try\" or false")
    check_error({ password = "p" }, "option 'password' needs the option 'username'")
    check_error({ verify = "yes" }, "option 'verify' must be a boolean, got string")
    check_error({ timeout = 0 }, "option 'timeout' must be a number of seconds in (0, 86400]")
    check_error({ connect_timeout = "1" }, "option 'connect_timeout' must be a number")
  end)

  it("requires url, from, to and message", function()
    for _, name in ipairs({ "url", "from", "to", "message" }) do
      local o = opts("smtp://127.0.0.1:25")
      o[name] = nil
      local ok, err = pcall(core.smtp_check, o)
      assert.is_false(ok)
      assert.matches("option '" .. name .. "' is required", err, 1, true)
    end
  end)
end)
