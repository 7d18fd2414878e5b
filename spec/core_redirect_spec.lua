-- moonwatch.core: what a followed redirect may carry. Credentials stay with
-- the origin (scheme, host, port) they were written for, as curl -L and
-- browsers keep them; an https page cannot send a check to plain http. Two
-- local servers: the second echoes the headers it got.
local core = require("moonwatch.core")
local cjson = require("cjson")
local fixture = require("support.fixture")

local SECRETS = {
  Authorization = "Bearer s3cret",
  Cookie = "session=abc",
  ["Proxy-Authorization"] = "Basic cHJveHk6cHc=",
  ["X-Keep"] = "kept",
}

local function escape(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

-- A URL on from that redirects (with status) to the URL to.
local function redirect(from, to, status)
  return from .. "/redirect-to?url=" .. escape(to) .. (status and ("&status=" .. status) or "")
end

local function request(opts)
  return core.run(function() return core.http_request(opts) end)
end

-- The request the echoing server got, decoded.
local function echoed(r, msg)
  assert.is_table(r, msg)
  assert.equals(200, r.status)
  return cjson.decode(r.body)
end

describe("a followed redirect", function()
  local a, b, tls

  lazy_setup(function()
    a = fixture.start{ tls = false }
    b = fixture.start{ tls = false }
    tls = fixture.start{ tls = true }
  end)
  lazy_teardown(function()
    for _, s in ipairs({ a, b, tls }) do if s then s:stop() end end
  end)
  after_each(function() assert.same({ tasks = 0, handles = 0 }, core.stats()) end)

  local function base(srv, host) return ("http://%s:%d"):format(host or "127.0.0.1", srv.port) end

  it("to another port drops Authorization, Cookie and Proxy-Authorization", function()
    local r, msg = request{ url = redirect(base(a), base(b) .. "/echo", 307),
                            follow_redirects = true, headers = SECRETS }
    local got = echoed(r, msg).headers
    assert.is_nil(got.authorization)
    assert.is_nil(got.cookie)
    assert.is_nil(got["proxy-authorization"])
    assert.equals("kept", got["x-keep"])
    assert.equals(1, r.redirects)
  end)

  it("to another host on the same port drops them too", function()
    local r, msg = request{ url = redirect(base(a, "localhost"), base(a) .. "/echo", 307),
                            follow_redirects = true, headers = SECRETS }
    local got = echoed(r, msg).headers
    assert.is_nil(got.authorization)
    assert.is_nil(got.cookie)
    assert.equals("kept", got["x-keep"])
  end)

  it("within the origin keeps them", function()
    local r, msg = request{ url = redirect(base(a), base(a) .. "/echo", 307),
                            follow_redirects = true, headers = SECRETS }
    local got = echoed(r, msg).headers
    assert.equals("Bearer s3cret", got.authorization)
    assert.equals("session=abc", got.cookie)
    assert.equals("Basic cHJveHk6cHc=", got["proxy-authorization"])
  end)

  it("does not send them back once it has left the origin", function()
    local back = redirect(base(b), base(a) .. "/echo", 307)
    local r, msg = request{ url = redirect(base(a), back, 307),
                            follow_redirects = true, headers = SECRETS }
    local got = echoed(r, msg).headers
    assert.equals(2, r.redirects)
    assert.is_nil(got.authorization)
    assert.is_nil(got.cookie)
  end)

  it("keeps them everywhere with trust_redirects = true", function()
    local r, msg = request{ url = redirect(base(a), base(b) .. "/echo", 307),
                            follow_redirects = true, trust_redirects = true, headers = SECRETS }
    local got = echoed(r, msg).headers
    assert.equals("Bearer s3cret", got.authorization)
    assert.equals("session=abc", got.cookie)
  end)

  it("leaves no stripped headers behind in the transfers it reuses", function()
    local first, again, other = core.run(function()
      local req = core.http_prepare{ url = redirect(base(a), base(b) .. "/echo", 302),
                                     follow_redirects = true, headers = SECRETS }
      local r1 = req:perform()
      local r2 = req:perform()
      return r1, r2, core.http_request{ url = base(a) .. "/echo", headers = SECRETS }
    end)
    assert.is_nil(echoed(first).headers.authorization)
    assert.is_nil(echoed(again).headers.authorization)
    assert.equals("Bearer s3cret", echoed(other).headers.authorization)
  end)

  describe("of a POST", function()
    local function post(status)
      return request{ method = "POST", body = "payload", follow_redirects = true,
                      url = redirect(base(a), base(a) .. "/echo", status) }
    end

    it("with 307 and 308 repeats the method and the body", function()
      for _, status in ipairs({ 307, 308 }) do
        local got = echoed(post(status))
        assert.equals("POST", got.method)
        assert.equals("payload", got.body)
      end
    end)

    it("with 301, 302 and 303 goes on as a GET without the body", function()
      for _, status in ipairs({ 301, 302, 303 }) do
        local got = echoed(post(status))
        assert.equals("GET", got.method, "status " .. status)
        assert.equals("", got.body, "status " .. status)
        assert.is_nil(got.headers["content-length"], "status " .. status)
      end
    end)

    it("of a PUT with 303 goes on as a GET", function()
      local got = echoed(request{ method = "PUT", body = "x", follow_redirects = true,
                                  url = redirect(base(a), base(a) .. "/echo", 303) })
      assert.equals("GET", got.method)
      assert.equals("", got.body)
    end)
  end)

  describe("from https to http", function()
    local function requests_of(srv)
      local r = assert(request{ url = base(srv) .. "/stats" })
      return cjson.decode(r.body).requests
    end

    it("is refused as insecure_redirect, and the http server gets nothing", function()
      local before = requests_of(b)
      local r, msg, kind = request{
        url = redirect("https://127.0.0.1:" .. tls.port, base(b) .. "/echo"),
        ca_file = tls.ca_file, follow_redirects = true, headers = SECRETS }
      assert.is_nil(r)
      assert.equals("insecure_redirect", kind)
      assert.matches("^insecure_redirect: refused to follow a redirect from https to plain http "
        .. "%(http://127%.0%.0%.1:%d+/echo%); set allow_insecure_redirects = true", msg)
      assert.equals(before + 1, requests_of(b)) -- only the /stats above
    end)

    it("is followed with allow_insecure_redirects = true, without the credentials", function()
      local r, msg = request{
        url = redirect("https://127.0.0.1:" .. tls.port, base(b) .. "/echo"),
        ca_file = tls.ca_file, follow_redirects = true, allow_insecure_redirects = true,
        headers = SECRETS }
      local got = echoed(r, msg).headers
      assert.is_nil(got.authorization)
      assert.equals("kept", got["x-keep"])
    end)
  end)

  it("from http to https is followed, without the credentials (another origin)", function()
    local r, msg = request{
      url = redirect(base(a), "https://127.0.0.1:" .. tls.port .. "/echo"),
      ca_file = tls.ca_file, follow_redirects = true, headers = SECRETS }
    local got = echoed(r, msg).headers
    assert.is_nil(got.authorization)
    assert.equals("kept", got["x-keep"])
  end)
end)
