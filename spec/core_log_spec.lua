-- moonwatch.core: the logger through Lua (the C unit tests cover the
-- formatter in depth).
local cjson = require("cjson")
local core = require("moonwatch.core")
local fixture = require("support.fixture")

local function read_all(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

describe("core logger", function()
  local dir

  before_each(function() dir = fixture.tmpdir() end)
  after_each(function()
    fixture.rmtree(dir)
    assert.same({ tasks = 0, handles = 0 }, core.stats())
  end)

  it("exposes the level numbers", function()
    assert.same({ DEBUG = 10, INFO = 20, WARNING = 30, ERROR = 40, CRITICAL = 50 },
                core.log_levels)
  end)

  it("writes records at or above its level to a file, one line each", function()
    local path = dir .. "/app.log"
    local lg = core.logger{ level = "INFO", format = "%(levelname)s|%(name)s|%(message)s",
                            file = path }
    assert.is_false(lg:debug("app", "not written"))
    assert.is_true(lg:info("app", "started"))
    assert.is_true(lg:warning("db", "slow query"))
    assert.is_true(lg:log("ERROR", "db", "gone"))
    assert.is_true(lg:log(50, "app", "fatal"))
    assert.is_true(lg:critical(nil, "no name"))
    assert.equals(table.concat({
      "INFO|app|started", "WARNING|db|slow query", "ERROR|db|gone", "CRITICAL|app|fatal",
      "CRITICAL|root|no name", "",
    }, "\n"), read_all(path))
  end)

  it("has a level that can be read, tested and changed", function()
    local lg = core.logger{ level = "WARNING", file = dir .. "/x.log" }
    assert.same({ "WARNING", 30 }, { lg:level() })
    assert.is_false(lg:enabled("INFO"))
    assert.is_true(lg:enabled("error"))
    lg:set_level("DEBUG")
    assert.is_true(lg:enabled(10))
    assert.is_true(lg:debug("n", "now written"))
    assert.matches("now written", read_all(dir .. "/x.log"), 1, true)
  end)

  it("formats the default, %-style and JSON records", function()
    local lg = core.logger{}
    assert.matches("^%[%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d,000%] %[WARNING%] %[disk%]: full\n$",
                   lg:format("WARNING", "disk", "full", 0))
    local custom = core.logger{ format = "%(levelno)d %(name)s %(message)s" }
    assert.equals("40 n hello\n", custom:format("ERROR", "n", "hello", 1e9))
    local json = core.logger{ format = "json" }
    local rec = json:format("INFO", "http", 'said "hi"\n', 0)
    assert.matches('^{"time":"[^"]+","level":"INFO","logger":"http",'
                   .. '"message":"said \\"hi\\"\\n"}\n$', rec)
  end)

  it("prints created with 6 decimals and msecs as whole milliseconds", function()
    local lg = core.logger{ format = "%(created)s|%(msecs)s|%(msecs)03d|%(levelname)-8s|%(name)4s" }
    assert.equals("1000000000.005000|5|005|INFO    |   n\n",
                  lg:format("INFO", "n", "m", 1e9 + 0.005))
  end)

  it("refuses a format it does not support, naming the directive", function()
    local ok, err = pcall(core.logger, { format = "%(message)s %(name)d" })
    assert.is_false(ok)
    assert.equals("log.format: '%(name)d' at position 12 is not supported (d is for the "
      .. "integer keys levelno, msecs and process); use %(key)s, %(key)-8s, %(key)8s, "
      .. "%(msecs)03d or %%", err)
  end)

  it("formats are not filtered by the level", function()
    local lg = core.logger{ level = "CRITICAL", format = "%(message)s" }
    assert.equals("quiet\n", lg:format("DEBUG", "n", "quiet"))
  end)

  describe("fields", function()
    local json
    before_each(function() json = core.logger{ format = "json" } end)

    local function record(...)
      return cjson.decode(json:format("INFO", "n", "m", 0, ...))
    end

    it("are JSON members after the standard ones, each type as JSON has it", function()
      local rec = record({ status = 500, up = false, ok = true, duration = 0.25, size = 0,
                           reason = 'said "no"\n\27[2J', whole = 2.0,
                           time = { dns = 0.001, connect = 0.002, total = 0.01 } })
      assert.equal(500, rec.status) -- cjson makes every number a float: see the next test
      assert.is_false(rec.up)
      assert.is_true(rec.ok)
      assert.equal(0.25, rec.duration)
      assert.equal('said "no"\n\27[2J', rec.reason)
      assert.equal(2.0, rec.whole)
      -- "time" is the record's own member: the field is renamed, not repeated
      assert.matches("^%d%d%d%d%-", rec.time)
      assert.same({ dns = 0.001, connect = 0.002, total = 0.01 }, rec.field_time)
      assert.equal("m", rec.message)
    end)

    it("are written in name order, integers without a point, floats with one", function()
      local line = json:format("INFO", "n", "m", 0, { b = 1, a = "x", c = 1.0, d = 0.1 + 0.2 })
      assert.equal('"logger":"n","message":"m","a":"x","b":1,"c":1.0,"d":0.30000000000000004}\n',
                   line:match('"logger".*'))
    end)

    it("may be many, and stay in name order", function()
      local many, nums, want = {}, {}, {}
      for i = 1, 40 do
        local k = ("f%02d"):format(i)
        many[k], nums[k] = i, i + 0.5
        want[#want + 1] = ('"%s":%d'):format(k, i)
      end
      many.z = nums
      local line = json:format("INFO", "n", "m", 0, many, { a = true })
      local t = {}
      for k = 1, 40 do t[k] = ('"f%02d":%d.5'):format(k, k) end
      assert.equal('"message":"m","a":true,' .. table.concat(want, ",") .. ',"z":{'
                   .. table.concat(t, ",") .. "}}\n", line:match('"message".*'))
      assert.same(nums, cjson.decode(line).z)
    end)

    it("write null for NaN and infinities", function()
      local rec = record({ nan = 0 / 0, inf = math.huge, t = { x = -math.huge, y = 1 } })
      assert.equal(cjson.null, rec.nan)
      assert.equal(cjson.null, rec.inf)
      assert.same({ x = cjson.null, y = 1 }, rec.t)
    end)

    it("of the record hide the logger's of the same name", function()
      local rec = record({ status = 500, monitor = "other" }, { monitor = "example", url = "u" })
      assert.same({ "other", "u", 500 }, { rec.monitor, rec.url, rec.status })
      -- the logger's first: its monitor leads the line
      local line = json:format("INFO", "n", "m", 0, { a = 1 }, { monitor = "example" })
      assert.matches('"message":"m","monitor":"example","a":1}\n$', line)
    end)

    it("escape names and values", function()
      local rec = record({ ['k"\n\1'] = "v\0w\255" })
      assert.equal("v\0w\u{FFFD}", rec['k"\n\1'])
    end)

    it("are written by lg:log and its shortcuts", function()
      local path = dir .. "/f.log"
      local lg = core.logger{ format = "json", file = path }
      assert.is_true(lg:log("INFO", "n", "one", { i = 1 }))
      assert.is_true(lg:warning("n", "two", nil, { monitor = "example" }))
      assert.is_true(lg:info("n", "three"))
      local lines = {}
      for line in read_all(path):gmatch("[^\n]+") do lines[#lines + 1] = cjson.decode(line) end
      assert.same({ 1, "example" }, { lines[1].i, lines[2].monitor })
      assert.is_nil(lines[3].i)
    end)

    it("are told from a name or message given as a table, converted to text", function()
      local t = setmetatable({}, { __tostring = function() return "T" end })
      local lg = core.logger{ format = "%(name)s %(message)s %(monitor)s", file = dir .. "/t.log" }
      assert.equal("T T -\n", lg:format("INFO", t, t, 0))
      assert.equal("T T -\n", lg:format("INFO", t, t))
      assert.is_true(lg:info(t, t))
      assert.is_true(lg:log("INFO", t, t, { monitor = "m" }))
      assert.equal("T T -\nT T m\n", read_all(dir .. "/t.log"))
    end)

    it("are not read when the record is filtered out", function()
      local lg = core.logger{ level = "ERROR", file = dir .. "/q.log" }
      assert.is_false(lg:info("n", "m", { bad = print }))
    end)

    it("are read by lg:log only as far as the format writes them", function()
      -- a text format without %(monitor)s writes none, one with it only that
      -- one; lg:format (what captures use) reads them all
      local plain = core.logger{ format = "%(message)s", file = dir .. "/p.log" }
      assert.is_true(plain:info("n", "a", { bad = print }, { monitor = "m" }))
      local mon = core.logger{ format = "%(monitor)s %(message)s", file = dir .. "/p.log" }
      assert.is_true(mon:info("n", "b", { bad = print }, { monitor = "m" }))
      assert.is_true(mon:info("n", "c", { monitor = "own", bad = print }, { monitor = "m" }))
      assert.is_true(mon:info("n", "d", nil, { monitor = { x = 1 } }))
      assert.equal("a\nm b\nown c\n- d\n", read_all(dir .. "/p.log"))
      assert.has_error(function() mon:format("INFO", "n", "e", 0, { bad = print }) end)
      local lg = core.logger{ format = "json", file = dir .. "/j.log" }
      assert.has_error(function() lg:info("n", "f", { bad = print }) end)
    end)

    it("show in text formats only as %(monitor)s, - without it", function()
      local lg = core.logger{ format = "[%(monitor)s|%(monitor)-8s|%(monitor)8s] %(message)s" }
      assert.equal("[example|example | example] m\n",
                   lg:format("INFO", "n", "m", 0, { status = 500 }, { monitor = "example" }))
      assert.equal("[-|-       |       -] m\n", lg:format("INFO", "n", "m", 0))
      assert.equal("[-|-       |       -] m\n", lg:format("INFO", "n", "m", 0, { status = 1 }))
      assert.equal("[a\\x1bb|a\\x1bb  |  a\\x1bb] m\n",
                   lg:format("INFO", "n", "m", 0, { monitor = "a\27b" }))
    end)

    it("raise on what a field cannot be", function()
      local lg = core.logger{ file = dir .. "/e.log" }
      local function err(...)
        local ok, e = pcall(lg.format, lg, "INFO", "n", "m", 0, ...)
        assert.is_false(ok)
        return e
      end
      assert.matches("logger: fields must be a table, got string", err("status=1"))
      assert.matches("logger: fields must be a table, got number", err(nil, 5))
      assert.matches("logger: field names must be strings, got number", err({ 1 }))
      assert.matches("logger: field 'f' must be a string, number, boolean or table of "
        .. "numbers, got function", err({ f = print }), 1, true)
      assert.matches("field 't' .* got a table with a table value", err({ t = { x = {} } }))
      assert.matches("field 't' .* got a table with a number key", err({ t = { 1 } }))
      assert.matches("field 't' .* got a table with a string value", err(nil, { t = { x = "1" } }))
    end)
  end)

  it("raises on bad settings", function()
    assert.has_error(function() core.logger{ level = "LOUD" } end)
    assert.has_error(function() core.logger{ colour = true } end)
    assert.has_error(function() core.logger{ format = "%(nope)s" } end)
    assert.has_error(function() core.logger{ fd = 1, file = dir .. "/y.log" } end)
    assert.has_error(function() core.logger{ file = dir .. "/no/such/dir/z.log" } end)
    local lg = core.logger{ file = dir .. "/w.log" }
    assert.has_error(function() lg:log("LOUD", "n", "m") end)
    assert.has_error(function() lg:set_level(-1) end)
  end)
end)
