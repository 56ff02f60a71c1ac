#!/usr/bin/env bash
# bench/command-path.sh -- the command path: the time from POST /api/v1/pipelines/:id/start to the
# moment the agent receives its start_pipeline, at a fixed rate of starts. conduix-agent-sim plays the
# agents (they acknowledge over Redis and log each command with the time it arrived, --log); the driver
# (bench/command-path.pl) starts each seeded pipeline once at --rate a second from --clients
# connections and records when each start was sent and answered; the two are joined by run id.
#
# usage: bench/command-path.sh [options]        (from the project root, after make)
#   --bin PATH          conduix-cp (_build/src/conduix-cp, else src/conduix-cp)
#   --sim PATH          conduix-agent-sim (next to the binary)
#   --rate N            starts a second (200)
#   --duration S        seconds of starts (10); rate x duration pipelines are seeded
#   --agents N          simulated agents (50)
#   --sims N            simulator processes sharing them (2): one process reads every command of its agents
#   --clients N         driver processes, one connection each (4)
#   --workers N         server.workers (0 = 2 per core)
#   --keep              leave the server, the simulator and the database up afterwards
#
# Services: scripts/services under /tmp/conduix-bench-cmdpath (MariaDB 127.0.0.1:23356, Redis 26429),
# left running (stop them with `scripts/services stop /tmp/conduix-bench-cmdpath 23356 26429`); the
# environment's BENCH_SVC_DIR, BENCH_MYSQL_PORT, BENCH_REDIS_PORT and BENCH_PORT (18085) choose others.
# The driver, the simulator, MariaDB and Redis share the machine with the server under test.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN= SIM= RATE=200 DURATION=10 AGENTS=50 SIMS=2 CLIENTS=4 WORKERS=0 KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN="$2"; shift 2;;
    --sim) SIM="$2"; shift 2;;
    --rate) RATE="$2"; shift 2;;
    --duration) DURATION="$2"; shift 2;;
    --agents) AGENTS="$2"; shift 2;;
    --sims) SIMS="$2"; shift 2;;
    --clients) CLIENTS="$2"; shift 2;;
    --workers) WORKERS="$2"; shift 2;;
    --keep) KEEP=1; shift;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done
[ -n "$BIN" ] || BIN=$( [ -x _build/src/conduix-cp ] && echo _build/src/conduix-cp || echo src/conduix-cp )
[ -n "$SIM" ] || SIM="$(dirname "$BIN")/conduix-agent-sim"
SVC=${BENCH_SVC_DIR:-/tmp/conduix-bench-cmdpath} MYPORT=${BENCH_MYSQL_PORT:-23356} RPORT=${BENCH_REDIS_PORT:-26429} PORT=${BENCH_PORT:-18085}
DB=conduix_bench_cmdpath
N=$(awk -v r="$RATE" -v d="$DURATION" 'BEGIN{printf "%d", r * d}')
WORK=$(mktemp -d /tmp/cx-bench-cmdpath-XXXXXX)
. bench/lib.sh

bench_services

{
  bench_config cmdpath "$WORKERS"
  cat <<YAML
agents:
  heartbeat_timeout: 30s
  monitor_interval: 1s
YAML
} >"$WORK/config.yaml"

cleanup() {
  [ "$KEEP" = 1 ] && { echo "kept: server pid $(cat "$WORK/conduix-cp.pid" 2>/dev/null), sim pid ${SIMPID:-}, $WORK"; return; }
  [ -n "${SIMPID:-}" ] && kill $SIMPID 2>/dev/null || true
  [ -f "$WORK/conduix-cp.pid" ] && kill "$(cat "$WORK/conduix-cp.pid")" 2>/dev/null || true
  sleep 1
  mysql_ -e "DROP DATABASE IF EXISTS $DB" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN" serve -c "$WORK/config.yaml" >"$WORK/server.log" 2>&1 &
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$PORT/health" >/dev/null || { echo "server did not start:"; tail -20 "$WORK/server.log"; exit 1; }

# the pipelines, ids 00000000-0000-4000-8000-%012d as the shared harness seeds them
awk -v n="$N" 'BEGIN{ print "INSERT INTO pipelines (id, name, description, config_yaml, created_by, created_at, updated_at) VALUES";
  for (i = 1; i <= n; i++) printf "(\x27%s\x27,\x27cmd-%d\x27,\x27command path\x27,\x27sources:\\n  in:\\n    type: kafka\\n\x27,\x27bench\x27,NOW(3),NOW(3))%s\n",
    sprintf("00000000-0000-4000-8000-%012d", i), i, (i < n ? "," : ";") }' | mysql_ "$DB"
awk -v n="$N" 'BEGIN{ for (i = 1; i <= n; i++) printf "00000000-0000-4000-8000-%012d\n", i }' >"$WORK/ids"

SIMPIDS=
for k in $(seq 0 $((SIMS - 1))); do
  from=$((1 + k * AGENTS / SIMS)) to=$(((k + 1) * AGENTS / SIMS))
  "$SIM" -n $((to - from + 1)) --start-index "$from" --prefix cmd-agent- -p "$RPORT" -i 2s --metrics-interval 30s \
    --log "$WORK/sim.$k.log" -q >"$WORK/sim.$k.out" 2>&1 &
  SIMPIDS="$SIMPIDS $!"
done
SIMPID=${SIMPIDS# }
for _ in $(seq 300); do
  n=$(mysql_ -N "$DB" -e "SELECT COUNT(*) FROM agents WHERE status = 'online'")
  [ "$n" -ge "$AGENTS" ] && [ "$(cat "$WORK"/sim.*.log 2>/dev/null | grep -c '"event":"ready"')" -ge "$SIMS" ] && break
  sleep 0.1
done
echo "agents online: $n of $AGENTS"

TOKEN=$("$BIN" token --role operator --sub bench-cmdpath -c "$WORK/config.yaml")
# CPU (utime + stime, % of one core) of the simulator, the server's processes and MariaDB meanwhile
cpu() { local t=0 f; for f in "$@"; do set -- $(cut -d' ' -f14,15 "/proc/$f/stat" 2>/dev/null || echo "0 0"); t=$((t + $1 + $2)); done; echo $t; }
MASTER=$(cat "$WORK/conduix-cp.pid")
KIDS=$(pgrep -P "$MASTER" | tr '\n' ' ')
MYPID=$(cat "$SVC/mysql.pid")
c0=$(cpu $SIMPID) k0=$(cpu $KIDS) m0=$(cpu $MYPID) t0=$(date +%s.%N)
perl bench/command-path.pl --url "http://127.0.0.1:$PORT" --token "$TOKEN" --ids "$WORK/ids" --rate "$RATE" \
  --duration "$DURATION" --clients "$CLIENTS" --out "$WORK/starts.tsv"
c1=$(cpu $SIMPID) k1=$(cpu $KIDS) m1=$(cpu $MYPID) t1=$(date +%s.%N)
awk -v c=$((c1 - c0)) -v k=$((k1 - k0)) -v m=$((m1 - m0)) -v dt="$(awk -v a="$t1" -v b="$t0" 'BEGIN{print a - b}')" -v hz="$(getconf CLK_TCK)" \
  -v la="$(cut -d' ' -f1-3 /proc/loadavg)" \
  'BEGIN{printf "CPU meanwhile (%% of one core): simulators %.0f, conduix-cp %.0f, MariaDB %.0f; load average %s\n", 100*c/hz/dt, 100*k/hz/dt, 100*m/hz/dt, la}'
# how the starts were grouped: the batches of the workers' loop turns (a server without these metrics: none)
curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^conduix_api_start_batches_total /{b=$2} /^conduix_api_starts_batched_total /{n=$2}
  END{ if (b > 0) printf "start batches: %d for %d starts (%.2f a batch)\n", b, n, n / b; else print "start batches: not counted" }'
sleep 3 # the last commands reach the agents
cat "$WORK"/sim.*.log >"$WORK/sim.log"
perl bench/command-path.pl --join "$WORK/sim.log" --out "$WORK/starts.tsv"
echo "runs by status / commands by status:"
mysql_ -N "$DB" -e "SELECT status, COUNT(*) FROM pipeline_runs GROUP BY status; SELECT CONCAT('cmd ', status), COUNT(*) FROM agent_commands GROUP BY status"
