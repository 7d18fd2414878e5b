-- examples/alerting.lua: it runs with no alert setting, and with a
-- recorder in place of its notifiers it alerts on the local fixture.
local core = require("moonwatch.core")
local mw = require("moonwatch")
local fixture = require("support.fixture")

describe("examples/alerting.lua", function()
  local srv, dir, overrides
  local load = mw.testing.load("../examples/alerting.lua")
  -- the example with its store in a temporary directory, not moonwatch.db here
  local function example()
    local c = load()
    overrides[#overrides + 1] = c.config.alerts.store:override(dir .. "/alerts.db")
    return c
  end
  before_each(function()
    srv = fixture.start()
    dir = fixture.tmpdir()
    overrides = {}
  end)
  after_each(function()
    for i = #overrides, 1, -1 do overrides[i]:remove() end
    core.cancel_all()
    srv:stop()
    fixture.rmtree(dir)
  end)

  it("has no notifier without an alert setting, and builds all the same", function()
    local c <close> = example()
    assert.same({}, c.notifiers())
    assert.is_table(c.dispatcher())
    assert.same({}, c.alerts():counters())
  end)

  it("builds the webhook and Alertmanager notifiers from their settings", function()
    local c <close> = example()
    local _ <close> = c.config.alerts.webhook.url:override("http://127.0.0.1:1/hook")
    local _ <close> = c.config.alerts.alertmanager.url:override("http://127.0.0.1:2")
    local names = {}
    for i, n in ipairs(c.notifiers()) do names[i] = n.name end
    assert.same({ "webhook", "alertmanager" }, names)
  end)

  it("alerts after failure_threshold failed checks", function()
    local records <close> = mw.log.capture()
    local c <close> = example()
    local _ <close> = c.config.monitors.example.url:override(srv:url("/status/500"))
    local _ <close> = c.config.monitors.example.check_every:override(0.05)
    local d
    local rec = mw.Alerts.notifiers.Recorder{ on_send = function() d:stop() end }
    local _ <close> = c.notifiers:override({ rec })
    d = c.dispatcher()
    d:start()
    core.run()
    assert.same({ "example down" }, rec:summary())
    assert.equal("status 500, expected 200-299", rec.events[1].reason)
    assert.equal(srv:url("/status/500"), rec.events[1].url)
    assert.matches("example is DOWN after 3 failed checks", records:text())
  end)

  it("keeps the alerts in the SQLite file alerts.store, moonwatch.db by default", function()
    assert.equal("moonwatch.db", load().config.alerts.store())
    local c <close> = example()
    local store = c.alerts().store
    assert.equal(c.alerts_store(), store)
    assert.equal(dir .. "/alerts.db", store.path)
    assert.is_not_nil(store.db)
    assert.is_not_nil(io.open(dir .. "/alerts.db"))
  end)

  it("keeps them in memory with alerts.store = \"\"", function()
    local c <close> = load()
    local _ <close> = c.config.alerts.store:override("")
    assert.equal(getmetatable(mw.Alerts.MemoryStore.new()), getmetatable(c.alerts().store))
  end)

  it("builds the e-mail notifier from alerts.email.*", function()
    local c <close> = example()
    local _ <close> = c.config.alerts.email.url:override("smtp://127.0.0.1:2525")
    local _ <close> = c.config.alerts.email.from:override("moonwatch@example.com")
    local _ <close> = c.config.alerts.email.to:override("ops@example.com, dev@example.com")
    local _ <close> = c.config.alerts.email.username:override("moonwatch")
    local _ <close> = c.config.alerts.email.password_env:override("HOME")
    local _ <close> = c.config.alerts.email.starttls:override("false")
    local list = c.notifiers()
    assert.equal(1, #list)
    local mail = list[1]
    assert.equal("email", mail.name)
    assert.same({ "ops@example.com", "dev@example.com" }, mail.opts.to)
    assert.equal(os.getenv("HOME"), mail.opts.password)
    assert.is_false(mail.opts.starttls)
  end)

  it("names the e-mail setting at fault", function()
    local c <close> = example()
    local _ <close> = c.config.alerts.email.url:override("smtp://127.0.0.1:2525")
    local _ <close> = c.config.alerts.email.from:override("moonwatch@example.com")
    local ok, err = pcall(c.notifiers)
    assert.is_false(ok)
    assert.matches("Email notifier email: smtp send: option 'to'", tostring(err), 1, true)
  end)
end)
