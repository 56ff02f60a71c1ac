#!/usr/bin/env bash
# bench/compare.sh -- `make bench`: conduix-cp against the Go + Gin peer in one run of the shared harness
# (HARNESS/run.sh, default /work/shared/bench: the peer, conduix-cp from bench/conduix-cp.yaml, the h2o
# static-file and MariaDB point-select ceilings, the five scenarios, medians of its repetitions), then
# the Redis ceiling of the heartbeat: redis-benchmark -t set -c 64 on the harness's Redis, three times.
# The harness starts its MariaDB and Redis when they are not running; this script stops them afterwards
# when it was so (it leaves them alone when they were already up). Other arguments go to the harness
# (--reps, --duration, --scenarios …).
#
# usage: bench/compare.sh [HARNESS OPTIONS]            (or: make bench [BENCH_HARNESS=DIR] [BENCH_ARGS=…])
# Environment: HARNESS (the shared harness's folder), BIN (conduix-cp; _build/src/conduix-cp else
# src/conduix-cp), BENCH_REDIS_PORT (the harness's Redis, 6390), OUT (a copy of the table),
# ALSO_WORKERS (a number N: a third target, cp-wN, the same conduix-cp with server.workers N, measured
# in the same repetitions; e.g. ALSO_WORKERS=2 compares one worker per core with the default two).
set -euo pipefail
cd "$(dirname "$0")/.."
HARNESS=${HARNESS:-/work/shared/bench}
BIN=${BIN:-$( [ -x _build/src/conduix-cp ] && echo "$PWD/_build/src/conduix-cp" || echo "$PWD/src/conduix-cp" )}
RPORT=${BENCH_REDIS_PORT:-6390}
DBSOCK=/tmp/benchdb/mysql.sock
OUT=${OUT:-/tmp/conduix-bench-table.md}
[ -x "$HARNESS/run.sh" ] || { echo "bench: no harness at $HARNESS (set BENCH_HARNESS)" >&2; exit 2; }
[ -x "$BIN" ] || { echo "bench: no conduix-cp at $BIN (make first)" >&2; exit 2; }

db_up() { mysqladmin --no-defaults -uroot --socket="$DBSOCK" ping >/dev/null 2>&1; }
redis_up() { redis-cli -h 127.0.0.1 -p "$RPORT" ping 2>/dev/null | grep -q PONG; }
had_db=0 had_redis=0
db_up && had_db=1
redis_up && had_redis=1
stop_services() {
  [ "$had_redis" = 0 ] && redis_up && redis-cli -h 127.0.0.1 -p "$RPORT" shutdown nosave >/dev/null 2>&1 || true
  [ "$had_db" = 0 ] && db_up && mysqladmin --no-defaults -uroot --socket="$DBSOCK" shutdown >/dev/null 2>&1 || true
}
trap stop_services EXIT

targets=('gin|http://127.0.0.1:18081|/tmp/conduix-bench/bin/peer-gin' "cp|http://127.0.0.1:18082|$BIN serve -c bench/conduix-cp.yaml")
if [ -n "${ALSO_WORKERS:-}" ]; then
  case "$ALSO_WORKERS" in *[!0-9]* | '') echo "bench: ALSO_WORKERS must be a number" >&2; exit 2;; esac
  alt=$(mktemp /tmp/conduix-bench-wXXXXXX.yaml)
  trap 'rm -f "$alt"; stop_services' EXIT
  sed -e "s#^server:#server:\n  workers: $ALSO_WORKERS#" -e "s#pidfile: .*#pidfile: /tmp/conduix-cp-bench-w$ALSO_WORKERS.pid#" \
    bench/conduix-cp.yaml >"$alt"
  targets+=("cp-w$ALSO_WORKERS|http://127.0.0.1:18083|$BIN serve -c $alt")
fi
"$HARNESS/run.sh" --keep-services --out "$OUT" "$@" "${targets[@]}"

# The Redis ceiling: SET from 64 connections, one command at a time each, on the same Redis.
rates=()
for _ in 1 2 3; do
  r=$(redis-benchmark -h 127.0.0.1 -p "$RPORT" -t set -c 64 -n 300000 -q 2>/dev/null | tr '\r' '\n' |
    awk '/^SET:/ { for (i = 1; i <= NF; i++) if ($i == "requests") print $(i - 1) }' | tail -1)
  rates+=("${r:-0}")
done
med=$(printf '%s\n' "${rates[@]}" | sort -g | sed -n 2p)
row=$(printf '| heartbeat | ceiling: Redis SET (redis-benchmark -t set -c 64) | %.0f | %s | | | | | |' "$med" \
  "$(printf '%s\n' "${rates[@]}" | sort -g | awk 'NR==1{lo=$1} {hi=$1} END{printf "%.0f-%.0f", lo, hi}')")
echo "$row"
echo "$row" >>"$OUT"
echo "(table also in $OUT)"
