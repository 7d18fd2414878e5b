-- The cert_info request option: the earliest notAfter of the server's
-- certificates, on a new connection and on a reused one, against the local
-- TLS fixture with a certificate made for 3 days.
local core = require("moonwatch.core")
local fixture = require("support.fixture")
local conditions = require("moonwatch.conditions")

local DAY = 86400

describe("core HTTPS cert_info", function()
  local srv, plain

  lazy_setup(function()
    srv = fixture.start{ tls = true, cert_days = 3 }
    plain = fixture.start{ tls = false }
  end)
  lazy_teardown(function()
    if srv then srv:stop() end
    if plain then plain:stop() end
  end)

  -- openssl dates the certificate from now, to the second
  local function about_three_days(expiry)
    assert.equals("integer", math.type(expiry))
    local left = expiry - os.time()
    assert.is_true(left > 3 * DAY - 600 and left <= 3 * DAY + 5,
      "cert_expiry is " .. left .. " s away, expected about 3 days")
  end

  it("gives cert_expiry on the first request and over the same connection", function()
    local req = core.http_prepare{ url = srv:url("/page"), ca_file = srv.ca_file,
                                   cert_info = true }
    core.run(function()
      local r1 = assert(req:perform())
      assert.equals(1, r1.connects)
      about_three_days(r1.cert_expiry)
      local r2 = assert(req:perform())
      assert.equals(0, r2.connects, "the connection was not reused")
      assert.equals(r1.cert_expiry, r2.cert_expiry)
    end)
  end)

  it("gives it on every new connection too, and without verification", function()
    local req = core.http_prepare{ url = srv:url("/page"), ca_file = srv.ca_file,
                                   cert_info = true, fresh_connection = true }
    core.run(function()
      for _ = 1, 2 do
        local r = assert(req:perform())
        assert.equals(1, r.connects)
        about_three_days(r.cert_expiry)
      end
      local r = assert(core.http_request{ url = srv:url("/page"), verify = false,
                                          cert_info = true })
      about_three_days(r.cert_expiry)
    end)
  end)

  it("gives the final response's certificate after a redirect", function()
    local target = srv:url("/page")
    local r = core.run(function()
      return assert(core.http_request{
        url = plain:url("/redirect-to?url=" .. target:gsub("[^%w]", function(c)
          return string.format("%%%02X", c:byte())
        end)),
        ca_file = srv.ca_file, cert_info = true, follow_redirects = true })
    end)
    assert.equals(1, r.redirects)
    about_three_days(r.cert_expiry)
  end)

  it("gives none without the option, or over plain http", function()
    core.run(function()
      local r = assert(core.http_request{ url = srv:url("/page"), ca_file = srv.ca_file })
      assert.is_nil(r.cert_expiry)
      r = assert(core.http_request{ url = plain:url("/page"), cert_info = true })
      assert.is_nil(r.cert_expiry)
    end)
  end)

  it("is checked as the other options", function()
    assert.is_true(core.http_check{ url = srv:url("/"), cert_info = true })
    local ok, err = pcall(core.http_check, { url = srv:url("/"), cert_info = "yes" })
    assert.is_false(ok)
    assert.matches("http request: option 'cert_info' must be a boolean, got string", err, 1, true)
  end)

  it("feeds cert_valid_days", function()
    local r = core.run(function()
      return assert(core.http_request{ url = srv:url("/page"), ca_file = srv.ca_file,
                                       cert_info = true })
    end)
    local judge = assert(conditions.compile({ cert_valid_days = 14 }, "monitors.tls"))
    assert.is_true(conditions.needs_cert(judge))
    local up, reason = judge(r)
    assert.is_false(up)
    -- 3.0 within the second the certificate was made, 2.9 after
    local date = os.date("!%Y-%m-%dT%H:%M:%SZ", r.cert_expiry):gsub("%p", "%%%0")
    local days = reason:match("^certificate expires in (%d%.%d) days %(" .. date
      .. "%), expected more than 14$")
    assert.is_truthy(days == "2.9" or days == "3.0", reason)
    assert.is_true((assert(conditions.compile{ cert_valid_days = 2 })(r)))
  end)
end)
