#!/usr/bin/env bash
# bench/scenarios.sh -- conduix-cp's own wrk scenarios (bench/wrk/*.lua) against one server on a private
# MariaDB and Redis: health, get, list, create, heartbeat (the five of the shared harness), notfound (an
# authenticated 404) and commands (the REST command poll), each after a warm-up, repeated; prints one
# table of medians. The start/stop cycle is bench/lifecycle.sh's (it needs agents).
#
# usage: bench/scenarios.sh [--bin PATH] [--reps N] [--duration D] [--conns N] [--threads N] [--workers N]
#                           [--scenarios health,get,...]           (from the project root, after make)
# Services: scripts/services under /tmp/conduix-bench-scenarios (MariaDB 23366, Redis 26439), left running.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN= REPS=3 DURATION=10s CONNS=64 THREADS=2 WORKERS=0
SCENARIOS=health,get,list,create,heartbeat,notfound,commands
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN="$2"; shift 2;;
    --reps) REPS="$2"; shift 2;;
    --duration) DURATION="$2"; shift 2;;
    --conns) CONNS="$2"; shift 2;;
    --threads) THREADS="$2"; shift 2;;
    --workers) WORKERS="$2"; shift 2;;
    --scenarios) SCENARIOS="$2"; shift 2;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done
[ -n "$BIN" ] || BIN=$( [ -x _build/src/conduix-cp ] && echo _build/src/conduix-cp || echo src/conduix-cp )
SVC=/tmp/conduix-bench-scenarios MYPORT=23366 RPORT=26439 PORT=${BENCH_PORT:-18086} DB=conduix_bench_scenarios
WORK=$(mktemp -d /tmp/cx-bench-scenarios-XXXXXX)
. bench/lib.sh
scripts/services start "$SVC" "$MYPORT" "$RPORT" >/dev/null
export BENCH_WRK_DIR="$PWD/bench/wrk" BENCH_SEED_N=1000

bench_config scenarios "$WORKERS" >"$WORK/config.yaml"

SPID=
stop_server() { [ -n "$SPID" ] && { kill "$SPID" 2>/dev/null; wait "$SPID" 2>/dev/null || true; }; SPID=; }
trap 'stop_server; rm -rf "$WORK"' EXIT

# start_server -- a fresh database and Redis, the server, the 1,000 pipelines of the shared harness
start_server() {
  bench_fresh
  "$BIN" serve -c "$WORK/config.yaml" >>"$WORK/server.log" 2>&1 &
  SPID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
  awk -v n="$BENCH_SEED_N" 'BEGIN{ print "INSERT INTO pipelines (id,name,description,config_yaml,created_by,created_at,updated_at) VALUES";
    for (i = 1; i <= n; i++) printf "(\x27%s\x27,\x27pipeline-%04d\x27,\x27Seeded pipeline %d for benchmarking\x27,\x27sources:\\n  in:\\n    type: kafka\\n    topic: events-%d\\nsinks:\\n  out:\\n    type: s3\\n    bucket: archive\\n\x27,\x27seed-user\x27,TIMESTAMP(\x272026-01-01 00:00:00\x27) + INTERVAL %d SECOND,TIMESTAMP(\x272026-01-01 00:00:00\x27) + INTERVAL %d SECOND)%s\n",
      sprintf("00000000-0000-4000-8000-%012d", i), i, i, i, i, i, (i < n ? "," : ";") }' | mysql_ "$DB"
}

RAW="$WORK/raw.tsv"
: >"$RAW"
for rep in $(seq "$REPS"); do
  start_server
  export BENCH_TOKEN=$("$BIN" token -c "$WORK/config.yaml" --role admin --sub bench-user-0001 --email bench@example.com)
  for s in ${SCENARIOS//,/ }; do
    wrk -t"$THREADS" -c"$CONNS" -d3s -s "bench/wrk/$s.lua" "http://127.0.0.1:$PORT" >/dev/null 2>&1 || true
    line=$(wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "bench/wrk/$s.lua" "http://127.0.0.1:$PORT" | grep '^RESULT' || true)
    eval "$(echo "${line:-RESULT rps=0 p50_us=0 p99_us=0 non2xx=-1 sockerr=-1 requests=0}" | sed 's/^RESULT //')"
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$rps" "$p50_us" "$p99_us" "$non2xx" "$sockerr" >>"$RAW"
    echo "rep $rep $s: $rps req/s, p50 ${p50_us} us, p99 ${p99_us} us, non-2xx $non2xx" >&2
  done
  stop_server
done

echo "| scenario | req/s (median) | p50 ms | p99 ms | non-2xx |"
echo "|---|---:|---:|---:|---:|"
for s in ${SCENARIOS//,/ }; do
  awk -F'\t' -v s="$s" '$1 == s' "$RAW" | awk -F'\t' '{r[NR]=$2; a[NR]=$3; b[NR]=$4; n[NR]=$5} END {
      m = int((NR + 1) / 2); asort(r); asort(a); asort(b); asort(n)
      printf "| %s | %.0f | %.2f | %.2f | %d |\n", $1, r[m], a[m] / 1000, b[m] / 1000, n[m] }'
done
