-- Assertions on output text (plain substrings, not patterns), with both
-- texts in the failure message.
local M = {}

function M.has(haystack, needle)
  assert(haystack:find(needle, 1, true),
    string.format("expected to find\n%s\nin\n%s", needle, haystack))
end

function M.has_not(haystack, needle)
  assert(not haystack:find(needle, 1, true),
    string.format("expected not to find\n%s\nin\n%s", needle, haystack))
end

return M
