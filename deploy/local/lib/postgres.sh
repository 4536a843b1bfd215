# shellcheck shell=bash
# PostgreSQL 15 from Debian packages, in a cluster of our own (not Debian's 'main' cluster).

PG_BIN=/usr/lib/postgresql/15/bin
PG_DATA="$MERCATO_SERVICES_DIR/postgres"

postgres_ports() { printf '%s\n' "$MERCATO_PG_PORT"; }
postgres_log() { printf '%s\n' "$LOG_DIR/postgres.log"; }
postgres_timeout() { printf '%s\n' 30; }

# postgres keeps its own pid file (postmaster.pid) in the data folder.
postgres_pid() { live_pid_from "$PG_DATA/postmaster.pid" "$PG_DATA"; }

postgres_probe() {
  PGCONNECT_TIMEOUT=3 "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$MERCATO_PG_PORT" -t 3 &&
    [[ $(PGCONNECT_TIMEOUT=3 "$PG_BIN/psql" -X -At -h 127.0.0.1 -p "$MERCATO_PG_PORT" \
      -U postgres -d postgres -c 'select 1' 2>/dev/null) == 1 ]]
}

# pg_ctl and initdb refuse to run as root: run them as the 'postgres' OS user.
as_postgres() { runuser -u postgres -- "$@"; }

postgres_install() {
  [[ -x $PG_BIN/pg_ctl ]] || apt_install postgresql
  [[ -x $PG_BIN/pg_ctl ]] || die "postgres: $PG_BIN/pg_ctl still missing after installing postgresql"
}

postgres_initdb() {
  [[ -f $PG_DATA/PG_VERSION ]] && return 0
  say "postgres: creating a cluster in $PG_DATA (first run only)…"
  install -d -m 700 -o postgres -g postgres "$PG_DATA"
  as_postgres "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --auth=trust \
    --encoding=UTF8 --locale=C.UTF-8 >>"$(postgres_log)" 2>&1 ||
    die "postgres: initdb failed, see $(postgres_log)"
  # Our settings live in mercato.conf, rewritten on every start so the port follows the env.
  printf "\ninclude_if_exists = 'mercato.conf'\n" >>"$PG_DATA/postgresql.conf"
}

# Local socket and TCP from 127.0.0.1 only, no password (a developer machine, never exposed).
postgres_write_config() {
  cat >"$PG_DATA/pg_hba.conf" <<'EOF'
# Written by deploy/local/services.sh
local   all           all                 trust
host    all           all   127.0.0.1/32  trust
local   replication   all                 trust
host    replication   all   127.0.0.1/32  trust
EOF
  # The socket goes into the data folder: /var/run/postgresql may not exist on this machine.
  cat >"$PG_DATA/mercato.conf" <<EOF
# Written by deploy/local/services.sh on every start; everything else keeps PostgreSQL defaults
listen_addresses = '127.0.0.1'
port = $MERCATO_PG_PORT
unix_socket_directories = '$PG_DATA'
max_connections = 300
EOF
  chown postgres:postgres "$PG_DATA/pg_hba.conf" "$PG_DATA/mercato.conf"
}

postgres_prepare() {
  require_reachable_by postgres "$MERCATO_SERVICES_DIR"
  postgres_install
  touch "$(postgres_log)"
  chown postgres:postgres "$(postgres_log)"
  postgres_initdb
  postgres_write_config
}

postgres_start() {
  as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$(postgres_log)" -w -t 60 start >/dev/null ||
    {
      show_log_tail "$(postgres_log)"
      die "postgres: pg_ctl start failed"
    }
}

postgres_stop() {
  # 'fast' mode: roll back open transactions and disconnect clients, then a clean shutdown.
  as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null ||
    stop_pid postgres "$1" 30
}
