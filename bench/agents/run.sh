#!/bin/sh
# bench/agents/run.sh -- the agent-scale benchmark (not a test): AGENTS simulated agents beat every
# INTERVAL seconds into Redis (conduix-agent-sim), conduix-cp watches them with heartbeat_timeout
# TIMEOUT_S and monitor_interval MONITOR. It measures
#   - discovery: the time until every agent is recorded online;
#   - hbmon's CPU share (utime + stime from /proc/PID/stat) over WINDOW seconds of steady state, and the
#     CPU of MariaDB, Redis and the simulators over the same window;
#   - the offline-detection lag: SAMPLE of the agents (a second simulator) stop beating at once; for each,
#     the time from its last beat + the timeout until the control plane recorded it offline
#     (agents.status_changed_at), p50/p99/max; and the API's count of offline agents.
# Everything runs on loopback against a private MariaDB and Redis (scripts/services, ports 23326 and
# 26399, data in /tmp/cx-bench-agents), so the shared test services are not disturbed. Bounded: about
# three minutes at 100,000 agents.
#
# usage: bench/agents/run.sh          (environment: AGENTS SAMPLE INTERVAL TIMEOUT_S MONITOR WINDOW KEEP=1)
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${CX_BIN:-$top/src/conduix-cp}
SIM=${CX_SIM:-$top/src/conduix-agent-sim}
DIR=${BENCH_DIR:-/tmp/cx-bench-agents}
MYPORT=${BENCH_MYSQL_PORT:-23326}
RPORT=${BENCH_REDIS_PORT:-26399}
HPORT=${BENCH_HTTP_PORT:-28990}
AGENTS=${AGENTS:-100000}
SAMPLE=${SAMPLE:-1000}
INTERVAL=${INTERVAL:-10}
TIMEOUT_S=${TIMEOUT_S:-30}
MONITOR=${MONITOR:-1s}
WINDOW=${WINDOW:-60}
DB=cx_bench_agents
SECRET=bench-agents-secret-0123456789abcdef0123
HZ=$(getconf CLK_TCK)

say() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
sql() { mariadb --no-defaults -uconduix -pconduix -h127.0.0.1 -P"$MYPORT" -N -B "$DB" -e "$1"; }
cpu_ticks() { # pid -> utime+stime in clock ticks (0 when gone)
    awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0
}
wait_for() { # seconds description command...
    secs=$1; what=$2; shift 2
    end=$(($(date +%s) + secs))
    while ! "$@"; do
        [ "$(date +%s)" -lt "$end" ] || { say "gave up after ${secs}s waiting for $what"; return 1; }
        sleep 0.5
    done
}

pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    [ -n "${master:-}" ] && kill "$master" 2>/dev/null || true
    sleep 1
    if [ "${KEEP:-0}" != 1 ]; then "$top/scripts/services" stop "$DIR" "$MYPORT" "$RPORT" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT INT TERM

mkdir -p "$DIR"
exec 9>"$DIR.lock"
flock -n 9 || { say "another run holds $DIR.lock"; exit 1; }
if curl -s -o /dev/null "http://127.0.0.1:$HPORT/health"; then say "port $HPORT is in use"; exit 1; fi
say "services in $DIR (MariaDB $MYPORT, Redis $RPORT)"
"$top/scripts/services" start "$DIR" "$MYPORT" "$RPORT" >/dev/null 9>&-
redis-cli -p "$RPORT" FLUSHALL >/dev/null
mariadb --no-defaults -uconduix -pconduix -h127.0.0.1 -P"$MYPORT" -e "DROP DATABASE IF EXISTS $DB; CREATE DATABASE $DB"

cat >"$DIR/config.yaml" <<EOF
server: {host: 127.0.0.1, port: $HPORT, workers: 2, pidfile: $DIR/cp.pid}
database: {host: 127.0.0.1, port: $MYPORT, user: conduix, password: conduix, name: $DB}
redis: {host: 127.0.0.1, port: $RPORT}
auth: {jwt_secret: $SECRET}
agents: {heartbeat_timeout: ${TIMEOUT_S}s, monitor_interval: $MONITOR}
logging: {level: info, format: text, file: $DIR/server.log}
migrations: {auto: true, dir: $top/migrations}
rate_limit: {enabled: false}
EOF
: >"$DIR/server.log"
"$BIN" serve -c "$DIR/config.yaml" >>"$DIR/server.log" 2>&1 9>&- &
master=$!
wait_for 30 "/health" sh -c "curl -sf http://127.0.0.1:$HPORT/health >/dev/null"
hbmon=""
for p in $(pgrep -P "$master"); do
    case "$(tr '\0' ' ' <"/proc/$p/cmdline")" in "conduix-cp: hbmon"*) hbmon=$p ;; esac
done
[ -n "$hbmon" ] || { say "no hbmon child"; exit 1; }
say "conduix-cp $master, hbmon $hbmon; timeout ${TIMEOUT_S}s, monitor_interval $MONITOR"

main=$((AGENTS - SAMPLE))
t_start=$(date +%s.%N)
"$SIM" -p "$RPORT" -n "$main" --prefix bench- -i "$INTERVAL" -q 2>"$DIR/sim-main.err" 9>&- &
sim_main=$!
"$SIM" -p "$RPORT" -n "$SAMPLE" --prefix bstop- -i "$INTERVAL" -q --beats-file "$DIR/beats.jsonl" 2>"$DIR/sim-sample.err" 9>&- &
sim_sample=$!
pids="$sim_main $sim_sample"
say "$AGENTS simulated agents ($main + $SAMPLE to stop), one beat every ${INTERVAL}s"

online() { [ "$(sql "SELECT COUNT(*) FROM agents WHERE status = 'online'")" -ge "$AGENTS" ]; }
wait_for 300 "$AGENTS agents online" online
t_online=$(date +%s.%N)
discovery=$(echo "$t_online - $t_start" | bc)
say "all $AGENTS online after ${discovery}s; settling for one interval"
sleep "$INTERVAL"

mysqld=$(cat "$DIR/mysql.pid")
redis=$(cat "$DIR/redis.pid")
h0=$(cpu_ticks "$hbmon"); m0=$(cpu_ticks "$mysqld"); r0=$(cpu_ticks "$redis"); s0=$(($(cpu_ticks "$sim_main") + $(cpu_ticks "$sim_sample")))
w0=$(date +%s.%N)
say "measuring CPU for ${WINDOW}s"
sleep "$WINDOW"
h1=$(cpu_ticks "$hbmon"); m1=$(cpu_ticks "$mysqld"); r1=$(cpu_ticks "$redis"); s1=$(($(cpu_ticks "$sim_main") + $(cpu_ticks "$sim_sample")))
w1=$(date +%s.%N)
pct() { echo "scale=1; 100 * ($2 - $1) / $HZ / ($w1 - $w0)" | bc; }
cpu_hbmon=$(pct "$h0" "$h1"); cpu_mysql=$(pct "$m0" "$m1"); cpu_redis=$(pct "$r0" "$r1"); cpu_sim=$(pct "$s0" "$s1")
[ "$(cpu_ticks "$hbmon")" != 0 ] || { say "hbmon $hbmon died during the window"; exit 1; }

say "stopping the beats of $SAMPLE agents"
kill -USR1 "$sim_sample"
wait_for 30 "the last beats file" test -s "$DIR/beats.jsonl"
offline() { [ "$(sql "SELECT COUNT(*) FROM agents WHERE id LIKE 'bstop-%' AND status = 'offline'")" -ge "$SAMPLE" ]; }
wait_for $((TIMEOUT_S + 60)) "$SAMPLE agents offline" offline
api_offline=$(curl -s -H "Authorization: Bearer $("$BIN" token --role viewer --sub bench -c "$DIR/config.yaml")" \
    "http://127.0.0.1:$HPORT/api/v1/agents?status=offline&page_size=1" | sed -n 's/.*"total":\([0-9]*\).*/\1/p')
still_online=$(sql "SELECT COUNT(*) FROM agents WHERE id LIKE 'bench-%' AND status = 'online'")
sql "SELECT id, CAST(ROUND(UNIX_TIMESTAMP(status_changed_at) * 1000) AS SIGNED) FROM agents WHERE id LIKE 'bstop-%'" >"$DIR/offline.tsv"
stats=$(grep 'hbmon: .* ticks in' "$DIR/server.log" | tail -1 | sed 's/.*hbmon: //')

python3 - "$DIR/beats.jsonl" "$DIR/offline.tsv" "$TIMEOUT_S" <<'EOF' >"$DIR/lag.txt"
import json, sys
beats = {}
for line in open(sys.argv[1]):
    o = json.loads(line)
    beats[o["agent_id"]] = o["last_beat_ms"]
timeout_ms = int(sys.argv[3]) * 1000
lags = sorted(int(ms) - (beats[i] + timeout_ms) for i, ms in (l.split("\t") for l in open(sys.argv[2]).read().split("\n") if l))
def q(p): return lags[min(len(lags) - 1, int(p * len(lags)))]
print(len(lags), q(0.5), q(0.99), lags[-1], lags[0])
EOF
read -r n p50 p99 max min <"$DIR/lag.txt"

cat <<EOF

Agent scale: $AGENTS agents, one beat every ${INTERVAL}s, heartbeat_timeout ${TIMEOUT_S}s, monitor_interval $MONITOR ($(nproc) cores)
  discovery (all online)          ${discovery}s
  CPU over ${WINDOW}s, % of one core:  hbmon $cpu_hbmon   mariadbd $cpu_mysql   redis $cpu_redis   simulators $cpu_sim
  hbmon ticks (last minute)       $stats
  offline lag beyond the timeout  p50 ${p50} ms   p99 ${p99} ms   max ${max} ms   min ${min} ms   ($n agents)
  API ?status=offline total       $api_offline (expected $SAMPLE); other agents still online: $still_online (expected $main)
EOF
