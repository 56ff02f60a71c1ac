#!/usr/bin/env bash
# bench/create.sh -- POST /api/v1/pipelines with names unique across runs (bench/wrk/create_unique.lua),
# against conduix-cp on a private MariaDB and Redis. The shared harness's `create` scenario repeats the
# warm-up's names in the measured run, which conduix-cp (unique names, 409) answers with errors.
#
# usage: bench/create.sh [--reps N] [--duration D] [--conns N]      (from the project root, after make)
# Services: scripts/services under /tmp/conduix-bench-create (MariaDB 23346, Redis 26419), left running.
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=3 DURATION=10s CONNS=64
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) REPS="$2"; shift 2;;
    --duration) DURATION="$2"; shift 2;;
    --conns) CONNS="$2"; shift 2;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done
SVC=/tmp/conduix-bench-create PORT=${BENCH_PORT:-18084}
scripts/services start "$SVC" 23346 26419 >/dev/null
mariadb --no-defaults -uroot --socket="$SVC/mysql.sock" -e \
  "DROP DATABASE IF EXISTS conduix_bench_create; CREATE DATABASE conduix_bench_create CHARACTER SET utf8mb4"
export PORT DB_HOST=127.0.0.1 DB_PORT=23346 DB_USER=conduix DB_PASSWORD=conduix DB_NAME=conduix_bench_create
export REDIS_HOST=127.0.0.1 REDIS_PORT=26419 JWT_SECRET=bench-secret-change-me-0123456789abcdef
src/conduix-cp serve -c bench/conduix-cp.yaml >/tmp/conduix-bench-create.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
export BENCH_TOKEN=$(src/conduix-cp token -c bench/conduix-cp.yaml --role admin --sub bench-user-0001)
for rep in $(seq 1 "$REPS"); do
  wrk -t2 -c"$CONNS" -d3s -s bench/wrk/create_unique.lua "http://127.0.0.1:$PORT" >/dev/null 2>&1
  wrk -t2 -c"$CONNS" -d"$DURATION" --latency -s bench/wrk/create_unique.lua "http://127.0.0.1:$PORT" | grep '^RESULT' |
    sed "s/^/rep$rep /"
done
echo "rows: $(mariadb --no-defaults -uroot --socket="$SVC/mysql.sock" -N -e 'SELECT COUNT(*) FROM conduix_bench_create.pipelines')"
