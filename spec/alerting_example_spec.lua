-- examples/alerting.lua: it runs with no alert setting, and with a
-- recorder in place of its notifiers it alerts on the local fixture.
local core = require("moonwatch.core")
local mw = require("moonwatch")
local fixture = require("support.fixture")

describe("examples/alerting.lua", function()
  local srv
  before_each(function() srv = fixture.start() end)
  after_each(function()
    core.cancel_all()
    srv:stop()
  end)

  it("has no notifier without an alert setting, and builds all the same", function()
    local c = mw.testing.load("../examples/alerting.lua")()
    assert.same({}, c.notifiers())
    assert.is_table(c.dispatcher())
    assert.same({}, c.alerts():counters())
  end)

  it("builds the webhook and Alertmanager notifiers from their settings", function()
    local c = mw.testing.load("../examples/alerting.lua")()
    local _ <close> = c.config.alerts.webhook.url:override("http://127.0.0.1:1/hook")
    local _ <close> = c.config.alerts.alertmanager.url:override("http://127.0.0.1:2")
    local names = {}
    for i, n in ipairs(c.notifiers()) do names[i] = n.name end
    assert.same({ "webhook", "alertmanager" }, names)
  end)

  it("alerts after failure_threshold failed checks", function()
    local records <close> = mw.log.capture()
    local c = mw.testing.load("../examples/alerting.lua")()
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
end)
