-- A monitors.lua with one probe of each kind besides HTTP: a TCP port that
-- accepts, a TLS certificate that must not expire soon, a DNS name that
-- must resolve and a host that must answer ping. Point them at your own
-- services:
--   moonwatch examples/probes.lua --set monitors.tcp.address=db.internal:5432 \
--     --set monitors.dns.name=www.example.org --set monitors.dns.server=192.0.2.53
-- or MOONWATCH_MONITORS__PING__HOST=192.0.2.1 ... The defaults reach public
-- hosts (example.com, as monitors.lua does, and 1.1.1.1 for ping).
local mw = require("moonwatch")
local providers = mw.providers

local config = providers.Configuration {
  log = {
    level = "INFO",
    format = "[%(asctime)s] [%(levelname)s] [%(name)s]: %(message)s",
  },
  monitors = {
    -- Up when the port accepts a connection within 2 s. To check a reply,
    -- add e.g. send = "PING\r\n" and expect.reply_contains = "+PONG" (Redis).
    tcp = { address = "example.com:80", check_every = 60, timeout = 5,
            expect = { max_response_ms = 2000 } },
    -- Up when the certificate chain verifies and expires in more than 14 days.
    tls = { address = "example.com:443", check_every = 3600, timeout = 10,
            expect = { cert_valid_days = 14 } },
    -- name: the name asked for; server "" asks the system's resolvers
    -- (/etc/resolv.conf), else "host[:port]".
    dns = { name = "example.com", type = "A", server = "", check_every = 60, timeout = 5,
            expect = { min_answers = 1 } },
    -- max_loss is a percentage: one of the four echo requests may be lost.
    -- Ping needs an ICMP socket (README "DNS queries and ping").
    ping = { host = "1.1.1.1", count = 4, interval = 1, timeout = 1, check_every = 60,
             expect = { max_loss = 25 } },
  },
}

-- DnsMonitor's own `name` names the monitor and `query` is the name asked
-- for, so its settings are read one by one (a mistyped one is then an error
-- of the command, naming the closest setting).
local function dns_monitor(s)
  return mw.DnsMonitor{ name = "dns", query = s.name, type = s.type,
                        server = s.server ~= "" and s.server or nil, timeout = s.timeout,
                        check_every = s.check_every, expect = s.expect }
end

return mw.container(function(c)
  c.config = config
  c.logging = providers.Resource(mw.log.setup, {
    level = config.log.level,
    format = config.log.format,
  })
  -- the others take their settings as a table: errors name the setting
  c.tcp_monitor = providers.Factory(mw.TcpMonitor, { options = config.monitors.tcp })
  c.tls_monitor = providers.Factory(mw.TlsMonitor, { options = config.monitors.tls })
  c.dns_monitor = providers.Factory(dns_monitor, {
    name = config.monitors.dns.name,
    type = config.monitors.dns.type,
    server = config.monitors.dns.server,
    timeout = config.monitors.dns.timeout,
    check_every = config.monitors.dns.check_every,
    expect = config.monitors.dns.expect,
  })
  c.ping_monitor = providers.Factory(mw.PingMonitor, { options = config.monitors.ping })
  -- Each monitor's state (UP, DOWN, PENDING), judged from its results.
  c.state = providers.Singleton(mw.State)
  c.dispatcher = providers.Factory(mw.Dispatcher, {
    monitors = providers.List(c.tcp_monitor, c.tls_monitor, c.dns_monitor, c.ping_monitor),
    consumers = providers.List(c.state),
  })
end)
