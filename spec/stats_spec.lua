-- `moonwatch --stats` and the dispatcher's counters behind it.
local cjson = require("cjson")
local core = require("moonwatch.core")

local BIN = os.getenv("MOONWATCH_BIN") or "build/moonwatch"

describe("moonwatch --stats", function()
  it("prints the schedule's figures as one JSON line on stderr at exit", function()
    local err = os.tmpname()
    local cmd = ("%s --stats spec/fixtures/configs/empty.lua 2>%s"):format(BIN, err)
    local out = assert(io.popen(cmd))
    out:read("a")
    local ok, how, code = out:close()
    assert.is_true(ok, ("exit %s %s"):format(how, code))
    local f = assert(io.open(err))
    local text = f:read("a")
    f:close()
    os.remove(err)
    local line = assert(text:match("({.-})\n"), "no JSON line in: " .. text)
    local stats = cjson.decode(line)
    for _, key in ipairs({ "monitors", "scheduled", "run", "skipped", "failed", "down",
                           "cancelled", "startup_s", "elapsed_s", "cpu_user_s",
                           "cpu_system_s", "maxrss_kb" }) do
      assert.is_number(stats[key], key)
    end
    assert.equal(0, stats.monitors)
    assert.is_number(stats.lateness_ms.p99)
    assert.is_true(stats.maxrss_kb > 0)
  end)
end)

describe("dispatcher counters", function()
  it("count a check that returns nil or false as down, one that raises as failed", function()
    local d = core.dispatcher{ spread = false, on_error = function() end }
    d:add({ check = function() return nil, "refused" end }, { interval = 0.05, name = "down" })
    d:add({ check = function() return false end }, { interval = 0.05, name = "false" })
    d:add({ check = function() error("boom") end }, { interval = 0.05, name = "raises" })
    d:add({ check = function() return true end }, { interval = 0.05, name = "up" })
    core.run(function()
      d:start()
      core.sleep(0.12)
      d:stop()
    end)
    local st = d:stats()
    local rounds = st.run // 4
    assert.is_true(rounds >= 2, "ran " .. st.run)
    assert.equal(rounds * 2, st.down)
    assert.equal(rounds, st.failed)
    assert.is_true(st.lateness.p99 <= st.lateness.max)
  end)
end)

describe("dispatcher check tasks", function()
  it("reuse ended threads, but never one that Lua got hold of", function()
    local d = core.dispatcher{ spread = false }
    local seen, plain = {}, 0
    d:add({ check = function() seen[#seen + 1] = core.current() end },
      { interval = 0.02, name = "keeps its task" })
    d:add({ check = function() plain = plain + 1 end }, { interval = 0.02, name = "plain" })
    core.run(function()
      d:start()
      core.sleep(0.15)
      d:stop()
    end)
    assert.is_true(#seen >= 3 and plain >= 3)
    local distinct = {}
    for _, t in ipairs(seen) do
      assert.equal("done", t:status())
      assert.is_nil(distinct[t])
      distinct[t] = true
    end
  end)
end)

describe("dispatcher after a stall", function()
  it("starts the ticks that came due together over several loop turns, 256 at most each", function()
    local d = core.dispatcher{ spread = false }
    local order = {}
    for i = 1, 600 do
      d:add({ check = function()
        order[#order + 1] = i
        -- a task spawned now runs later in this same loop turn
        if i == 1 then core.spawn(function() order[#order + 1] = "turn end" end) end
      end }, { interval = 10, name = "m" .. i })
    end
    core.run(function()
      d:start() -- 600 checks due at once
      core.sleep(0.05)
      d:stop()
    end)
    assert.equal(601, #order)
    assert.equal(600, d:stats().run)
    assert.equal("turn end", order[257]) -- the first turn started 256 checks
  end)
end)
