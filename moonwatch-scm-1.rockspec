-- moonwatch as a rock: the C core (moonwatch.core) and the Lua modules, for
-- stock lua5.4. Build and install from a checkout, with no network:
--   luarocks --lua-version=5.4 make --deps-mode=none --tree=/tmp/x moonwatch-scm-1.rockspec
-- spec/packaging_spec.lua builds it and checks every lua/moonwatch/**/*.lua
-- and every c/*.c but c/main.c is listed below.
rockspec_format = "3.0"
package = "moonwatch"
version = "scm-1"

source = {
  -- `luarocks make` builds the checkout it runs in; nothing is fetched.
  url = "git+file://.",
}

description = {
  summary = "A monitoring daemon: monitors scripted in Lua 5.4 on a libuv event loop",
  detailed = [[
moonwatch runs HTTP monitors declared in a Lua file (monitors.lua) on a C core
built on libuv, libcurl and c-ares, wired with dependency-injection providers.
This rock installs the C core as the module moonwatch.core and the Lua
modules (require("moonwatch")).
]],
}

dependencies = {
  "lua >= 5.4",
}

-- Debian 12: libuv1-dev, libcurl4-openssl-dev, libc-ares-dev, libpcre2-dev,
-- libssl-dev, libsqlite3-dev, libhttp-parser-dev. curl/curl.h lives under /usr/include/<multiarch>/, where
-- LuaRocks does not look for headers, so libcurl is found by its library.
-- The conditions' JSON needs lua-cjson at run time (not a rock dependency:
-- Debian's package provides it).
external_dependencies = {
  UV = { header = "uv.h", library = "uv" },
  CURL = { library = "curl" },
  CARES = { header = "ares.h", library = "cares" },
  PCRE2 = { header = "pcre2.h", library = "pcre2-8" },
  OPENSSL = { header = "openssl/ssl.h", library = "ssl" },
  SQLITE = { header = "sqlite3.h", library = "sqlite3" },
  HTTP_PARSER = { header = "http_parser.h", library = "http_parser" },
}

build = {
  type = "builtin",
  modules = {
    -- The C core: everything in c/ but the executable's main.c (and c/test/).
    ["moonwatch.core"] = {
      sources = {
        "c/auth.c",
        "c/cert.c",
        "c/core.c",
        "c/dispatch.c",
        "c/dns_answer.c",
        "c/dns_cache.c",
        "c/dns_channel.c",
        "c/dns_lua.c",
        "c/dns_send.c",
        "c/http.c",
        "c/icmp.c",
        "c/icmp_lua.c",
        "c/log.c",
        "c/log_lua.c",
        "c/loop.c",
        "c/metrics.c",
        "c/metrics_lua.c",
        "c/metrics_serve.c",
        "c/procstat.c",
        "c/regex.c",
        "c/opts.c",
        "c/curl_kind.c",
        "c/regex_lua.c",
        "c/request.c",
        "c/request_lua.c",
        "c/resolver.c",
        "c/server.c",
        "c/server_http.c",
        "c/server_lua.c",
        "c/signals.c",
        "c/sleep.c",
        "c/store.c",
        "c/store_lua.c",
        "c/smtp.c",
        "c/smtp_lua.c",
        "c/task.c",
        "c/tcp.c",
        "c/tcp_lua.c",
        "c/tick_heap.c",
        "c/transfer.c",
        "c/tz.c",
        "c/tz_lua.c",
        "c/watchdog.c",
        "c/workq.c",
      },
      defines = { 'MOONWATCH_VERSION="0.1.0"', "_GNU_SOURCE" },
      incdirs = { "$(UV_INCDIR)", "$(CARES_INCDIR)", "$(PCRE2_INCDIR)", "$(OPENSSL_INCDIR)",
                  "$(SQLITE_INCDIR)", "$(HTTP_PARSER_INCDIR)" },
      libdirs = { "$(UV_LIBDIR)", "$(CURL_LIBDIR)", "$(CARES_LIBDIR)", "$(PCRE2_LIBDIR)",
                  "$(OPENSSL_LIBDIR)", "$(SQLITE_LIBDIR)", "$(HTTP_PARSER_LIBDIR)" },
      libraries = { "uv", "curl", "cares", "pcre2-8", "ssl", "crypto", "sqlite3", "http_parser", "m" },
    },

    -- lua/moonwatch/, every file.
    ["moonwatch"] = "lua/moonwatch/init.lua",
    ["moonwatch.cli"] = "lua/moonwatch/cli.lua",
    ["moonwatch.conditions"] = "lua/moonwatch/conditions.lua",
    ["moonwatch.config"] = "lua/moonwatch/config.lua",
    ["moonwatch.alerts"] = "lua/moonwatch/alerts/init.lua",
    ["moonwatch.alerts.clock"] = "lua/moonwatch/alerts/clock.lua",
    ["moonwatch.alerts.email"] = "lua/moonwatch/alerts/email.lua",
    ["moonwatch.alerts.memory_store"] = "lua/moonwatch/alerts/memory_store.lua",
    ["moonwatch.alerts.notifiers"] = "lua/moonwatch/alerts/notifiers.lua",
    ["moonwatch.alerts.outbox"] = "lua/moonwatch/alerts/outbox.lua",
    ["moonwatch.alerts.sqlite_store"] = "lua/moonwatch/alerts/sqlite_store.lua",
    ["moonwatch.config.convert"] = "lua/moonwatch/config/convert.lua",
    ["moonwatch.config.sources"] = "lua/moonwatch/config/sources.lua",
    ["moonwatch.config.tables"] = "lua/moonwatch/config/tables.lua",
    ["moonwatch.container"] = "lua/moonwatch/container.lua",
    ["moonwatch.dispatcher"] = "lua/moonwatch/dispatcher.lua",
    ["moonwatch.daemon"] = "lua/moonwatch/daemon.lua",
    ["moonwatch.endpoint"] = "lua/moonwatch/endpoint.lua",
    ["moonwatch.probes.tcp"] = "lua/moonwatch/probes/tcp.lua",
    ["moonwatch.result"] = "lua/moonwatch/result.lua",
    ["moonwatch.state"] = "lua/moonwatch/state.lua",
    ["moonwatch.store"] = "lua/moonwatch/store.lua",
    ["moonwatch.suggest"] = "lua/moonwatch/suggest.lua",
    ["moonwatch.http"] = "lua/moonwatch/http.lua",
    ["moonwatch.log"] = "lua/moonwatch/log.lua",
    ["moonwatch.maintenance"] = "lua/moonwatch/maintenance.lua",
    ["moonwatch.metrics"] = "lua/moonwatch/metrics.lua",
    ["moonwatch.mail"] = "lua/moonwatch/mail.lua",
    ["moonwatch.monitors"] = "lua/moonwatch/monitors.lua",
    ["moonwatch.probes.base"] = "lua/moonwatch/probes/base.lua",
    ["moonwatch.probes.dns"] = "lua/moonwatch/probes/dns.lua",
    ["moonwatch.probes.ping"] = "lua/moonwatch/probes/ping.lua",
    ["moonwatch.providers"] = "lua/moonwatch/providers.lua",
    ["moonwatch.providers.core"] = "lua/moonwatch/providers/core.lua",
    ["moonwatch.providers.factory"] = "lua/moonwatch/providers/factory.lua",
    ["moonwatch.providers.resource"] = "lua/moonwatch/providers/resource.lua",
    ["moonwatch.providers.values"] = "lua/moonwatch/providers/values.lua",
    ["moonwatch.testing"] = "lua/moonwatch/testing.lua",
  },
}
