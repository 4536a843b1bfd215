# shellcheck shell=bash
# Redis 7 from Debian packages: in memory only (no RDB, no AOF), so nothing survives a 'down'.

REDIS_DIR="$MERCATO_SERVICES_DIR/redis"
REDIS_PID_FILE="$RUN_DIR/redis.pid"

redis_ports() { printf '%s\n' "$MERCATO_REDIS_PORT"; }
redis_log() { printf '%s\n' "$LOG_DIR/redis.log"; }
redis_timeout() { printf '%s\n' 10; }
redis_pid() { live_pid_from "$REDIS_PID_FILE" "redis-server"; }

redis_probe() {
  [[ $(timeout 3 redis-cli -h 127.0.0.1 -p "$MERCATO_REDIS_PORT" ping 2>/dev/null) == PONG ]]
}

redis_prepare() {
  if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    apt_install redis-server
  fi
  mkdir -p "$REDIS_DIR"
}

redis_start() {
  # --daemonize: redis forks and writes the pid file itself.
  redis-server --daemonize yes --bind 127.0.0.1 --port "$MERCATO_REDIS_PORT" \
    --save "" --appendonly no --dir "$REDIS_DIR" \
    --pidfile "$REDIS_PID_FILE" --logfile "$(redis_log)" ||
    die "redis: redis-server failed to start, see $(redis_log)"
}

redis_stop() {
  stop_pid redis "$1" 30
  rm -f "$REDIS_PID_FILE"
}
