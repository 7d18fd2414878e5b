-- core.regex: PCRE2 regular expressions, compiled once, matched without
-- garbage, bounded by a match limit.
local core = require("moonwatch.core")

describe("core.regex", function()
  it("finds a match, as string.find does (1-based, inclusive)", function()
    local re = assert(core.regex("ok|healthy"))
    assert.same({ 5, 11 }, { re:find("all healthy") })
    assert.same({ 1, 2 }, { re:find("ok") })
    assert.same({ 9, 10 }, { re:find("ok, and ok", 2) })
    assert.same({ 9, 10 }, { re:find("ok, and ok", -2) })
    assert.equals("/ok|healthy/", tostring(re))
  end)

  it("returns a single nil when nothing matches", function()
    local re = assert(core.regex("^ok$"))
    assert.same({ n = 1 }, table.pack(re:find("not ok")))
    assert.same({ n = 1 }, table.pack(re:find("ok", 4)))
  end)

  it("takes flags i, m, s, x, u and inline options", function()
    assert.same({ 1, 2 }, { assert(core.regex("OK", "i")):find("ok") })
    assert.same({ 3, 3 }, { assert(core.regex("^x", "m")):find("a\nx") })
    assert.same({ 1, 3 }, { assert(core.regex("a.b", "s")):find("a\nb") })
    assert.same({ 1, 2 }, { assert(core.regex(" o  k # comment", "x")):find("ok") })
    assert.same({ 1, 2 }, { assert(core.regex("(?i)OK")):find("ok") })
    -- bytes by default: "." is one byte; with u one character
    assert.same({ 4, 5 }, { assert(core.regex("é$")):find("café") })
    assert.same({ 3, 5 }, { assert(core.regex("f.$", "u")):find("café") })
    assert.is_nil(assert(core.regex("f.$")):find("café"))
    -- invalid UTF-8 in the subject does not match rather than fail
    assert.is_nil(assert(core.regex("x", "u")):find("\xff\xfe"))
    local ok, err = pcall(core.regex, "x", "q")
    assert.is_false(ok)
    assert.matches("core.regex: unknown flag 'q' (use i, m, s, x, u)", err, 1, true)
  end)

  it("matches binary subjects and patterns with NUL bytes", function()
    assert.same({ 3, 5 }, { assert(core.regex("a\0b")):find("xxa\0bzz") })
    assert.same({ 3, 5 }, { assert(core.regex("a\\x00b")):find("xxa\0bzz") })
    assert.same({ 2, 2 }, { assert(core.regex("\\x00")):find("a\0") })
  end)

  it("gives nil and PCRE2's message with its offset for a bad pattern", function()
    local re, err = core.regex("x(")
    assert.is_nil(re)
    assert.equals("bad regular expression /x(/: missing closing parenthesis at offset 2", err)
    re, err = core.regex("a\n[")
    assert.is_nil(re)
    assert.equals("bad regular expression /a\\n[/: missing terminating ] for character class"
      .. " at offset 3", err)
    -- UTF mode is the u flag's, not the pattern's
    re, err = core.regex("(*UTF)x")
    assert.is_nil(re)
    assert.matches("UTF is disabled", err, 1, true)
    assert.has_error(function() core.regex(nil) end)
  end)

  it("stops a catastrophic pattern at the match limit, quickly", function()
    local re = assert(core.regex("^(a|a?)+$"))
    local started = os.clock()
    local s, err = re:find(string.rep("a", 5000) .. "!")
    assert.is_nil(s)
    assert.equals("regex match limit exceeded", err)
    assert.is_true(os.clock() - started < 2, "the limit took " .. (os.clock() - started) .. " s")
    -- the regex still works afterwards
    assert.same({ 1, 3 }, { re:find("aaa") })
  end)

  it("matches a subject that outgrows the JIT's default 32 KiB stack", function()
    local re = assert(core.regex("^(?:(a)|b)*$"))
    local body = string.rep("ab", 10000)
    assert.same({ 1, #body }, { re:find(body) })
  end)

  it("allocates nothing per match", function()
    local re = assert(core.regex("o[k]"))
    local subject = "all ok"
    re:find(subject)
    collectgarbage("collect")
    collectgarbage("stop")
    local before = collectgarbage("count")
    for _ = 1, 1000 do re:find(subject) end
    local after = collectgarbage("count")
    collectgarbage("restart")
    assert.equals(before, after)
  end)

  it("is freed by the collector", function()
    for _ = 1, 200 do core.regex(string.rep("(a|b)", 50)) end
    collectgarbage("collect")
  end)
end)
