-- GET /metrics over the embedded server (core.metrics_serve, and
-- mw.Metrics:mount through mw.Endpoint): the whole exposition, streamed in
-- pieces, the same text render() gives.
local mw = require("moonwatch")
local core = mw.core

-- The exposition without the figures that change between reads: the
-- process's, and the transfers in flight (the scrape itself is one).
local function stable(text)
  local out = {}
  for line in text:gmatch("[^\n]+") do
    if not line:find("process_", 1, true) and not line:find("in_flight", 1, true) then
      out[#out + 1] = line
    end
  end
  return table.concat(out, "\n")
end

local function registry(n)
  local reg = core.metrics()
  for i = 1, n do
    reg:monitor("m" .. i):observe(i % 7 ~= 0, 0.012, 200, 648, 0, 0.001, 0.002, 0, 0.003, 0.0004)
  end
  return reg
end

local function serve(reg, path, fn)
  core.run(function()
    local srv = core.http_server{ listen = "127.0.0.1:0" }
    core.metrics_serve(srv, reg, path)
    local _, port = srv:address()
    local ok, err = pcall(fn, function(p, opts)
      opts = opts or {}
      opts.url = ("http://127.0.0.1:%d%s"):format(port, p)
      opts.max_body = 64 * 1024 * 1024
      return assert(core.http_request(opts))
    end)
    srv:close()
    if not ok then error(err, 0) end
  end)
end

describe("core.metrics_serve", function()
  it("answer GET with the whole exposition, over many loop turns, as render() writes it", function()
    local reg = registry(5000) -- about 5 MB: many 64 KiB pieces
    serve(reg, "/metrics", function(get)
      local r = get("/metrics")
      assert.equals(200, r.status)
      assert.equals("text/plain; version=0.0.4; charset=utf-8", r.headers["content-type"])
      assert.is_true(#r.body > 1024 * 1024)
      assert.equals(stable(reg:render()), stable(r.body))
    end)
  end)

  it("keep monitors added and removed between scrapes", function()
    local reg = registry(3)
    serve(reg, "/m", function(get)
      assert.truthy(get("/m").body:find('probe_success{monitor="m3"} 1', 1, true))
      reg:monitor("new"):observe(false, 0.5)
      local body = get("/m").body
      assert.truthy(body:find('probe_success{monitor="new"} 0', 1, true))
    end)
  end)

  it("answer HEAD without a body and other paths with 404", function()
    serve(registry(2), "/metrics", function(get)
      local r = get("/metrics", { method = "HEAD" })
      assert.equals(200, r.status)
      assert.equals("", r.body)
      assert.equals(404, get("/other").status)
    end)
  end)

  it("refuse a path that is not one, or is taken", function()
    core.run(function()
      local srv = core.http_server{ listen = "127.0.0.1:0" }
      local reg = core.metrics()
      local ok, err = pcall(core.metrics_serve, srv, reg, "metrics")
      assert.is_false(ok)
      assert.matches("the path must start with '/', got 'metrics'", err)
      core.metrics_serve(srv, reg, "/metrics")
      ok, err = pcall(core.metrics_serve, srv, reg, "/metrics")
      assert.is_false(ok)
      assert.matches("cannot serve /metrics", err)
      ok = pcall(core.metrics_serve, srv, {}, "/x")
      assert.is_false(ok)
      srv:close()
    end)
  end)
end)

describe("mw.Metrics mounted by mw.Endpoint", function()
  it("serve the results of the Dispatcher's monitors at /metrics", function()
    local metrics = mw.Metrics()
    local m = { name = "web", interval = 0.02, check = function()
      return mw.result.up({ status = 200, size = 10, duration = 0.01 })
    end }
    local d = mw.Dispatcher{ monitors = { m }, consumers = { mw.State(), metrics } }
    local _ <close> = mw.log.capture()
    core.run(function()
      local ep = mw.Endpoint{ listen = "127.0.0.1:0", dispatcher = d, metrics = metrics }
      local _, port = ep:address()
      d:start()
      local body
      local deadline = core.now() + 5
      repeat
        core.sleep(0.02)
        body = assert(core.http_request{ url = ("http://127.0.0.1:%d/metrics"):format(port) }).body
      until body:find('probe_success{monitor="web"} 1', 1, true) or core.now() > deadline
      d:stop()
      ep:close()
      assert.truthy(body:find('probe_success{monitor="web"} 1', 1, true))
      assert.truthy(body:find('moonwatch_monitor_state{monitor="web",state="up"} 1', 1, true))
    end)
  end)
end)
