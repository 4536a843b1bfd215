#!/usr/bin/env bash
# Install, start, stop and probe the real services Mercato needs, on a bare Debian 12 machine
# without Docker (with Docker, see deploy/docker-compose.yml instead).
#
#   deploy/local/services.sh up|down|status [postgres|redis|kafka|elasticsearch ...]
#
# Idempotent: 'up' on running services only checks their health; 'up' after 'down' keeps the
# data (except Redis, which is in memory only). Downloads are cached in MERCATO_CACHE_DIR.
# Settings (environment variables, defaults in lib/common.sh):
#   MERCATO_SERVICES_DIR  data, logs/<service>.log, pid files   (/var/tmp/mercato-services)
#   MERCATO_CACHE_DIR     downloaded jars/zips, maven repo        ($HOME/.cache/mercato)
#   MERCATO_PG_PORT 5432  MERCATO_REDIS_PORT 6379  MERCATO_KAFKA_PORT 9092
#   MERCATO_KAFKA_CONTROLLER_PORT 9093  MERCATO_ES_PORT 9200      (all bound to 127.0.0.1)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib/common.sh
source "$HERE/lib/common.sh"
for lib in postgres redis kafka elasticsearch; do
  # shellcheck source=/dev/null
  source "$HERE/lib/$lib.sh"
done

usage() {
  local IFS='|'
  printf 'usage: %s up|down|status [%s ...]\n' "$0" "${ALL_SERVICES[*]}" >&2
  exit 2
}

check_services() {
  local svc
  for svc in "$@"; do
    [[ " ${ALL_SERVICES[*]} " == *" $svc "* ]] || {
      printf 'unknown service: %s\n' "$svc" >&2
      usage
    }
  done
}

cmd_up() {
  local svc started=$SECONDS
  require_root
  ensure_base_dirs
  take_lock
  for svc in "$@"; do service_up "$svc"; done
  say "up: done in $((SECONDS - started)) s (logs in $LOG_DIR)"
}

cmd_down() {
  local i
  require_root
  # Nothing was ever started from a folder that does not exist.
  [[ -d $MERCATO_SERVICES_DIR ]] || {
    say "down: $MERCATO_SERVICES_DIR does not exist, nothing to stop"
    return 0
  }
  ensure_base_dirs
  take_lock
  # Reverse order: consumers of a service stop before the service.
  for ((i = $# ; i >= 1 ; i--)); do service_down "${!i}"; done
}

cmd_status() {
  local svc rc=0
  for svc in "$@"; do service_status "$svc" || rc=1; done
  return "$rc"
}

main() {
  (($# >= 1)) || usage
  local action=$1
  shift
  (($# > 0)) || set -- "${ALL_SERVICES[@]}"
  check_services "$@"
  case $action in
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    status) cmd_status "$@" ;;
    *) usage ;;
  esac
}

main "$@"
