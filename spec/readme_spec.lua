-- The README's examples are run as they are, so they cannot rot: the spec
-- shown under "Writing a spec" is loaded here as a spec of its own.
local function readme_block(heading)
  local f = assert(io.open("README.md"))
  local text = f:read("a")
  f:close()
  local start = assert(text:find("\n## " .. heading, 1, true), "no README section " .. heading)
  local block = text:match("```lua\n(.-)```", start)
  return assert(block, "no lua block under " .. heading)
end

local chunk = assert(load(readme_block("Writing a spec"), "=README.md (Writing a spec)", "t",
  setmetatable({}, { __index = _ENV })))
chunk()

describe("README Writing a monitor", function()
  it("shows examples/token_monitor.lua as it is", function()
    local f = assert(io.open("examples/token_monitor.lua"))
    local example = f:read("a")
    f:close()
    assert.equal(example, readme_block("Writing a monitor"))
  end)
end)
