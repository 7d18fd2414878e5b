#!/bin/sh
# The benchmarks (see the README's "Performance" section).
#   bench/run.sh SCENARIO [options]    saturation, conditions, scale, startup,
#                                      soak, fresh, storm, valgrind, tcp (fresh,
#                                      then TCP probes) or all (every one but
#                                      soak, storm and tcp)
#   bench/run.sh core [seconds] [tasks]  the core's HTTP loop alone
#                                      (bench/http_checks.lua)
#   bench/run.sh metrics [monitors] [calls]  the metrics' cost per check and
#                                      per exposition (bench/metrics.lua)
#   bench/run.sh --help
# With no argument it runs `all`. It builds first (cmake --build build);
# BENCH_NO_BUILD=1 skips that. Processes the scripts start (nginx, moonwatch)
# are ended if the script is interrupted.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
  if [ ! -f build/CMakeCache.txt ]; then
    cmake -S . -B build >/dev/null
  fi
  cmake --build build -j"$(nproc)" >/dev/null
fi

pidfile=$(mktemp /tmp/moonwatch-bench-pids.XXXXXX)
cleanup() {
  # only the processes the scripts started and recorded, by pid
  if [ -s "$pidfile" ]; then
    while read -r pid; do
      case "$pid" in '' | *[!0-9]*) continue ;; esac
      kill -TERM "$pid" 2>/dev/null || true
    done <"$pidfile"
  fi
  rm -f "$pidfile"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
export BENCH_PIDFILE="$pidfile"

pin=
if command -v taskset >/dev/null 2>&1 && [ "$(nproc)" -ge 2 ]; then pin=yes; fi
status=0
if [ "${1:-}" = core ]; then
  # the client measured is this Lua process: CPU 0 (nginx goes to CPU 1)
  shift
  if [ -n "$pin" ]; then
    taskset -c "${BENCH_CLIENT_CPU:-0}" lua5.4 bench/http_checks.lua "$@" || status=$?
  else
    lua5.4 bench/http_checks.lua "$@" || status=$?
  fi
elif [ "${1:-}" = metrics ]; then
  shift
  if [ -n "$pin" ]; then
    taskset -c "${BENCH_CLIENT_CPU:-0}" lua5.4 bench/metrics.lua "$@" || status=$?
  else
    lua5.4 bench/metrics.lua "$@" || status=$?
  fi
else
  # the orchestrator mostly sleeps; it stays off CPU 0, moonwatch's
  [ $# -eq 0 ] && set -- all
  if [ -n "$pin" ]; then
    taskset -c 1 lua5.4 bench/bench.lua "$@" || status=$?
  else
    lua5.4 bench/bench.lua "$@" || status=$?
  fi
fi
exit "$status"
