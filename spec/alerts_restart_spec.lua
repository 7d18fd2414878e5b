-- A restart in the middle of an incident, with the real daemon
-- (examples/alerting.lua), a real SQLite file and the fixture's webhook
-- receiver: no second "down", no lost resolve. The waits are bounded polls
-- of the fixture and of the file (other processes).
local core = require("moonwatch.core")
local cjson = require("cjson")
local daemon = require("support.daemon")
local fixture = require("support.fixture")

local EXAMPLE = "examples/alerting.lua"

local function get(url)
  return core.run(function() return assert(core.http_request{ url = url, timeout = 2 }) end)
end

-- The bodies the receiver recorded (decoded) and every POST it counted.
local function received(srv, hook)
  local r = cjson.decode(get(srv:url("/hook/" .. hook .. "/received")).body)
  local docs = {}
  for i, b in ipairs(r.bodies) do docs[i] = cjson.decode(b) end
  return docs, r.attempts
end

local function states_of(docs)
  local out = {}
  for i, d in ipairs(docs) do out[i] = d.monitor .. " " .. d.state end
  return out
end

-- One value of the file the daemon writes (SQLite's locks share it).
local function scalar(path, sql)
  return core.run(function()
    local db = assert(core.store_open(path))
    local rows = assert(db:query(sql))
    db:close()
    local row = rows[1]
    return row and row.v
  end)
end

local function await(what, seconds, probe)
  local v = daemon.wait_for(seconds, probe)
  assert(v, "timed out waiting for " .. what)
  return v
end

describe("alerts across a restart (real daemon, real SQLite file)", function()
  local srv, group, dir, db
  before_each(function()
    srv = fixture.start()
    group = daemon.group()
    dir = fixture.tmpdir()
    db = dir .. "/alerts.db"
  end)
  after_each(function()
    group:cleanup()
    srv:stop()
    fixture.rmtree(dir)
  end)

  local function run(status)
    return group:start({ EXAMPLE,
      "--set", "monitors.example.url=" .. srv:url("/status/" .. status),
      "--set", "monitors.example.check_every=0.1",
      "--set", "monitors.example.timeout=2",
      "--set", "alerts.webhook.url=" .. srv:url("/hook/r"),
      "--set", "alerts.store=" .. db,
      "--set", "alerts.failure_threshold=2",
      "--set", "alerts.success_threshold=1" })
  end

  local function stop(d)
    d:signal("TERM")
    assert.equal(0, d:wait_exit(10), d:stderr())
  end

  local function outbox_rows() return scalar(db, "SELECT count(*) AS v FROM outbox") end
  local function incident()
    return scalar(db, "SELECT count(*) AS v FROM alert_incident WHERE monitor = 'example'")
  end

  -- The first run: DOWN, its "down" delivered and out of the outbox on disk.
  local function first_down()
    local d = run(500)
    await("the down delivery", 10, function() return #received(srv, "r") == 1 end)
    await("the delivery on disk", 10, function()
      return outbox_rows() == 0 and incident() == 1
    end)
    stop(d)
    return d
  end

  it("sends no second down after a restart while DOWN, then exactly one up", function()
    first_down()
    -- still down after the restart: the change to DOWN is written, nothing sent
    local d = run(500)
    await("the change to DOWN after the restart", 10, function()
      return d:stdout():find("example is DOWN", 1, true)
    end)
    await("the state on disk", 10, function()
      return (scalar(db, "SELECT updated AS v FROM monitor_state WHERE name = 'example'") or 0)
        >= d.started - 1 and outbox_rows() == 0
    end)
    local docs, attempts = received(srv, "r")
    assert.same({ "example down" }, states_of(docs))
    assert.equal(1, attempts)
    stop(d)
    -- up on the next restart: the resolve of the incident told about before
    d = run(200)
    await("the up delivery", 10, function() return #received(srv, "r") == 2 end)
    await("the resolve on disk", 10, function()
      return outbox_rows() == 0 and incident() == 0
    end)
    stop(d)
    docs = received(srv, "r")
    assert.same({ "example down", "example up" }, states_of(docs))
    assert.equal(docs[1].since, docs[2].since) -- the incident's start, kept across restarts
    assert.is_true(docs[2].down_for_s > 0)
    assert.equal("status 500, expected 200-299", docs[1].reason)
  end)

  it("delivers after a restart the resolve still in the outbox when it stopped", function()
    first_down()
    get(srv:url("/hook/r/mode?set=fail&n=1000"))
    local d = run(200)
    await("a failed attempt of the resolve", 10, function()
      local _, attempts = received(srv, "r")
      return attempts >= 2
    end)
    await("the resolve waiting on disk", 10, function()
      return outbox_rows() == 1 and incident() == 0
    end)
    stop(d)
    assert.same({ "example down" }, states_of(received(srv, "r")))
    get(srv:url("/hook/r/mode?set=ok"))
    d = run(200)
    await("the up delivery", 10, function() return #received(srv, "r") == 2 end)
    await("an empty outbox on disk", 10, function() return outbox_rows() == 0 end)
    stop(d)
    local docs = received(srv, "r")
    assert.same({ "example down", "example up" }, states_of(docs))
    assert.is_true(docs[2].down_for_s > 0)
    -- the resolve made before the restart, with its id
    assert.equal("up " .. docs[1].since .. " example", docs[2].id)
  end)
end)
