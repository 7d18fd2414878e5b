-- moonwatch.mail: the text of a plain-text message.
local mail = require("moonwatch.mail")
local mime = require("mime")

local function build(extra)
  local o = { from = "alerts@example.com", to = { "ops@example.com" }, subject = "api is down",
    body = "status: 503", date = 1700000000 }
  for k, v in pairs(extra or {}) do o[k] = v end
  return mail.message(o)
end

local function split(text)
  local head, body = text:match("^(.-)\r\n\r\n(.*)$")
  local headers = {}
  for name, value in head:gsub("\r\n ", " "):gmatch("([^:\r\n]+): ([^\r\n]*)") do
    headers[name] = value
  end
  return headers, body, head
end

local function raises(extra, expected)
  local ok, err = pcall(build, extra)
  assert.is_false(ok, "no error for " .. expected)
  assert.matches("mail.message: " .. expected, err, 1, true)
end

describe("mail.message", function()
  it("is mw.mail", function()
    assert.equals(mail, require("moonwatch").mail)
  end)

  it("builds the headers, in CRLF lines only", function()
    local text = build()
    assert.is_nil(text:gsub("\r\n", ""):find("[\r\n]"), "a bare CR or LF")
    local h, body = split(text)
    assert.equals("Tue, 14 Nov 2023 22:13:20 +0000", h.Date)
    assert.equals("alerts@example.com", h.From)
    assert.equals("ops@example.com", h.To)
    assert.equals("api is down", h.Subject)
    assert.equals("1.0", h["MIME-Version"])
    assert.equals("text/plain; charset=utf-8", h["Content-Type"])
    assert.equals("quoted-printable", h["Content-Transfer-Encoding"])
    assert.equals("status: 503\r\n", body)
  end)

  it("writes the date in English and UTC (RFC 5322 3.3)", function()
    assert.equals("Thu, 01 Jan 1970 00:00:00 +0000", mail.date(0))
    assert.equals("Sun, 29 Feb 2004 23:59:59 +0000", mail.date(1078099199))
  end)

  it("gives every message its own Message-ID", function()
    local seen = {}
    for _ = 1, 100 do
      local id = split(build())["Message-ID"]
      assert.matches("^<%d+%.%x+%.%d+@[%w.-]+>$", id)
      assert.is_nil(seen[id])
      seen[id] = true
    end
  end)

  it("encodes a non-ASCII subject as RFC 2047 words of at most 75 characters", function()
    local subject = ("Dépassement de délai ☃ "):rep(6)
    local _, _, head = split(build{ subject = subject })
    local raw = head:match("Subject: (.-)\r\nMessage%-ID")
    local decoded = {}
    for word in raw:gmatch("%S+") do
      assert.is_true(#word <= 75, word)
      decoded[#decoded + 1] = mime.unb64(assert(word:match("^=%?UTF%-8%?B%?(.*)%?=$")))
    end
    assert.equals(subject, table.concat(decoded))
    assert.is_nil(raw:find("[\128-\255]"))
  end)

  it("folds a long ASCII subject and a long To at spaces", function()
    local to = {}
    for i = 1, 8 do to[i] = ("operator%d@example.com"):format(i) end
    local text = build{ subject = ("word "):rep(40), to = to }
    for line in text:gmatch("(.-)\r\n") do assert.is_true(#line <= 78, line) end
    local h = split(text)
    assert.equals(table.concat(to, ", "), h.To)
  end)

  it("sends the body quoted-printable: 7-bit lines of at most 76 characters", function()
    local body = "naïve " .. ("é"):rep(80) .. " = x \nline two\r\n.dot\n" .. ("y"):rep(200)
    local _, encoded = split(build{ body = body })
    for line in encoded:gmatch("(.-)\r\n") do
      assert.is_true(#line <= 76, line)
      assert.is_nil(line:find("[\128-\255]"))
    end
    assert.equals((body:gsub("\r?\n", "\r\n")) .. "\r\n", (mime.unqp(encoded)))
  end)

  it("refuses what could add a header or break the message", function()
    raises({ subject = "hi\r\nBcc: victim@example.com" }, "subject must not contain CR or LF")
    raises({ subject = "hi\nBcc: x@y" }, "subject must not contain CR or LF")
    raises({ subject = "a\0b" }, "subject must not contain control characters")
    raises({ from = "a@b.c\r\nBcc: x@y" }, "from must not contain control characters")
    raises({ to = { "ops@example.com", "x@y\nBcc: z@w" } }, "to[2] must not contain control")
    raises({ from = "Alerts <a@b.c>" }, 'from ("Alerts <a@b.c>") must be a bare address')
    raises({ to = {} }, "to must be a list of at least one address")
    raises({ to = "ops@example.com" }, "to must be a list of at least one address")
    raises({ subject = "\255" }, "subject is not valid UTF-8")
    raises({ body = "\255" }, "body is not valid UTF-8")
    raises({ body = 1 }, "body must be a string, got number")
    raises({ date = 1.5 }, "date must be a Unix time (an integer)")
    raises({ cc = {} }, "unknown option 'cc'")
  end)
end)
