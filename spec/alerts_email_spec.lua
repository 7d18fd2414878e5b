-- The Email notifier against a local SMTP server (Debian's python3-aiosmtpd,
-- spec/fixtures/smtp_server.py): the facts arrive, a refused port is
-- retried by the outbox, bad options name themselves, secrets stay out.
local core = require("moonwatch.core")
local mw = require("moonwatch")
local fixture = require("support.fixture")
local smtp_fixture = require("support.smtp_fixture")

local Email = mw.Alerts.notifiers.Email
local PASSWORD = "pa55-w0rd!"

local function closed_port()
  local s = assert(require("socket").tcp())
  assert(s:bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return port
end

-- The body of a message as text: quoted-printable soft breaks and =XX undone.
local function decoded(data)
  local body = data:match("\r?\n\r?\n(.*)$") or ""
  body = body:gsub("=\r?\n", "")
    :gsub("=(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  return body:gsub("\r\n", "\n")
end

describe("the Email notifier", function()
  local dir
  before_each(function() dir = fixture.tmpdir() end)
  after_each(function()
    core.cancel_all()
    fixture.rmtree(dir)
  end)

  it("sends the down and the up, with their facts, logging in without showing the password",
    function()
      local srv = smtp_fixture.start{ auth = { "moonwatch", PASSWORD }, auth_login_only = false }
      local records <close> = mw.log.capture()
      local secret = dir .. "/password"
      local f = assert(io.open(secret, "w"))
      f:write(PASSWORD, "\n")
      f:close()
      local mail = Email{ name = "mail", url = srv.url, from = "moonwatch@example.com",
        to = "ops@example.com", username = "moonwatch", password_file = secret,
        starttls = false, timeout = 5 }
      local state = mw.State()
      local alerts = mw.Alerts{ state = state, notifiers = { mail } }
      alerts:on_monitor({ request = { url = "https://app.example.com/health" } }, "app")
      state:on_result({}, { monitor = "app", up = false, reason = "status 503, expected 200-299" })
      core.run()
      state:on_result({}, { monitor = "app", up = true })
      core.run()
      alerts:stop()
      local msgs = srv:messages()
      srv:stop()
      assert.equal(2, #msgs)
      assert.equal("moonwatch@example.com", msgs[1].mail_from)
      assert.same({ "ops@example.com" }, msgs[1].rcpt_tos)
      assert.is_truthy(msgs[1].login)
      assert.matches("Subject: %[moonwatch%] app is DOWN: status 503, expected 200%-299",
        msgs[1].data)
      local down = decoded(msgs[1].data)
      assert.matches("Monitor:    app", down, 1, true)
      assert.matches("State:      down", down, 1, true)
      assert.matches("Reason:     status 503, expected 200-299", down, 1, true)
      assert.matches("URL:        https://app.example.com/health", down, 1, true)
      assert.matches("Since:      %d%d%d%d%-%d%d%-%d%dT", down)
      assert.matches("Subject: %[moonwatch%] app is UP again after [%d.]+s down", msgs[2].data)
      local up = decoded(msgs[2].data)
      assert.matches("Down since: %d%d%d%d", up)
      assert.matches("Down for:   [%d.e-]+s", up)
      assert.same({ 2, 0 }, { alerts:counters().mail.sent, alerts:counters().mail.dropped })
      assert.not_matches(PASSWORD, records:text(), 1, true)
    end)

  it("takes subject and body functions", function()
    local srv = smtp_fixture.start{}
    local mail = Email{ url = srv.url, from = "a@example.com", to = { "b@example.com" },
      starttls = false, timeout = 5,
      subject = function(e) return "ALERT " .. e.monitor end,
      body = function(e) return "state=" .. e.state end }
    assert.equal("email", mail.name)
    local ok, err = core.run(function()
      return mail:send{ monitor = "app", state = "down", since = "x", at = "y" }
    end)
    local msgs = srv:messages()
    srv:stop()
    assert.is_true(ok, err)
    assert.matches("Subject: ALERT app", msgs[1].data, 1, true)
    assert.matches("state=down", decoded(msgs[1].data), 1, true)
  end)

  it("a refused port is retried by the outbox, and its password never logged", function()
    local records <close> = mw.log.capture()
    local mail = Email{ name = "mail", url = "smtp://127.0.0.1:" .. closed_port(),
      from = "a@example.com", to = { "b@example.com" }, username = "u", password = PASSWORD,
      starttls = false, timeout = 1 }
    local state = mw.State()
    local alerts = mw.Alerts{ state = state, notifiers = { mail },
      outbox = { backoff_base = 0.02, backoff_max = 0.05, max_age = 0.3 } }
    state:on_result({}, { monitor = "app", up = false, reason = "x" })
    core.run() -- ends once the outbox gives up
    alerts:stop()
    local c = alerts:counters().mail
    assert.is_true(c.retried >= 1, "retried " .. c.retried)
    assert.same({ 0, 1 }, { c.sent, c.dropped_max_age })
    local text = records:text()
    assert.matches("notifier mail failed to deliver the down event of app %(attempt 1.*refused",
      text)
    assert.not_matches(PASSWORD, text, 1, true)
  end)

  it("names the option at fault when it is built", function()
    local base = { url = "smtp://127.0.0.1:25", from = "a@example.com", to = "b@example.com" }
    local function with(extra)
      local o = {}
      for k, v in pairs(base) do o[k] = v end
      for k, v in pairs(extra) do o[k] = v end
      return o
    end
    local cases = {
      { with{ url = "http://mail.example.com" }, "Email notifier email: smtp send: option 'url': "
        .. "unsupported scheme 'http' in 'http://mail.example.com' (use smtp or smtps)" },
      { with{ to = false }, "Email notifier email: smtp send: option 'to'" },
      { with{ from = "not an address" }, "Email notifier email: smtp send: option 'from'" },
      { with{ starttls = "always" }, "Email notifier email: smtp send: option 'starttls' must be "
        .. "\"required\", \"try\" or false, got always" },
      { with{ name = "m", colour = "red" }, "Email notifier m: unknown option colour (known: " },
      { with{ subject = "down!" },
        "Email notifier email: subject must be a function(event) returning a string" },
      { with{ password = "a", password_env = "B" },
        "Email notifier email: set at most one of password, password_file and password_env" },
      { with{ password_env = "MOONWATCH_SPEC_NO_SUCH_VARIABLE" }, "Email notifier email: the "
        .. "environment variable MOONWATCH_SPEC_NO_SUCH_VARIABLE (password_env) is not set" },
      { with{ password_file = dir .. "/missing" },
        "Email notifier email: cannot read password_file: " },
      { with{ name = "" }, "Email: name must be a non-empty string, got " },
    }
    for _, case in ipairs(cases) do
      local ok, err = pcall(Email, case[1])
      assert.is_false(ok)
      assert.equal(case[2], tostring(err):sub(1, #case[2]))
    end
    assert.has_error(function() Email("x") end, "Email: expected a table of options")
    local ok, err = pcall(Email, with{ password = PASSWORD, username = "u", timeout = -1 })
    assert.is_false(ok)
    assert.not_matches(PASSWORD, err, 1, true)
  end)
end)
