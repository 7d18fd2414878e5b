#!/bin/sh
# Runs bench/http_checks.lua: builds moonwatch.core if needed, then runs the
# benchmark on CPU 0 (nginx goes to CPU 1, wrk to CPU 0).
#   bench/run.sh [seconds] [tasks]
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [ ! -f build/lib/moonwatch/core.so ]; then
  cmake -S . -B build
fi
cmake --build build -j"$(nproc)" >/dev/null
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then
  exec taskset -c "${BENCH_CLIENT_CPU:-0}" lua5.4 bench/http_checks.lua "$@"
fi
exec lua5.4 bench/http_checks.lua "$@"
