-- moonwatch.conditions: every condition up and down with its exact reason,
-- the compile errors, and a few judgements of real responses from the
-- local fixture.
local conditions = require("moonwatch.conditions")
local core = require("moonwatch.core")
local fixture = require("support.fixture")

local WHERE = "monitors.example"

local function judge_of(expect)
  local judge, err = conditions.compile(expect, WHERE)
  assert(judge, err)
  return judge
end

-- A response as the core returns it; fields given replace the defaults.
local function response(fields)
  local r = { status = 200, body = "all ok", size = 6, truncated = false,
              headers = { ["content-type"] = "text/plain", server = "fixture" },
              url = "https://example.test/health", time = { total = 0.120 } }
  for k, v in pairs(fields or {}) do r[k] = v end
  if fields and fields.body and not fields.size then r.size = #fields.body end
  return r
end

local function up(expect, fields)
  local ok, reason = judge_of(expect)(response(fields))
  assert.is_true(ok, reason)
  assert.is_nil(reason)
end

local function down(expect, fields, want)
  local ok, reason = judge_of(expect)(response(fields))
  assert.is_false(ok)
  assert.equals(want, reason)
end

local function compile_error(expect)
  local judge, err = conditions.compile(expect, WHERE)
  assert.is_nil(judge)
  assert.is_string(err)
  return err
end

describe("conditions", function()
  it("lists its keys in the order they are tried", function()
    assert.same({ "status", "max_response_ms", "body_size", "cert_valid_days", "header",
                  "body_contains", "body_not_contains", "body_matches", "body_not_matches",
                  "json", "check" }, conditions.KEYS)
  end)

  describe("default", function()
    it("is status 200-299 for nil and {}", function()
      for _, expect in ipairs({ false, true }) do
        local e = expect and {} or nil
        assert.is_true((judge_of(e)(response{ status = 204 })))
        local ok, reason = judge_of(e)(response{ status = 500 })
        assert.is_false(ok)
        assert.equals("status 500, expected 200-299", reason)
      end
    end)

    it("still applies when other conditions are given", function()
      down({ body_contains = "ok" }, { status = 302 }, "status 302, expected 200-299")
    end)
  end)

  describe("status", function()
    it("takes a code, a class, a range (- or ..) and lists of them", function()
      up({ status = 201 }, { status = 201 })
      down({ status = 200 }, { status = 201 }, "status 201, expected 200")
      up({ status = "3xx" }, { status = 302 })
      down({ status = "3XX" }, { status = 200 }, "status 200, expected 3xx")
      up({ status = "200-204" }, { status = 204 })
      up({ status = "200..204" }, { status = 200 })
      down({ status = "200..204" }, { status = 205 }, "status 205, expected 200-204")
      up({ status = { 200, "3xx", "401-403" } }, { status = 403 })
      down({ status = { 200, "3xx", "401-403" } }, { status = 500 },
        "status 500, expected 200, 3xx or 401-403")
      down({ status = { 200, 404 } }, { status = 500 }, "status 500, expected 200 or 404")
      up({ status = "404" }, { status = 404 })
    end)

    it("rejects what is not a status", function()
      local hint = 'is not a status code (200), a class ("2xx"), a range ("200-299" or'
        .. ' "200..299") or a list of those'
      assert.equals(WHERE .. '.expect.status: "20x" ' .. hint, compile_error{ status = "20x" })
      assert.equals(WHERE .. ".expect.status: 99 " .. hint, compile_error{ status = 99 })
      assert.equals(WHERE .. ".expect.status: 200.5 " .. hint, compile_error{ status = 200.5 })
      assert.equals(WHERE .. '.expect.status: "299-200" is a range from high to low'
        .. " (write 200-299)", compile_error{ status = "299-200" })
      assert.equals(WHERE .. ".expect.status: true " .. hint,
        compile_error{ status = { 200, true } })
    end)
  end)

  describe("body_contains / body_not_contains", function()
    it("finds plain strings, every one of a list", function()
      up({ body_contains = "ok" })
      up({ body_contains = { "all", "ok" } })
      -- plain: no patterns
      up({ body_contains = "a.b%" }, { body = "x a.b% y" })
      down({ body_contains = "a.b" }, { body = "axb" },
        'body does not contain "a.b" (it starts "axb")')
      down({ body_contains = { "all", "healthy" } }, nil,
        'body does not contain "healthy" (it starts "all ok")')
    end)

    it("quotes the body with control bytes escaped and a long one cut", function()
      down({ body_contains = "ok" }, { body = 'line\n"1"\t\0' .. string.rep("x", 100) },
        'body does not contain "ok" (it starts "line\\n\\"1\\"\\t\\x00'
        .. string.rep("x", 50) .. '…")')
      down({ body_contains = "ok" }, { body = "" },
        'body does not contain "ok" (the body is empty)')
      -- not cut inside a UTF-8 character: "é" is 2 bytes, 59 + 2 > 60
      down({ body_contains = "ok" }, { body = string.rep("a", 59) .. "é" .. "zzz" },
        'body does not contain "ok" (it starts "' .. string.rep("a", 59) .. '…")')
    end)

    it("says when the body was cut by max_body", function()
      down({ body_contains = "end" }, { body = "start", size = 9000, truncated = true },
        'body does not contain "end" (it starts "start"; only the first 5 bytes were kept'
        .. " (max_body))")
    end)

    it("body_not_contains gives where the string is", function()
      up({ body_not_contains = { "error", "fail" } })
      down({ body_not_contains = { "fail", "error" } }, { body = "an error" },
        'body contains "error" at offset 3')
    end)

    it("rejects what is not a string or a list of them", function()
      assert.equals(WHERE .. ".expect.body_contains: must be a string or a list of them, got 3",
        compile_error{ body_contains = 3 })
      assert.equals(WHERE .. ".expect.body_contains: item 1 is empty (an empty string is in every"
        .. " body)", compile_error{ body_contains = "" })
      assert.equals(WHERE .. ".expect.body_not_contains: item 2 must be a string, got true",
        compile_error{ body_not_contains = { "a", true } })
      assert.equals(WHERE .. ".expect.body_contains: must be a string or a list of them, got an"
        .. " empty table", compile_error{ body_contains = {} })
    end)
  end)

  describe("body_matches / body_not_matches", function()
    it("matches PCRE2 regular expressions", function()
      up({ body_matches = "ok|healthy" })
      up({ body_matches = { "^all", "(?i)OK$" } })
      up({ body_matches = "\\d{3}" }, { body = "code 503" })
      down({ body_matches = "ok|healthy" }, { body = "down" },
        'body does not match /ok|healthy/ (it starts "down")')
      down({ body_matches = { "all", "^ok" } }, nil,
        'body does not match /^ok/ (it starts "all ok")')
    end)

    it("body_not_matches shows what matched", function()
      up({ body_not_matches = "error|fail" })
      down({ body_not_matches = "err[a-z]*: \\w+" }, { body = "fatal error: disk full" },
        'body matches /err[a-z]*: \\w+/ at offset 6: "error: disk"')
    end)

    it("fails a match that exceeds the match limit, either way", function()
      local body = string.rep("a", 5000) .. "!"
      down({ body_matches = "^(a|a?)+$" }, { body = body },
        "regex match limit exceeded matching /^(a|a?)+$/ against the body")
      down({ body_not_matches = "^(a|a?)+$" }, { body = body },
        "regex match limit exceeded matching /^(a|a?)+$/ against the body")
    end)

    it("matches bodies with NUL bytes", function()
      up({ body_matches = "a\\x00b" }, { body = "xa\0by" })
      up({ body_matches = "a\0b" }, { body = "xa\0by" })
    end)

    it("compiles each regex once, and a bad one is an error with PCRE2's message", function()
      assert.equals(WHERE .. ".expect.body_matches: bad regular expression /x(/: missing closing"
        .. " parenthesis at offset 2", compile_error{ body_matches = "x(" })
      assert.equals(WHERE .. ".expect.body_not_matches: item 2: bad regular expression /a[/:"
        .. " missing terminating ] for character class at offset 2",
        compile_error{ body_not_matches = { "ok", "a[" } })
    end)
  end)

  describe("json", function()
    local BODY = [[{"status": "degraded", "data": [{"count": 2, "name": "a b"}],
      "items": [{"ok": true}, {"ok": false}], "none": null, "empty": [], "version": "v1.2",
      "odd key": 1, "n": 3.5}]]

    local function jup(map, body) up({ json = map }, { body = body or BODY }) end
    local function jdown(map, want, body) down({ json = map }, { body = body or BODY }, want) end

    it("compares with strings, numbers and booleans", function()
      jup{ ["$.status"] = "degraded", ["$.data[0].count"] = 2, ["$.items[0].ok"] = true }
      jdown({ ["$.status"] = "ok" }, '$.status is "degraded", expected "ok"')
      jdown({ ["$.data[0].count"] = 3 }, "$.data[0].count is 2, expected 3")
      jdown({ ["$.items[1].ok"] = true }, "$.items[1].ok is false, expected true")
      jdown({ ["$.data[0].count"] = "2" }, '$.data[0].count is 2, expected "2"')
    end)

    it("compares numbers with < <= > >= == !=", function()
      jup{ ["$.data[0].count"] = "> 1", ["$.n"] = "<= 3.5", ["$.items[*].ok"] = "!= 3" }
      jup{ ["$.n"] = "< 4", ["$.data[0].count"] = ">=2" }
      jup{ ["$.n"] = " == 3.5 ", ["$.data[0].count"] = "!= 3" }
      jdown({ ["$.data[0].count"] = "> 3" }, "$.data[0].count is 2, expected > 3")
      jdown({ ["$.n"] = "< 1e0" }, "$.n is 3.5, expected < 1")
      jdown({ ["$.status"] = "> 3" }, '$.status is "degraded", expected > 3')
    end)

    it('compares with == / != and true, false, null or a "quoted string"', function()
      jup{ ["$.status"] = '!= "ok"', ["$.none"] = "== null", ["$.items[0].ok"] = "== true" }
      jdown({ ["$.status"] = '!= "degraded"' }, '$.status is "degraded", expected != "degraded"')
      jdown({ ["$.none"] = "!= null" }, "$.none is null, expected != null")
      jdown({ ["$.status"] = '== "<html>"' }, '$.status is "degraded", expected == "<html>"')
    end)

    it("tests presence with exists and absent", function()
      jup{ ["$.none"] = "exists", ["$.error"] = "absent", ["$.items[*].error"] = "absent" }
      jdown({ ["$.error"] = "exists" }, "$.error is missing")
      jdown({ ["$.status"] = "absent" }, '$.status is "degraded", expected absent')
    end)

    it("matches strings with { matches = regex }", function()
      jup{ ["$.version"] = { matches = "^v1\\." } }
      jdown({ ["$.version"] = { matches = "^v2" } }, '$.version is "v1.2", expected to match /^v2/')
      jdown({ ["$.n"] = { matches = "3" } }, "$.n is 3.5, expected to match /3/")
    end)

    it("takes .key, ['key'], [n], [-n] and [*] (every element must pass)", function()
      jup{ ["$['odd key']"] = 1, ['$["data"][0]["name"]'] = "a b", ["$.items[-1].ok"] = false }
      jup{ ["$.data[*].count"] = 2, ["$.data.*.name"] = "a b" }
      jdown({ ["$.items[*].ok"] = true }, "$.items[1].ok is false, expected true")
      jdown({ ["$.empty[*].x"] = 1 }, "$.empty[*] selects nothing ($.empty is an empty array or"
        .. " object)")
      jdown({ ["$['odd key']"] = 2 }, "$['odd key'] is 1, expected 2")
      jdown({ ["$.*"] = "exists" }, "$[*] selects nothing ($ is an empty array or object)", "{}")
    end)

    it("says where a missing path broke off", function()
      jdown({ ["$.status"] = "ok" }, "$.status is missing", "{}")
      jdown({ ["$.items[5].ok"] = true }, "$.items[5].ok is missing ($.items has 2 items)")
      jdown({ ["$.nope.ok"] = true }, "$.nope.ok is missing ($.nope is missing)")
      jdown({ ["$.status.code"] = 1 }, '$.status.code is missing ($.status is "degraded")')
      jdown({ ["$.data[*].x"] = 1 }, "$.data[0].x is missing")
      jdown({ ["$.data"] = "ok" }, '$.data is an array, expected "ok"')
      jdown({ ["$"] = "ok" }, '$ is an object, expected "ok"')
    end)

    it("decodes the body once, and a body that is not JSON fails", function()
      jdown({ ["$.a"] = 1 }, "body is not JSON: Expected value but found invalid token at"
        .. " character 1", "<html>")
      down({ json = { ["$.a"] = 1 } }, { body = '{"a": ', truncated = true },
        "body is not JSON: Expected value but found T_END at character 7 (the body was cut at"
        .. " max_body)")
    end)

    it("tries the paths in sorted order", function()
      jdown({ ["$.b"] = 1, ["$.a"] = 1 }, "$.a is 2, expected 1", '{"a": 2, "b": 2}')
    end)

    it("rejects bad paths, comparisons and values", function()
      local function err(map) return compile_error{ json = map } end
      local p = WHERE .. ".expect.json"
      assert.equals(p .. ": bad JSON path \"$.data[0\": expected ']' at offset 8",
        err{ ["$.data[0"] = 1 })
      assert.equals(p .. ': bad JSON path "status": it must start with $ ($.status)',
        err{ status = 1 })
      assert.equals(p .. ': bad JSON path "$..x": recursive descent (..) is not supported at'
        .. " offset 1", err{ ["$..x"] = 1 })
      assert.equals(p .. ': bad JSON path "$.a[?(@.b)]": filters ([?...]) are not supported at'
        .. " offset 3", err{ ["$.a[?(@.b)]"] = 1 })
      assert.equals(p .. ': bad JSON path "$.a[0:2]": slices are not supported at offset 5',
        err{ ["$.a[0:2]"] = 1 })
      assert.equals(p .. ': bad JSON path "$.a b": unexpected " " at offset 3',
        err{ ["$.a b"] = 1 })
      assert.equals(p .. "[\"$.count\"]: bad comparison \"> three\": expected a number after >"
        .. " (for the string itself, write '== \"...\"')", err{ ["$.count"] = "> three" })
      assert.equals(p .. '["$.s"]: bad comparison "== ok": after == put a number, true, false,'
        .. ' null or a "quoted string"', err{ ["$.s"] = "== ok" })
      assert.equals(p .. '["$.s"]: unknown key "match" in an expected value (use matches)',
        err{ ["$.s"] = { match = "x" } })
      assert.equals(p .. '["$.s"]: bad regular expression /(/: missing closing parenthesis at'
        .. " offset 1", err{ ["$.s"] = { matches = "(" } })
      assert.equals(p .. ': must map JSON paths to expected values, e.g. { ["$.status"] = "ok" },'
        .. " got a list", err{ "$.a" })
    end)
  end)

  describe("header", function()
    it("tests presence, absence, equality and a regex, by case-insensitive name", function()
      up({ header = { ["Content-Type"] = "text/plain", server = true, ["x-debug"] = false } })
      up({ header = { ["content-type"] = { matches = "^text/" } } })
      down({ header = { ["Content-Type"] = "application/json" } },
        { headers = { ["content-type"] = "text/html" } },
        'header content-type is "text/html", expected "application/json"')
      down({ header = { ["x-id"] = true } }, nil, "header x-id is missing")
      down({ header = { server = false } }, nil, 'header server is "fixture", expected absent')
      down({ header = { ["x-id"] = "1" } }, nil, 'header x-id is missing, expected "1"')
      down({ header = { ["content-type"] = { matches = "json" } } }, nil,
        'header content-type is "text/plain", expected to match /json/')
      down({ header = { ["x-id"] = { matches = "\\d+" } } }, nil,
        "header x-id is missing, expected to match /\\d+/")
    end)

    it("rejects bad names and values", function()
      assert.equals(WHERE .. '.expect.header: "bad name" is not a header name',
        compile_error{ header = { ["bad name"] = true } })
      assert.equals(WHERE .. '.expect.header["x"]: must be true (present), false (absent), a'
        .. ' string (equal) or { matches = "regex" }, got 1', compile_error{ header = { x = 1 } })
      assert.equals(WHERE .. '.expect.header["x"]: bad regular expression /[/: missing'
        .. " terminating ] for character class at offset 1",
        compile_error{ header = { x = { matches = "[" } } })
    end)
  end)

  describe("max_response_ms", function()
    it("is the total time, strictly below", function()
      up({ max_response_ms = 500 }, { time = { total = 0.4999 } })
      down({ max_response_ms = 500 }, { time = { total = 0.812 } },
        "response took 812 ms, expected below 500 ms")
      down({ max_response_ms = 500 }, { time = { total = 0.5 } },
        "response took 500 ms, expected below 500 ms")
      assert.equals(WHERE .. ".expect.max_response_ms: must be a number of milliseconds greater"
        .. " than 0, got 0", compile_error{ max_response_ms = 0 })
    end)
  end)

  describe("body_size", function()
    it("bounds response.size with min and max", function()
      up({ body_size = { min = 6, max = 6 } })
      down({ body_size = { min = 100 } }, { body = "twelve bytes" },
        "body is 12 bytes, expected at least 100")
      down({ body_size = { max = 10 } }, { body = "twelve bytes" },
        "body is 12 bytes, expected at most 10")
      -- bytes received, also those max_body did not keep
      down({ body_size = { max = 10 } }, { body = "x", size = 2000, truncated = true },
        "body is 2000 bytes, expected at most 10")
    end)

    it("rejects bad bounds", function()
      assert.equals(WHERE .. '.expect.body_size: unknown key "mn" (use min and max)'
        .. " (did you mean 'min'?)", compile_error{ body_size = { mn = 1 } })
      assert.equals(WHERE .. ".expect.body_size: min (5) is above max (1)",
        compile_error{ body_size = { min = 5, max = 1 } })
      assert.equals(WHERE .. ".expect.body_size: min must be a whole number of bytes (0 or more),"
        .. " got -1", compile_error{ body_size = { min = -1 } })
      assert.equals(WHERE .. ".expect.body_size: must be a table { min = bytes, max = bytes },"
        .. " got 100", compile_error{ body_size = 100 })
    end)
  end)

  describe("cert_valid_days", function()
    local DAY = 86400

    it("needs the earliest certificate expiry more than N days away", function()
      local expiry = os.time() + 30 * DAY
      up({ cert_valid_days = 14 }, { cert_expiry = expiry })
      expiry = os.time() + math.floor(2.95 * DAY)
      down({ cert_valid_days = 14 }, { cert_expiry = expiry },
        "certificate expires in 2.9 days (" .. os.date("!%Y-%m-%dT%H:%M:%SZ", expiry)
        .. "), expected more than 14")
      expiry = os.time() - math.floor(1.5 * DAY)
      down({ cert_valid_days = 0 }, { cert_expiry = expiry },
        "certificate expired 1.5 days ago (" .. os.date("!%Y-%m-%dT%H:%M:%SZ", expiry)
        .. "), expected more than 0")
    end)

    it("fails without a certificate, saying why", function()
      down({ cert_valid_days = 14 }, { url = "http://example.test/" },
        "no certificate: the response came over plain http (http://example.test/)")
      down({ cert_valid_days = 14 }, nil,
        "no certificate information in the response (the request needs cert_info = true)")
    end)

    it("is what needs_cert tells", function()
      assert.is_true(conditions.needs_cert(judge_of{ cert_valid_days = 14 }))
      assert.is_false(conditions.needs_cert(judge_of{ status = 200 }))
      assert.is_false(conditions.needs_cert(judge_of(nil)))
      assert.equals(WHERE .. ".expect.cert_valid_days: must be a number of days (0 or more), got"
        .. ' "14"', compile_error{ cert_valid_days = "14" })
    end)
  end)

  describe("check", function()
    it("is any function of the response", function()
      up({ check = function(r) return r.body == "all ok" end })
      down({ check = function() return false end }, nil, "check returned false")
      down({ check = function() return nil end }, nil, "check returned nil")
      down({ check = function() return false, "token expired" end }, nil, "token expired")
      down({ check = function() error("boom", 0) end }, nil, "check raised: boom")
      down({ check = function() return "yes" end }, nil,
        'check returned "yes", expected true, or false and a reason')
      -- a function alone is a check
      local ok, reason = judge_of(function() return false, "no" end)(response())
      assert.is_false(ok)
      assert.equals("no", reason)
    end)

    it("runs last", function()
      local ran = false
      down({ check = function() ran = true return true end, body_contains = "nope" }, nil,
        'body does not contain "nope" (it starts "all ok")')
      assert.is_false(ran)
    end)

    it("must be a function", function()
      assert.equals(WHERE .. ".expect.check: must be a function(response), got a table",
        compile_error{ check = {} })
    end)
  end)

  describe("compile", function()
    it("names an unknown condition and the closest known one", function()
      assert.equals(WHERE .. ": unknown condition 'staus' (did you mean 'status'?)",
        compile_error{ staus = 200 })
      assert.equals(WHERE .. ": unknown condition 'body_matchs' (did you mean 'body_matches'?)",
        compile_error{ body_matchs = "x" })
      assert.equals(WHERE .. ": unknown condition 'zzz'", compile_error{ zzz = 1 })
    end)

    it("rejects what is not a table of named conditions", function()
      assert.equals(WHERE .. '.expect: must be a table of conditions (or a function), got "200"',
        compile_error("200"))
      assert.equals(WHERE .. '.expect: conditions are named (status = 200, body_contains = "ok",'
        .. " ...), got 1 = 200", compile_error{ 200 })
      local _, err = conditions.compile({ staus = 1 })
      assert.equals("expect: unknown condition 'staus' (did you mean 'status'?)", err)
    end)

    it("gives the reason of the first failing condition, in the order of KEYS", function()
      local judge = judge_of{ check = function() return false end, body_contains = "x",
                              header = { ["x-id"] = true }, max_response_ms = 1,
                              status = 200 }
      local _, reason = judge(response{ status = 500, time = { total = 1 } })
      assert.equals("status 500, expected 200", reason)
      _, reason = judge(response{ time = { total = 1 } })
      assert.equals("response took 1000 ms, expected below 1 ms", reason)
      _, reason = judge(response{ time = { total = 0 } })
      assert.equals("header x-id is missing", reason)
    end)

    it("makes no garbage on the success path of the common conditions", function()
      local judge = judge_of{ status = { 200, "3xx" }, body_contains = { "all", "ok" },
                              body_not_contains = "error", body_size = { min = 1, max = 100 },
                              max_response_ms = 500, body_matches = "o[k]",
                              header = { ["content-type"] = "text/plain", server = true },
                              cert_valid_days = 1 }
      local r = response{ cert_expiry = os.time() + 10 * 86400 }
      assert.is_true((judge(r)))
      collectgarbage("collect")
      collectgarbage("stop")
      local before = collectgarbage("count")
      for _ = 1, 1000 do judge(r) end
      local after = collectgarbage("count")
      collectgarbage("restart")
      assert.equals(before, after)
    end)
  end)
end)

describe("conditions on real responses", function()
  local srv

  lazy_setup(function() srv = fixture.start{ tls = false } end)
  lazy_teardown(function() if srv then srv:stop() end end)

  local function get(path, opts)
    opts = opts or {}
    opts.url = srv:url(path)
    return core.run(function() return assert(core.http_request(opts)) end)
  end

  it("judge the status, the lazily parsed headers and the body", function()
    local judge = judge_of{ header = { ["Content-Type"] = { matches = "^text/html" } },
                            body_size = { min = 648, max = 648 }, body_matches = "(?i)<html" }
    assert.is_true((judge(get("/page"))))
    local ok, reason = judge(get("/status/503"))
    assert.is_false(ok)
    assert.equals("status 503, expected 200-299", reason)
  end)

  it("judge a JSON API", function()
    local judge = judge_of{ json = { ["$.status"] = "ok", ["$.items"] = ">= 3" } }
    local r = get("/api/data", { headers = { Authorization = "Bearer s3cret" } })
    assert.is_true((judge(r)))
    local ok, reason = judge_of{ status = 401, json = { ["$.error"] = "absent" } }(get("/api/data"))
    assert.is_false(ok)
    assert.equals('$.error is "unauthorized", expected absent', reason)
  end)

  it("judge a plain http response's certificate as missing", function()
    local r = get("/page", { cert_info = true })
    assert.is_nil(r.cert_expiry)
    local ok, reason = judge_of{ cert_valid_days = 1 }(r)
    assert.is_false(ok)
    assert.equals("no certificate: the response came over plain http (" .. r.url .. ")", reason)
  end)
end)

describe("conditions.compiler (the conditions of another kind of probe)", function()
  local util = conditions.util
  local compile = conditions.compiler{
    keys = { "reply_contains", "max_response_ms", "check" },
    compilers = {
      reply_contains = function(v)
        if type(v) ~= "string" then util.bad("must be a string, got %s", util.show(v)) end
        return function(r)
          if r.reply:find(v, 1, true) then return nil end
          return ("reply %s does not contain %s"):format(util.quote(r.reply), util.quote(v))
        end
      end,
      max_response_ms = util.max_response_ms,
      check = util.check,
    },
    example = 'reply_contains = "+PONG"',
  }

  it("judge results in the order of its keys", function()
    local judge = assert(compile({ reply_contains = "+PONG", max_response_ms = 100 }, WHERE))
    assert.same({ true }, { judge{ reply = "+PONG\r\n", time = { total = 0.01 } } })
    assert.same({ false, 'reply "-ERR\\r\\n" does not contain "+PONG"' },
      { judge{ reply = "-ERR\r\n", time = { total = 0.5 } } })
    assert.same({ false, "response took 500 ms, expected below 100 ms" },
      { judge{ reply = "+PONG", time = { total = 0.5 } } })
  end)

  it("is up with no conditions and no defaults", function()
    assert.is_true((assert(compile(nil, WHERE))({})))
  end)

  it("name unknown conditions with the closest known one, and bad values", function()
    local judge, err = compile({ reply_contain = "x" }, WHERE)
    assert.is_nil(judge)
    assert.equals("monitors.example: unknown condition 'reply_contain' "
      .. "(did you mean 'reply_contains'?)", err)
    judge, err = compile({ reply_contains = 3 }, WHERE)
    assert.is_nil(judge)
    assert.equals("monitors.example.expect.reply_contains: must be a string, got 3", err)
    judge, err = compile({ "x" }, WHERE)
    assert.is_nil(judge)
    assert.equals('monitors.example.expect: conditions are named (reply_contains = "+PONG"),'
      .. ' got 1 = "x"', err)
  end)
end)
