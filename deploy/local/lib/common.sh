# shellcheck shell=bash
# Shared settings and helpers for deploy/local/services.sh. Sourced, never executed.

# --- Settings (the Python code reads the same names and defaults) -----------------------------
: "${MERCATO_SERVICES_DIR:=/var/tmp/mercato-services}"
: "${MERCATO_CACHE_DIR:=${HOME}/.cache/mercato}"
: "${MERCATO_PG_PORT:=5432}"
: "${MERCATO_REDIS_PORT:=6379}"
: "${MERCATO_KAFKA_PORT:=9092}"
: "${MERCATO_KAFKA_CONTROLLER_PORT:=9093}"
: "${MERCATO_ES_PORT:=9200}"

RUN_DIR="$MERCATO_SERVICES_DIR/run"   # pid files of the processes we start ourselves
LOG_DIR="$MERCATO_SERVICES_DIR/logs"  # <service>.log
DIST_DIR="$MERCATO_SERVICES_DIR/dist" # unpacked distributions other OS users must read
M2_REPO="$MERCATO_CACHE_DIR/m2"       # maven local repository: jars and zips, downloaded once

# shellcheck disable=SC2034 # used by services.sh
ALL_SERVICES=(postgres redis kafka elasticsearch)

# --- Output -------------------------------------------------------------------------------------
say() { printf '%s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# Print the end of a log file to stderr, to explain a failure without opening the file.
show_log_tail() {
  local file=$1
  [[ -f $file ]] || return 0
  printf -- '--- last lines of %s ---\n' "$file" >&2
  tail -n 25 "$file" >&2 || true
}

# --- Preconditions ------------------------------------------------------------------------------
require_root() {
  [[ $EUID -eq 0 ]] || die "run as root (it installs packages and starts services as other users)"
}

ensure_base_dirs() {
  mkdir -p "$RUN_DIR" "$LOG_DIR" "$DIST_DIR" "$MERCATO_CACHE_DIR"
  # Services run as other OS users (postgres, mercato-es) and must be able to reach their folders.
  chmod 755 "$MERCATO_SERVICES_DIR" "$LOG_DIR" "$DIST_DIR"
}

# Fail early with a clear message when an OS user cannot traverse to the services folder
# (e.g. MERCATO_SERVICES_DIR under /root, which is mode 0700).
require_reachable_by() {
  local user=$1 dir=$2
  runuser -u "$user" -- test -x "$dir" ||
    die "user '$user' cannot reach $dir; choose a MERCATO_SERVICES_DIR outside private home folders"
}

# Serialise 'up' and 'down' for one services folder (two test runs may call 'up' at once).
take_lock() {
  exec 9>"$RUN_DIR/services.lock"
  flock -w 600 9 || die "another services.sh is busy with $MERCATO_SERVICES_DIR"
}

# --- Processes ----------------------------------------------------------------------------------
# First line of a pid file if it holds a number, else nothing.
read_pid_file() {
  local file=$1 pid
  [[ -r $file ]] || return 0
  read -r pid <"$file" || true
  [[ ${pid:-} =~ ^[0-9]+$ ]] && printf '%s\n' "$pid"
  return 0
}

# True when the pid is alive AND its command line contains the pattern: a pid file left behind
# by a crash may name a pid the kernel has since given to an unrelated process.
pid_matches() {
  local pid=$1 pattern=$2
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$pattern"
}

# Echo the pid recorded in a pid file when that process is still ours and alive.
live_pid_from() {
  local file=$1 pattern=$2 pid
  pid=$(read_pid_file "$file")
  if pid_matches "$pid" "$pattern"; then printf '%s\n' "$pid"; fi
  return 0
}

# SIGTERM, wait up to <timeout> seconds, then SIGKILL as a last resort.
stop_pid() {
  local name=$1 pid=$2 timeout=$3 waited=0
  kill -TERM "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null; do
    if ((waited >= timeout)); then
      warn "$name: pid $pid still alive after ${timeout}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 1
      return 0
    fi
    sleep 1
    waited=$((waited + 1))
  done
}

# --- Ports and waiting --------------------------------------------------------------------------
port_open() {
  local port=$1
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port" 2>/dev/null
}

# Who listens on a port, for error messages.
port_owner() {
  local port=$1
  ss -ltnpH "sport = :$port" 2>/dev/null | grep -o 'users:.*' | head -n 1 || true
}

# Refuse to start when another program already listens on one of our ports.
require_free_ports() {
  local name=$1 port
  shift
  for port in "$@"; do
    if port_open "$port"; then
      die "$name: port $port is already used by another process $(port_owner "$port")"
    fi
  done
}

# wait_until <seconds> <command...>: retry the command once a second until it succeeds.
wait_until() {
  local timeout=$1 deadline
  shift
  deadline=$((SECONDS + timeout))
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 1
  done
}

# --- Java and Maven ---------------------------------------------------------------------------
# Java 17 home: MERCATO_JAVA_HOME, else Debian's OpenJDK 17, else whatever /usr/bin/java is.
java_home() {
  if [[ -n ${MERCATO_JAVA_HOME:-} ]]; then
    printf '%s\n' "$MERCATO_JAVA_HOME"
  elif [[ -x /usr/lib/jvm/java-17-openjdk-amd64/bin/java ]]; then
    printf '%s\n' /usr/lib/jvm/java-17-openjdk-amd64
  else
    dirname "$(dirname "$(readlink -f "$(command -v java)")")"
  fi
}

# Run maven quietly in batch mode against our own local repository; output goes to a log.
mvn_quiet() {
  command -v mvn >/dev/null || die "maven (mvn) is not installed: apt-get install -y maven"
  if ! mvn -B -q -Dmaven.repo.local="$M2_REPO" "$@" >>"$LOG_DIR/maven.log" 2>&1; then
    show_log_tail "$LOG_DIR/maven.log"
    die "maven failed: mvn $*"
  fi
}

# --- Debian packages ----------------------------------------------------------------------------
# Called only when a binary is missing, so 'apt-get update' runs only then. A Debian service the
# package may start is not ours: if it takes one of our ports, 'up' refuses and names it.
apt_install() {
  say "installing Debian packages: $* (first run only)…"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >>"$LOG_DIR/apt.log" 2>&1 || die "apt-get update failed, see $LOG_DIR/apt.log"
  apt-get install -y -qq --no-install-recommends "$@" >>"$LOG_DIR/apt.log" 2>&1 ||
    die "apt-get install $* failed, see $LOG_DIR/apt.log"
}

# --- Generic service life cycle -----------------------------------------------------------------
# Every service file defines, for service S:
#   S_pid      echo the pid of the running instance we started (nothing when stopped)
#   S_ports    echo the TCP ports it listens on
#   S_probe    health probe, fast, exit status only
#   S_prepare  install binaries, create folders and configuration (idempotent)
#   S_start    launch it in the background
#   S_stop     stop the pid given as $1 and wait for it to exit
#   S_log      path of its main log file
#   S_timeout  seconds to wait for health after a start

service_up() {
  local svc=$1 pid started begun=$SECONDS
  pid=$("${svc}_pid")
  if [[ -n $pid ]]; then
    if wait_until "$("${svc}_timeout")" "${svc}_probe"; then
      say "$svc: already running (pid $pid), healthy"
      return 0
    fi
    show_log_tail "$("${svc}_log")"
    die "$svc: running (pid $pid) but not healthy; try: $0 down $svc && $0 up $svc"
  fi
  # shellcheck disable=SC2046 # the port list is meant to be split into words
  require_free_ports "$svc" $("${svc}_ports")
  # 9>&-: daemons must not inherit the lock's descriptor, or they would hold the lock forever.
  "${svc}_prepare" 9>&-
  say "$svc: starting…"
  started=$SECONDS
  "${svc}_start" 9>&-
  if ! wait_until "$("${svc}_timeout")" "${svc}_probe"; then
    show_log_tail "$("${svc}_log")"
    die "$svc: not healthy after $("${svc}_timeout")s, see $("${svc}_log")"
  fi
  say "$svc: healthy in $((SECONDS - started)) s (pid $("${svc}_pid"); setup $((started - begun)) s)"
}

service_down() {
  local svc=$1 pid
  pid=$("${svc}_pid")
  if [[ -z $pid ]]; then
    say "$svc: not running"
    return 0
  fi
  say "$svc: stopping pid $pid…"
  "${svc}_stop" "$pid"
  say "$svc: stopped"
}

# One line per service; returns non-zero unless running and healthy.
service_status() {
  local svc=$1 pid state health ports rc=0
  pid=$("${svc}_pid")
  ports=$("${svc}_ports")
  if [[ -n $pid ]]; then
    state=running
    if "${svc}_probe"; then health=healthy; else health=unhealthy rc=1; fi
  else
    state=stopped pid=- rc=1 health=unhealthy
    # Say so when something we did not start holds the port: 'up' would refuse to start.
    if port_open "${ports%% *}"; then health="unhealthy (port taken by another process)"; fi
  fi
  printf '%-14s %-8s port %-11s pid %-8s %s\n' "$svc" "$state" "${ports// /,}" "$pid" "$health"
  return "$rc"
}
