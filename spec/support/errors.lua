-- Assertions on raised errors, shared by the specs.
local M = {}

--- The error fn(...) raises; fails the test if it raises none.
function M.err_of(fn, ...)
  local ok, err = pcall(fn, ...)
  assert(not ok, "expected an error")
  return err
end

return M
