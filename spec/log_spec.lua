-- moonwatch.log: fields of records (static per logger and per record),
-- what captures see of them, and how the formats write them.
local cjson = require("cjson")
local fixture = require("support.fixture")
local log = require("moonwatch.log")

describe("log fields", function()
  local dir, path, sink

  -- Records go to a file in this format; returns the lines written so far.
  local function setup(format, level)
    sink = log.setup{ format = format, file = path, level = level or "INFO" }
  end
  local function lines()
    assert.is_true(sink:flush())
    local out = {}
    for line in (fixture.read_file(path) or ""):gmatch("[^\n]+") do out[#out + 1] = line end
    return out
  end

  before_each(function()
    dir = fixture.tmpdir()
    path = dir .. "/records.log"
  end)
  after_each(function()
    log.setup{ level = "INFO" } -- stdout again, as the other specs expect
    fixture.rmtree(dir)
  end)

  describe("log.get", function()
    it("keeps one logger per name without fields, a new one with them", function()
      assert.equal(log.get("HttpMonitor"), log.get("HttpMonitor"))
      assert.equal(log.get("HttpMonitor"), log.get("HttpMonitor", {}))
      local a = log.get("HttpMonitor", { monitor = "a" })
      assert.not_equal(log.get("HttpMonitor"), a)
      assert.not_equal(a, log.get("HttpMonitor", { monitor = "a" }))
      assert.equal("HttpMonitor", a.name)
    end)

    it("copies the fields: changing the table later changes no record", function()
      local fields = { monitor = "example", time = { dns = 1 } }
      local lg = log.get("HttpMonitor", fields)
      fields.monitor, fields.time.dns, fields.extra = "other", 2, true
      local cap <close> = log.capture()
      lg:info("Check")
      assert.same({ monitor = "example", time = { dns = 1 } }, cap[1].fields)
    end)

    it("refuses fields a record cannot carry, naming the caller's line", function()
      local function err(fields)
        local ok, e = pcall(log.get, "X", fields)
        assert.is_false(ok)
        return e
      end
      assert.equal("log.get: fields must be a table, got string", err("monitor"))
      assert.equal("log.get: field names must be strings, got number", err({ "a" }))
      assert.equal("log.get: field 'f' must be a string, number, boolean or table of numbers, "
        .. "got function", err({ f = print }))
      assert.matches("^log.get: field 't' .*, got a table with a string key and a table value$",
                     err({ t = { deep = {} } }))
      local ok, e = pcall(function()
        local lg = log.get("X", { f = print }) -- not a tail call: that would hide the line
        return lg
      end)
      assert.is_false(ok)
      assert.matches("^spec/log_spec.lua:%d+: log.get: ", e)
    end)
  end)

  describe("log.capture", function()
    it("exposes the logger's fields and the record's over them", function()
      local lg = log.get("HttpMonitor", { monitor = "example", url = "http://x/" })
      local cap <close> = log.capture()
      lg:info("Check")
      lg:warning_with({ status = 500, up = false, url = "http://y/" }, "Check failed: %s", "500")
      lg:log_with("ERROR", { reason = "boom" }, "Broken")
      lg:info_with(nil, "no record fields")
      log.get("Plain"):info("none")
      log.get("Plain"):critical_with({ status = 1 }, "with")
      assert.equal(6, #cap)
      assert.same({ monitor = "example", url = "http://x/" }, cap[1].fields)
      assert.equal(500, cap[2].fields.status)
      assert.same({ monitor = "example", url = "http://y/", status = 500, up = false },
                  cap[2].fields)
      assert.same({ "WARNING", "Check failed: 500" }, { cap[2].level, cap[2].message })
      assert.same({ "ERROR", "boom" }, { cap[3].level, cap[3].fields.reason })
      assert.same({ monitor = "example", url = "http://x/" }, cap[4].fields)
      assert.same({}, cap[5].fields)
      assert.same({ "CRITICAL", "Plain", { status = 1 } },
                  { cap[6].level, cap[6].name, cap[6].fields })
    end)

    it("keeps the text the record would have been written as", function()
      setup("[%(monitor)s] [%(name)s]: %(message)s")
      local cap <close> = log.capture()
      log.get("HttpMonitor", { monitor = "example" }):info_with({ status = 200 }, "Check")
      log.get("Dispatcher"):info("Starting up")
      assert.equal("[example] [HttpMonitor]: Check\n[-] [Dispatcher]: Starting up\n", cap:text())
      assert.same({}, lines()) -- captured, not written
    end)
  end)

  describe("JSON lines", function()
    it("carry the fields beside the message, each as its JSON type", function()
      setup("json")
      local lg = log.get("HttpMonitor", { monitor = "example" })
      lg:warning_with({
        url = "http://x/?a=\"1\"", method = "GET", status = 500, size = 12, duration = 0.25,
        up = false, reason = "HTTP 500\n\27[2J", failure_kind = "status",
        timings = { dns = 0.001, connect = 0.002, total = 0.01 },
      }, "Check failed")
      lg:info("Check")
      log.get("Dispatcher"):info("Starting up")
      local got = lines()
      assert.equal(3, #got)
      local rec = cjson.decode(got[1])
      assert.same({
        time = rec.time, level = "WARNING", logger = "HttpMonitor", message = "Check failed",
        monitor = "example", url = "http://x/?a=\"1\"", method = "GET", status = 500, size = 12,
        duration = 0.25, up = false, reason = "HTTP 500\n\27[2J", failure_kind = "status",
        timings = { dns = 0.001, connect = 0.002, total = 0.01 },
      }, rec)
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT", rec.time)
      -- integers have no point (cjson reads every number as a float)
      assert.truthy(got[1]:find('"status":500,', 1, true))
      assert.truthy(got[1]:find('"message":"Check failed","monitor":"example",', 1, true))
      assert.same({ "Check", "example" }, { cjson.decode(got[2]).message,
                                            cjson.decode(got[2]).monitor })
      assert.is_nil(cjson.decode(got[3]).monitor)
    end)

    it("rename a field named like a standard member instead of repeating it", function()
      setup("json")
      log.get("X", { message = "static" }):info_with({ time = { total = 1 }, level = 5 }, "real")
      local line = lines()[1]
      local rec = cjson.decode(line)
      assert.same({ "real", "static", "INFO", 5 },
                  { rec.message, rec.field_message, rec.level, rec.field_level })
      assert.same({ total = 1 }, rec.field_time)
      assert.is_string(rec.time)
      local _, members = line:gsub('"time":', "")
      assert.equal(1, members)
    end)

    it("keep the arguments as they are, and text formats escape their line breaks", function()
      setup("json")
      local lg = log.get("HttpMonitor", { monitor = "example" })
      lg:info_with({ status = 1 }, "got %s", "a\nb")
      assert.equal("got a\nb", cjson.decode(lines()[1]).message)
      setup("%(monitor)s %(message)s")
      lg:info_with({ status = 1 }, "got %s %s", "a\nb", log.lines("trace\nback"))
      local got = lines()
      assert.same({ "example got a\\nb trace", "    back" }, { got[2], got[3] })
    end)
  end)

  describe("levels", function()
    it("filter records before their fields are read or formatted", function()
      setup("json", "WARNING")
      local lg = log.get("HttpMonitor", { monitor = "example" })
      -- a field the logger would refuse: not looked at when filtered out
      assert.is_false(lg:info_with({ bad = print }, "quiet %s", {}))
      assert.is_false(lg:log_with("DEBUG", { status = 1 }, "quiet"))
      assert.is_true(lg:warning_with({ status = 2 }, "loud"))
      local got = lines()
      assert.equal(1, #got)
      assert.equal(2, cjson.decode(got[1]).status)
    end)

    it("raise on a field a record cannot carry", function()
      setup("json")
      local lg = log.get("HttpMonitor")
      assert.has_error(function() lg:warning_with({ f = print }, "x") end,
        "logger: field 'f' must be a string, number, boolean or table of numbers, got function")
      assert.has_error(function() lg:info_with("status", "x") end)
    end)
  end)
end)
