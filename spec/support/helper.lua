-- Loaded by busted before every spec file (see .busted).
--
-- After every test: a test that leaves a task waiting or a uv handle active
-- fails, and its tasks are cancelled so the next test starts clean.
local busted = require("busted")

busted.subscribe({ "test", "end" }, function(element, parent)
  local core = package.loaded["moonwatch.core"]
  if not core then return nil, true end
  local stats = core.stats()
  if stats.tasks > 0 or stats.handles > 0 then
    local cancelled = core.cancel_all()
    busted.publish({ "failure", "it" }, element, parent, string.format(
      "the test left %d task(s) alive and %d uv handle(s) active (%d task(s) cancelled)",
      stats.tasks, stats.handles, cancelled), {})
  end
  return nil, true
end)
