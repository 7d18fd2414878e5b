-- The notifiers' documents, secrets and Alertmanager's re-sends, with a stub
-- HTTP client (no network) and a manual clock.
local core = require("moonwatch.core")
local cjson = require("cjson")
local fixture = require("support.fixture")
local Clock = require("moonwatch.alerts.clock")
local notifiers = require("moonwatch.alerts.notifiers")

local function stub_client(status)
  local sent = {}
  return { sent = sent, request = function(_, opts)
    sent[#sent + 1] = opts
    if status == "refused" then
      return nil, "connect: Failed to connect to " .. opts.url .. ": refused", "connect"
    end
    return { status = status or 200 }
  end }
end

local down = { monitor = "app", state = "down", reason = "status 500", url = "http://app/",
               since = "2026-01-02T03:04:05Z", at = "2026-01-02T03:04:05Z" }
local up = { monitor = "app", state = "up", since = "2026-01-02T03:04:05Z",
             at = "2026-01-02T03:06:18Z", down_for_s = 133, url = "http://app/" }

describe("notifiers", function()
  after_each(function() core.cancel_all() end)

  it("webhook POSTs the event as JSON, with its headers", function()
    local http = stub_client()
    local n = notifiers.Webhook{ name = "ops", url = "http://127.0.0.1:1/h", http_client = http,
                                 headers = { Authorization = "Bearer t" } }
    assert.is_true(n:send(down))
    local opts = http.sent[1]
    assert.equal("POST", opts.method)
    assert.equal("http://127.0.0.1:1/h", opts.url)
    assert.same(down, cjson.decode(opts.body))
    assert.is_truthy(table.concat(opts.headers, "\n"):find("Authorization: Bearer t", 1, true))
    assert.is_truthy(table.concat(opts.headers, "\n"):find("Content-Type: application/json", 1,
      true))
  end)

  it("webhook's body function shapes the document", function()
    local http = stub_client()
    local n = notifiers.Webhook{ url = "http://h/", http_client = http,
      body = function(e) return { text = e.monitor .. " " .. e.state } end }
    n:send(up)
    assert.same({ text = "app up" }, cjson.decode(http.sent[1].body))
  end)

  it("a 500 is a failure; a refusal's message does not carry the URL", function()
    local n = notifiers.Webhook{ name = "ops", url = "http://h/secret-token",
                                 http_client = stub_client(500) }
    assert.same({ nil, "status 500" }, { n:send(down) })
    local r = notifiers.Webhook{ name = "ops", url = "http://h/secret-token",
                                 http_client = stub_client("refused") }
    local ok, err = r:send(down)
    assert.is_nil(ok)
    assert.equal("connect: Failed to connect to <url of ops>: refused", err)
  end)

  it("Slack gets text and blocks", function()
    local http = stub_client()
    notifiers.Slack{ url = "http://h/", http_client = http }:send(down)
    local doc = cjson.decode(http.sent[1].body)
    assert.equal("app is DOWN: status 500", doc.text)
    assert.equal("section", doc.blocks[1].type)
    assert.matches("URL: http://app/", doc.blocks[1].text.text, 1, true)
  end)

  it("secrets come from a file or the environment, and their absence is said clearly", function()
    local dir = fixture.tmpdir()
    local f = assert(io.open(dir .. "/url", "w"))
    f:write("http://h/from-file\n")
    f:close()
    assert.equal("http://h/from-file",
      notifiers.Webhook{ url_file = dir .. "/url", http_client = stub_client() }.url)
    fixture.rmtree(dir)
    assert.has_error(function()
      notifiers.Webhook{ name = "ops", url_env = "MOONWATCH_NO_SUCH_VARIABLE" }
    end, "Webhook notifier ops: the environment variable MOONWATCH_NO_SUCH_VARIABLE (url_env) "
      .. "is not set")
    assert.has_error(function() notifiers.Webhook{ name = "ops" } end,
      "Webhook notifier ops: set exactly one of url, url_file and url_env")
    assert.has_error(function() notifiers.Webhook{ name = "ops", url = "ftp://x" } end,
      "Webhook notifier ops: the url must be an http:// or https:// URL")
    assert.has_error(function() notifiers.Webhook{ name = "ops", url = "http://x", bdy = 1 } end,
      "Webhook notifier ops: unknown option bdy (known: body, headers, http_client, name, "
      .. "timeout, url, url_env, url_file)")
  end)

  it("Alertmanager posts to every URL, re-sends firing alerts and, for a while, resolves",
    function()
      local clock = Clock.manual(1767000000)
      local http = stub_client()
      local am = notifiers.Alertmanager{ name = "am", http_client = http,
        urls = { "http://am1:9093", "http://am2:9093/" }, labels = { team = "web" } }
      am:start{ clock = clock, resend = 60 }
      assert.is_true(am:send(down))
      assert.same({ "http://am1:9093/api/v2/alerts", "http://am2:9093/api/v2/alerts" },
        { http.sent[1].url, http.sent[2].url })
      local a = cjson.decode(http.sent[1].body)[1]
      assert.same({ alertname = "MonitorDown", monitor = "app", team = "web" }, a.labels)
      assert.equal("app is DOWN: status 500", a.annotations.summary)
      assert.equal("status 500", a.annotations.description)
      assert.equal(down.since, a.startsAt)
      assert.equal(notifiers.rfc3339(clock:now() + 240), a.endsAt)
      clock:advance(60)
      core.run()
      assert.equal(4, #http.sent) -- the re-send, to both
      assert.equal(notifiers.rfc3339(clock:now() + 240), cjson.decode(http.sent[3].body)[1].endsAt)
      am:send(up)
      assert.equal(up.at, cjson.decode(http.sent[5].body)[1].endsAt)
      for _ = 1, 4 do clock:advance(60); core.run() end
      local n = #http.sent
      assert.equal(up.at, cjson.decode(http.sent[n].body)[1].endsAt) -- the resolve, again
      clock:advance(60); core.run()
      clock:advance(60); core.run()
      assert.equal(n, #http.sent) -- 4 x resend after the resolve: forgotten
      am:stop()
    end)

  it("says clearly what is wrong with an Alertmanager's options", function()
    assert.has_error(function() notifiers.Alertmanager{ name = "am", urls = {} } end,
      "Alertmanager notifier am: urls must be a non-empty list of URLs")
    assert.has_error(function()
      notifiers.Alertmanager{ name = "am", url = "http://am", labels = "team" }
    end, "Alertmanager notifier am: labels must be a table of label = value")
    assert.has_error(function()
      notifiers.Alertmanager{ name = "am", urls = { "http://am1", { url_env = "MW_NO_SUCH" } } }
    end, "Alertmanager notifier am urls[2]: the environment variable MW_NO_SUCH (url_env) "
      .. "is not set")
    assert.has_error(function() notifiers.Webhook{ name = "", url = "http://x" } end,
      "Webhook: name must be a non-empty string, got ")
    assert.has_error(function() notifiers.Webhook{ url = "http://x", body = "{}" } end,
      "Webhook notifier webhook: body must be a function(event) returning a table or a string")
  end)

  it("Alertmanager succeeds when one of its URLs takes the alert", function()
    local calls = 0
    local http = { request = function()
      calls = calls + 1
      if calls == 1 then return nil, "connect: refused" end
      return { status = 200 }
    end }
    local am = notifiers.Alertmanager{ urls = { "http://am1", "http://am2" }, http_client = http }
    assert.is_true(am:send(down))
  end)
end)
