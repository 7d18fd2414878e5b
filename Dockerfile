# moonwatch on Debian 12.
#
#   docker build -t moonwatch .
#   docker run --rm moonwatch                  # the built-in /app/monitors.lua
#   docker run --rm -v "$PWD/monitors.lua:/app/monitors.lua:ro" moonwatch
#   docker run --rm moonwatch --check          # any moonwatch option works too
#
# Stages: `prometheus` is the compose file's optional Prometheus; `deps` has the build packages (scripts/deps build); `dev` adds the
# test tools for docker-compose.yml (tests run on the mounted checkout);
# `build` builds exactly as the README's Quick start does (scripts/build:
# scripts/deps build, then CMake) and installs into /opt/moonwatch; `runtime`,
# the last and default stage, is the daemon with only its shared libraries.
# Only scripts/deps reaches `deps` and `dev`, so editing the code does not
# invalidate their layers (apt-get runs again only when scripts/deps changes),
# and the classic builder, which builds every stage up to the target, stops
# at `dev` before the code is copied.

FROM debian:bookworm-slim AS deps
WORKDIR /src
COPY scripts/deps scripts/deps
RUN scripts/deps build && rm -rf /var/lib/apt/lists/*

# For `docker compose run --rm monitor scripts/test`: the build packages plus
# the test ones (scripts/deps test), installed here as root so a test run needs
# neither root nor the network. The checkout is mounted at /code.
FROM deps AS dev
RUN scripts/deps test && rm -rf /var/lib/apt/lists/*
ENV PYTHONDONTWRITEBYTECODE=1
WORKDIR /code
CMD ["scripts/run", "monitors.lua"]

# The compose file's optional Prometheus (profile `prometheus`): Debian's
# package, scraping the monitor service (deploy/prometheus.yml, mounted).
FROM debian:bookworm-slim AS prometheus
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus \
 && rm -rf /var/lib/apt/lists/*
COPY deploy/prometheus.yml /etc/prometheus/prometheus.yml
USER prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus", "--config.file=/etc/prometheus/prometheus.yml", \
            "--storage.tsdb.path=/var/lib/prometheus/metrics2"]

FROM deps AS build
# .dockerignore keeps the host's build/ out: its CMake cache names the host's path.
COPY . .
# The install puts bin/moonwatch, lib/lua/5.4/moonwatch/core.so and lua/ as
# share/lua/5.4/moonwatch/ (CMakeLists.txt's install() lines); the executable's
# compiled-in module directory is that last one.
RUN scripts/build -DMOONWATCH_LUA_DIR=/opt/moonwatch/share/lua/5.4 \
 && cmake --install build --prefix /opt/moonwatch \
 && test -f /opt/moonwatch/share/lua/5.4/moonwatch/cli.lua

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libuv1 libcurl4 libc-ares2 libpcre2-8-0 libssl3 libsqlite3-0 libhttp-parser2.9 \
      liblua5.4-0 lua-cjson \
      ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system moonwatch \
 && useradd --system --gid moonwatch --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin moonwatch
COPY --from=build /opt/moonwatch /opt/moonwatch
ENV MOONWATCH_LUA_DIR=/opt/moonwatch/share/lua/5.4 \
    PATH=/opt/moonwatch/bin:$PATH
WORKDIR /app
# The default monitors; a file mounted at /app/monitors.lua replaces it.
COPY monitors.lua /app/monitors.lua
USER moonwatch
# Fails the image build if a library or a module is missing, or the default
# monitors.lua does not load.
RUN moonwatch --check monitors.lua
STOPSIGNAL SIGTERM
ENTRYPOINT ["/opt/moonwatch/bin/moonwatch"]
CMD ["monitors.lua"]
