#!/usr/bin/env bash
# bench/schedules.sh -- the scheduler under load: N enabled schedules firing every minute on one instance,
# each fire a run on a simulated agent (conduix-agent-sim, acknowledging, runs completing by themselves
# after --run-for), for --minutes minutes. Prints the fire lag -- when each fire's start_pipeline reached
# its simulated agent (the simulator's --log) minus its scheduled time -- p50/p90/p99/max, and when each
# run was written (its created_at minus its scheduled_for, from MySQL: negative for a fire written ahead
# of its time, scheduler.prepare_ahead); the runs, skips, misses and failures, and the scheduler's CPU
# (utime + stime of the conduix-cp: scheduler process over the measured minutes, in % of one core).
#
# usage: bench/schedules.sh [options]        (from the project root, after make)
#   --bin PATH          conduix-cp (src/conduix-cp)
#   --sim PATH          conduix-agent-sim (src/conduix-agent-sim)
#   --schedules N       enabled schedules, one pipeline each (10000)
#   --agents N          simulated agents (100)
#   --minutes M         measured minutes (3), after the first minute, which is discarded
#   --mode burst|spread burst (default): every schedule is "* * * * *", all due at second 0 of each
#                       minute; spread: "@every 60s", their first fires spread over the minute
#   --run-for D         how long a simulated run lasts (20s)
#   --keep              leave the server, the simulator and the database up afterwards
#
# Services: scripts/services under /tmp/conduix-bench-schedules (MariaDB 127.0.0.1:23346, Redis 26419),
# left running (stop them with `scripts/services stop /tmp/conduix-bench-schedules 23346 26419`); the
# environment variables BENCH_SVC_DIR, BENCH_MYSQL_PORT, BENCH_REDIS_PORT and BENCH_PORT (the server's
# port, 18084) choose others.
# BENCH_GENLOG=1 also writes MariaDB's general log over the first measured minute and prints its
# statements by kind, per fire.
# Besides the scheduler's CPU it prints the dispatcher's and hbmon's, and the runs failed by the
# heartbeats' reconciliation.
# Caveat: the simulator, MariaDB and Redis share the machine with the server under test.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=src/conduix-cp SIM=src/conduix-agent-sim N=10000 AGENTS=100 MINUTES=3 MODE=burst RUNFOR=20s KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN="$2"; shift 2;;
    --sim) SIM="$2"; shift 2;;
    --schedules) N="$2"; shift 2;;
    --agents) AGENTS="$2"; shift 2;;
    --minutes) MINUTES="$2"; shift 2;;
    --mode) MODE="$2"; shift 2;;
    --run-for) RUNFOR="$2"; shift 2;;
    --keep) KEEP=1; shift;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done
case "$MODE" in burst|spread) ;; *) echo "--mode burst|spread" >&2; exit 2;; esac
SVC=${BENCH_SVC_DIR:-/tmp/conduix-bench-schedules} MYPORT=${BENCH_MYSQL_PORT:-23346} RPORT=${BENCH_REDIS_PORT:-26419}
PORT=${BENCH_PORT:-18084}
DB=conduix_bench_schedules
WORK=$(mktemp -d /tmp/cx-bench-schedules-XXXXXX)
. bench/lib.sh

bench_services

{
  bench_config schedules
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

"$SIM" -n "$AGENTS" --prefix bench-agent- -p "$RPORT" -i 10s --metrics-interval 30s --run-for "$RUNFOR" -q \
  --log "$WORK/commands.log" >"$WORK/sim.log" 2>&1 &
SIMPID=$!
for _ in $(seq 300); do
  n=$(mysql_ -N "$DB" -e "SELECT COUNT(*) FROM agents WHERE status = 'online'")
  [ "$n" -ge "$AGENTS" ] && break
  sleep 0.1
done
echo "agents online: $n of $AGENTS"

# Seed the pipelines and their schedules (ids 00000000-0000-4000-8000-%012d and ...-9000-...), with the
# first fire at the start of the next whole minute (burst) or spread over it (spread).
now=$(date +%s)
first=$(( (now / 60 + 1) * 60 ))
[ $((first - now)) -lt 15 ] && first=$((first + 60))
{
  for i in $(seq "$N"); do
    [ $(( (i - 1) % 1000 )) = 0 ] && echo "INSERT INTO pipelines (id, name, description, config_yaml, created_by, created_at, updated_at) VALUES"
    printf "('00000000-0000-4000-8000-%012d', 'sched-bench-%d', '', 'sources:\\\\n  in:\\\\n    type: kafka\\\\n', 'bench', NOW(3), NOW(3))" "$i" "$i"
    [ $(( i % 1000 )) = 0 ] || [ "$i" = "$N" ] && echo ";" || echo ","
  done
  for i in $(seq "$N"); do
    [ $(( (i - 1) % 1000 )) = 0 ] && echo "INSERT INTO schedules (id, pipeline_id, cron_expression, timezone, enabled, overlap_policy, next_run_at, created_by) VALUES"
    if [ "$MODE" = burst ]; then expr='* * * * *'; t=$first; else expr='@every 60s'; t=$((first + (i - 1) % 60)); fi
    printf "('00000000-0000-4000-9000-%012d', '00000000-0000-4000-8000-%012d', '%s', 'UTC', 1, 'skip', FROM_UNIXTIME(%d), 'bench')" "$i" "$i" "$expr" "$t"
    [ $(( i % 1000 )) = 0 ] || [ "$i" = "$N" ] && echo ";" || echo ","
  done
} | mysql_ "$DB" --init-command="SET time_zone = '+00:00'"
echo "$N schedules ($MODE), first fires at $(date -u -d @"$first" +%H:%M:%S) UTC"

# the first minute warms up; then the measured ones
start=$((first + 60))
sleep $((start - $(date +%s)))
master=$(cat "$WORK/conduix-cp.pid")
pid=$(pgrep -f '^conduix-cp: scheduler' -P "$master")
dpid=$(pgrep -f '^conduix-cp: dispatcher' -P "$master")
hpid=$(pgrep -f '^conduix-cp: hbmon' -P "$master")
ticks=$(getconf CLK_TCK)
cpu_() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# MariaDB's statement counters over the measured minutes (the whole server: this bench's database is
# the only one in use), for statements per fire, which do not depend on the machine's load
status_() { mysql_ -N -e "SHOW GLOBAL STATUS WHERE Variable_name IN ('Questions', 'Com_select', 'Com_insert',
    'Com_update', 'Com_delete', 'Com_commit', 'Com_begin', 'Com_rollback', 'Innodb_rows_inserted')"; }
# BENCH_GENLOG=1: MariaDB's general log over the first measured minute, for the statements by kind
[ "${BENCH_GENLOG:-0}" = 1 ] && mysql_ -e "SET GLOBAL general_log_file = '$WORK/general.log'; SET GLOBAL general_log = 1"
cpu0=$(cpu_ "$pid") dcpu0=$(cpu_ "$dpid") hcpu0=$(cpu_ "$hpid")
st0=$(status_)
t0=$(date +%s.%N)
if [ "${BENCH_GENLOG:-0}" = 1 ]; then
  sleep 60
  mysql_ -e "SET GLOBAL general_log = 0"
  sleep $((MINUTES * 60 - 60))
else
  sleep $((MINUTES * 60))
fi
cpu1=$(cpu_ "$pid") dcpu1=$(cpu_ "$dpid") hcpu1=$(cpu_ "$hpid")
st1=$(status_)
t1=$(date +%s.%N)
end=$((start + MINUTES * 60))
sleep 10    # the fires of the last measured minute are written

echo "measured: $MINUTES minutes from $(date -u -d @"$start" +%H:%M:%S) UTC, $AGENTS agents, runs last $RUNFOR"
# the fire lag: the first time each measured fire's start reached its agent, minus its scheduled time
mysql_ -N "$DB" -e "SELECT id, ROUND(UNIX_TIMESTAMP(scheduled_for) * 1000) FROM pipeline_runs
    WHERE scheduled_for >= FROM_UNIXTIME($start) AND scheduled_for < FROM_UNIXTIME($end)" >"$WORK/fires.tsv"
awk -F'\t' 'FNR == NR {due[$1] = $2; next}
     /"type":"start_pipeline"/ && match($0, /"run_id":"[^"]*"/) {
       id = substr($0, RSTART + 10, RLENGTH - 11)
       if (!(id in due) || (id in seen)) next
       match($0, /"ts":[0-9]+/); seen[id] = 1; print substr($0, RSTART + 5, RLENGTH - 5) - due[id]
     }
     END {for (id in due) { n++; if (!(id in seen)) missing++ }
          printf "%d fires, %d of their starts not heard by an agent\n", n, missing > "/dev/stderr"}' \
  "$WORK/fires.tsv" "$WORK/commands.log" 2>&1 >"$WORK/heard.txt"
sort -n "$WORK/heard.txt" |
  awk 'function q(p,  i) { i = int(NR * p) + 1; return v[i > NR ? NR : i] }
       {v[NR] = $1} END {if (NR) printf "fire lag (its start heard by its agent) p50 %d ms, p90 %d ms, p99 %d ms, max %d ms\n",
                                  q(0.5), q(0.9), q(0.99), v[NR]}'
mysql_ -N "$DB" -e "SELECT TIMESTAMPDIFF(MICROSECOND, scheduled_for, created_at) / 1000 FROM pipeline_runs
    WHERE scheduled_for >= FROM_UNIXTIME($start) AND scheduled_for < FROM_UNIXTIME($end) ORDER BY 1" |
  awk 'function q(p,  i) { i = int(NR * p) + 1; return v[i > NR ? NR : i] }
       {v[NR] = $1} END {if (NR) printf "run written (created_at - scheduled_for) p50 %d ms, p99 %d ms, min %d ms, max %d ms\n",
                                  q(0.5), q(0.99), v[1], v[NR]}'
mysql_ -N "$DB" -e "SELECT status, COUNT(*) FROM pipeline_runs GROUP BY status; SELECT 'skipped', SUM(skipped), 'missed', SUM(missed),
    'failures', SUM(failures) FROM schedules"
for p in "scheduler $cpu0 $cpu1" "dispatcher $dcpu0 $dcpu1" "hbmon $hcpu0 $hcpu1"; do
  echo "$p $t0 $t1 $ticks" | awk '{printf "%s CPU: %.1f %% of a core\n", $1, 100 * ($3 - $2) / $6 / ($5 - $4)}'
done
mysql_ -N "$DB" -e "SELECT 'failed by the reconciliation (no longer reported in heartbeats):', COUNT(*) FROM pipeline_runs
    WHERE status = 'failed' AND error_message LIKE '%no longer reports the pipeline%'"
fires=$((N * MINUTES))
{ echo "$st0" | sed 's/^/0 /'; echo "$st1" | sed 's/^/1 /'; } |
  awk -v f="$fires" '{v[$1, $2] = $3; k[$2] = 1}
       END {printf "MariaDB statements over the measured minutes, per fire (%d fires):", f;
            for (n in k) printf " %s %.1f", n, (v[1, n] - v[0, n]) / f; print ""}'
curl -s "http://127.0.0.1:$PORT/metrics" | grep -E "^conduix_(schedule|scheduler)" || true
if [ "${BENCH_GENLOG:-0}" = 1 ]; then
  # the statements of that minute by kind: literals, id lists and CASE lists folded
  echo "statements of the first measured minute by kind (per fire of that minute, $N fires):"
  awk -F'\t' -v f="$N" 'NF >= 2 && $(NF - 1) ~ / (Query|Execute)$/ {
      t = $NF; gsub(/\x27[^\x27]*\x27/, "?", t); gsub(/-?[0-9]+(\.[0-9]+)?/, "?", t); gsub(/WHEN \? THEN \?( WHEN \? THEN \?)*/, "WHEN..", t)
      gsub(/\([^()]*\)(, \([^()]*\))+/, "(..)..", t); gsub(/\?(, \?)+/, "?..", t); c[substr(t, 1, 110)]++; n++ }
      END { for (k in c) printf "%8d %6.2f  %s\n", c[k], c[k] / f, k; printf "%8d %6.2f  (all)\n", n, n / f }' \
    "$WORK/general.log" | sort -rn | head -45
fi
