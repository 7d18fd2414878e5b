-- moonwatch.core: the logger through Lua (the C unit tests cover the
-- formatter in depth).
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
