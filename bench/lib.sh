# bench/lib.sh -- what the benchmark scripts share (sourced from the project root): a private MariaDB
# and Redis from scripts/services, a fresh database, and the part of conduix-cp's configuration that
# points at them. The caller sets SVC, MYPORT, RPORT, PORT and DB first.

mysql_() { mysql --no-defaults -uconduix -pconduix -h127.0.0.1 -P"$MYPORT" "$@"; }

# bench_services -- start the services (if not running), empty Redis, create database DB afresh.
bench_services() {
  scripts/services start "$SVC" "$MYPORT" "$RPORT" >/dev/null
  bench_fresh
}

# bench_fresh -- empty Redis and create database DB afresh (the services already run).
bench_fresh() {
  redis-cli -p "$RPORT" FLUSHALL >/dev/null
  mysql_ -e "DROP DATABASE IF EXISTS $DB; CREATE DATABASE $DB CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
}

# bench_config NAME [WORKERS] -- the top of a configuration on stdout: server (WORKERS when given),
# database, redis, a JWT secret named after NAME, rate limit off (one token sends everything), the
# migrations folder. The caller appends its own sections.
bench_config() {
  local workers=${2:-}
  cat <<YAML
server:
  host: 127.0.0.1
  port: $PORT
${workers:+  workers: $workers
}  pidfile: $WORK/conduix-cp.pid
database:
  host: 127.0.0.1
  port: $MYPORT
  user: conduix
  password: conduix
  name: $DB
redis:
  host: 127.0.0.1
  port: $RPORT
auth:
  jwt_secret: bench-$1-secret-0123456789-abcdefghijklmnop
rate_limit:
  enabled: false
migrations:
  dir: migrations
YAML
}
