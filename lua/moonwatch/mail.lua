--- Plain-text e-mail messages (RFC 5322, MIME) for core.smtp_send.
--
--   local text = mail.message{ from = "alerts@example.com", to = { "ops@example.com" },
--                              subject = "api is down", body = "...", date = os.time() }
--   core.smtp_send{ url = ..., from = "alerts@example.com", to = { "ops@example.com" },
--                   message = text }
--
-- The body is sent quoted-printable: every line comes out 7-bit and at most
-- 76 characters long whatever the body holds (non-ASCII text, a long log
-- line), so no server can refuse or mangle it. 8bit would need the server's
-- 8BITMIME, which curl never asks for, and lines under 998 bytes.
--
-- Dot-stuffing (a line starting with "." sent as "..") is not done here:
-- curl does it while it sends the message (lib/smtp.c, Curl_smtp_escape_eob),
-- and doing it twice would double the dots.
local mail = {}

local DAYS = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" }
local MONTHS = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" }
local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function fail(fmt, ...)
  error("mail.message: " .. fmt:format(...), 3)
end

local function base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = (a << 16) | ((b or 0) << 8) | (c or 0)
    local chars = {}
    for k = 1, 4 do
      local v = (n >> (6 * (4 - k))) & 63
      chars[k] = B64:sub(v + 1, v + 1)
    end
    if not b then chars[3] = "=" end
    if not c then chars[4] = "=" end
    out[#out + 1] = table.concat(chars)
  end
  return table.concat(out)
end

--- The Date header's value for a Unix time (RFC 5322 3.3), in UTC and
-- English whatever the locale.
function mail.date(t)
  local d = os.date("!*t", t)
  return ("%s, %02d %s %04d %02d:%02d:%02d +0000"):format(DAYS[d.wday], d.day, MONTHS[d.month],
    d.year, d.hour, d.min, d.sec)
end

-- An envelope address as core.smtp_send takes it: printable ASCII, no
-- spaces or angle brackets, one "@".
local function check_address(what, a)
  if type(a) ~= "string" then fail("%s must be an address string, got %s", what, type(a)) end
  if a:find("[%c\128-\255]") then
    fail("%s must not contain control characters (CR, LF...) or non-ASCII bytes", what)
  end
  if not a:match("^[^%s<>@]+@[^%s<>@]+$") then
    fail("%s (%q) must be a bare address like user@example.com", what, a)
  end
  return a
end

-- Words of at most 75 characters ("=?UTF-8?B?...?=", RFC 2047 2) holding
-- whole UTF-8 characters, joined by folding whitespace.
local function encoded_words(s)
  local words, chunk = {}, ""
  for _, code in utf8.codes(s) do
    local ch = utf8.char(code)
    -- 45 bytes make 60 base64 characters: 72 with the 12 around them
    if #chunk + #ch > 45 then
      words[#words + 1] = "=?UTF-8?B?" .. base64(chunk) .. "?="
      chunk = ""
    end
    chunk = chunk .. ch
  end
  words[#words + 1] = "=?UTF-8?B?" .. base64(chunk) .. "?="
  return table.concat(words, "\r\n ")
end

-- "Name: value", folded at spaces so that lines stay under 78 characters
-- where a space allows (RFC 5322 2.2.3); a run of spaces becomes one.
local function header(name, value)
  local lines, line = {}, name .. ":"
  for word in value:gmatch("%S+") do
    if #line + 1 + #word > 78 and line ~= name .. ":" then
      lines[#lines + 1] = line
      line = ""
    end
    line = line .. " " .. word
  end
  lines[#lines + 1] = line
  return table.concat(lines, "\r\n")
end

local function subject_header(subject)
  if subject:find("[\r\n]") then fail("subject must not contain CR or LF") end
  if subject:find("%c") then fail("subject must not contain control characters") end
  if not utf8.len(subject) then fail("subject is not valid UTF-8") end
  if subject:find("[\128-\255]") or subject:find("=?", 1, true) then
    return "Subject: " .. encoded_words(subject)
  end
  return header("Subject", subject)
end

-- Quoted-printable (RFC 2045 6.7) of one line, with soft breaks at 76.
local function qp_line(line)
  local out, cur = {}, {}
  local len = 0
  for i = 1, #line do
    local c = line:sub(i, i)
    local b = c:byte()
    local last = i == #line
    local enc
    if (b >= 33 and b <= 126 and c ~= "=") or ((c == " " or c == "\t") and not last) then
      enc = c
    else
      enc = ("=%02X"):format(b)
    end
    -- room for "=" of a soft break, unless this is the line's end
    if len + #enc > (last and 76 or 75) then
      out[#out + 1] = table.concat(cur) .. "="
      cur, len = {}, 0
    end
    cur[#cur + 1] = enc
    len = len + #enc
  end
  out[#out + 1] = table.concat(cur)
  return table.concat(out, "\r\n")
end

local function quoted_printable(body)
  local lines = {}
  body = body:gsub("\r\n", "\n"):gsub("\r", "\n")
  if body:sub(-1) ~= "\n" then body = body .. "\n" end
  for line in body:gmatch("(.-)\n") do lines[#lines + 1] = qp_line(line) end
  return table.concat(lines, "\r\n") .. "\r\n"
end

local function host_name()
  local f = io.open("/proc/sys/kernel/hostname")
  local name = f and f:read("l")
  if f then f:close() end
  if name and name:match("^[%w.-]+$") then return name end
  return nil
end

local id_count = 0

--- A Message-ID unique across messages and machines: the time, a random
-- number, a counter and the host (RFC 5322 3.6.4).
function mail.message_id(from)
  id_count = id_count + 1
  local host = host_name() or from:match("@(.+)$")
  return ("<%d.%x.%d@%s>"):format(os.time(), math.random(0) & 0xffffffffffff, id_count, host)
end

--- The full text of a plain-text message, CRLF line endings.
-- opts: from (address), to (list of addresses), subject (UTF-8), body
-- (UTF-8 text, any line endings), date (Unix time, default now). Raises on
-- bad input; nothing a caller passes can add a header.
function mail.message(opts)
  if type(opts) ~= "table" then fail("expects a table of options, got %s", type(opts)) end
  local known = { from = true, to = true, subject = true, body = true, date = true }
  for k in pairs(opts) do
    if not known[k] then fail("unknown option '%s'", tostring(k)) end
  end
  local from = check_address("from", opts.from)
  if type(opts.to) ~= "table" or #opts.to == 0 then
    fail("to must be a list of at least one address")
  end
  local to = {}
  for i, a in ipairs(opts.to) do to[i] = check_address(("to[%d]"):format(i), a) end
  local subject = opts.subject or ""
  if type(subject) ~= "string" then fail("subject must be a string, got %s", type(subject)) end
  local body = opts.body or ""
  if type(body) ~= "string" then fail("body must be a string, got %s", type(body)) end
  if not utf8.len(body) then fail("body is not valid UTF-8") end
  local date = opts.date or os.time()
  if math.type(date) ~= "integer" then fail("date must be a Unix time (an integer)") end
  return table.concat({
    "Date: " .. mail.date(date),
    "From: " .. from,
    header("To", table.concat(to, ", ")),
    subject_header(subject),
    "Message-ID: " .. mail.message_id(from),
    "MIME-Version: 1.0",
    "Content-Type: text/plain; charset=utf-8",
    "Content-Transfer-Encoding: quoted-printable",
    "",
    quoted_printable(body),
  }, "\r\n")
end

return mail
