#!/usr/bin/env bash
# bench/lifecycle.sh -- the start/stop cycle under load: wrk drives POST /pipelines/:id/start and /stop
# round the seeded pipelines (bench/wrk/startstop.lua) while conduix-agent-sim plays the agents (they
# acknowledge every command over Redis), then prints wrk's figures and what MySQL holds afterwards.
#
# usage: bench/lifecycle.sh [options]        (from the project root, after make)
#   --bin PATH          conduix-cp (src/conduix-cp)
#   --sim PATH          conduix-agent-sim (src/conduix-agent-sim)
#   --pipelines N       seeded pipelines (200)
#   --agents N          simulated agents (20)
#   --threads N         wrk threads = connections, one each (8)
#   --duration D        measured wrk duration (10s), after a 3 s warm-up that is discarded
#   --workers N         server.workers (0 = 2 per core)
#   --legacy            the agents never acknowledge (runs follow the heartbeats)
#   --keep              leave the server, the simulator and the database up afterwards
#
# Services: scripts/services under /tmp/conduix-bench-lifecycle (MariaDB 127.0.0.1:23336, Redis 26409),
# left running (stop them with `scripts/services stop /tmp/conduix-bench-lifecycle 23336 26409`).
# Caveat: wrk, the simulator, MariaDB and Redis share the machine with the server under test.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=src/conduix-cp SIM=src/conduix-agent-sim PIPES=200 AGENTS=20 THREADS=8 DURATION=10s WORKERS=0
LEGACY="" KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN="$2"; shift 2;;
    --sim) SIM="$2"; shift 2;;
    --pipelines) PIPES="$2"; shift 2;;
    --agents) AGENTS="$2"; shift 2;;
    --threads) THREADS="$2"; shift 2;;
    --duration) DURATION="$2"; shift 2;;
    --workers) WORKERS="$2"; shift 2;;
    --legacy) LEGACY=--legacy; shift;;
    --keep) KEEP=1; shift;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done
SVC=/tmp/conduix-bench-lifecycle MYPORT=23336 RPORT=26409 PORT=${BENCH_PORT:-18083}
DB=conduix_bench_lifecycle
WORK=$(mktemp -d /tmp/cx-bench-lifecycle-XXXXXX)
. bench/lib.sh

bench_services

{
  bench_config lifecycle "$WORKERS"
  cat <<YAML
agents:
  heartbeat_timeout: 30s
  monitor_interval: 1s
logging:
  level: warn
YAML
} >"$WORK/config.yaml"

cleanup() {
  [ "$KEEP" = 1 ] && { echo "kept: server pid $(cat "$WORK/conduix-cp.pid" 2>/dev/null), sim pid ${SIMPID:-}, $WORK"; return; }
  [ -n "${SIMPID:-}" ] && kill "$SIMPID" 2>/dev/null || true
  [ -f "$WORK/conduix-cp.pid" ] && kill "$(cat "$WORK/conduix-cp.pid")" 2>/dev/null || true
  sleep 1
  mysql_ -e "DROP DATABASE IF EXISTS $DB" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN" serve -c "$WORK/config.yaml" >"$WORK/server.log" 2>&1 &
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$PORT/health" >/dev/null || { echo "server did not start:"; tail -20 "$WORK/server.log"; exit 1; }

# seed the pipelines as the shared harness does (ids 00000000-0000-4000-8000-%012d)
{
  echo "INSERT INTO pipelines (id, name, description, config_yaml, created_by, created_at, updated_at) VALUES"
  for i in $(seq "$PIPES"); do
    printf "('00000000-0000-4000-8000-%012d', 'bench-%d', 'start/stop bench', 'sources:\\\\n  in:\\\\n    type: kafka\\\\n', 'bench', NOW(3), NOW(3))" "$i" "$i"
    [ "$i" -lt "$PIPES" ] && echo "," || echo ";"
  done
} | mysql_ "$DB"

"$SIM" -n "$AGENTS" --prefix bench-agent- -p "$RPORT" -i 2s --metrics-interval 5s $LEGACY -q >"$WORK/sim.log" 2>&1 &
SIMPID=$!
for _ in $(seq 200); do
  n=$(mysql_ -N "$DB" -e "SELECT COUNT(*) FROM agents WHERE status = 'online'")
  [ "$n" -ge "$AGENTS" ] && break
  sleep 0.1
done
echo "agents online: $n of $AGENTS"

TOKEN=$("$BIN" token --role operator --sub bench-lifecycle -c "$WORK/config.yaml")
export BENCH_TOKEN=$TOKEN BENCH_SEED_N=$PIPES BENCH_THREADS=$THREADS
wrk -t"$THREADS" -c"$THREADS" -d3s -s bench/wrk/startstop.lua "http://127.0.0.1:$PORT" >/dev/null
echo "wrk -t$THREADS -c$THREADS -d$DURATION, $PIPES pipelines, $AGENTS agents${LEGACY:+ (legacy)}:"
wrk -t"$THREADS" -c"$THREADS" -d"$DURATION" --latency -s bench/wrk/startstop.lua "http://127.0.0.1:$PORT" | grep -E "RESULT|Latency|Requests/sec|  50%|  99%"
sleep 3
echo "after 3 s: runs by status / commands by status"
mysql_ -N "$DB" -e "SELECT status, COUNT(*) FROM pipeline_runs GROUP BY status; SELECT CONCAT('cmd ', status), COUNT(*) FROM agent_commands GROUP BY status"
curl -s "http://127.0.0.1:$PORT/metrics" | grep -E "^conduix_(commands|runs)_" || true
