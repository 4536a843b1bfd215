#!/usr/bin/env bash
# Check deploy/docker-compose.yml with Docker Compose's own parser (`docker compose config`), with
# and without the observability profile. Needs no Docker engine.
#
#   deploy/local/compose.sh            install compose (first time), then check the file
#   deploy/local/compose.sh --path     print the compose binary this script installs, and build
#                                      nothing: exits 1 if it is not installed yet
#
# This machine's docker client has no compose plugin and cannot download one (GitHub is out of
# reach): Compose v2 is built once from its Go module (through the Go module proxy), kept in
# the cache, and linked as the docker client's CLI plugin
# ($DOCKER_CONFIG/cli-plugins/docker-compose, $HOME/.docker by default) unless a plugin of
# another origin is already there. Without a docker client, the binary runs standalone.
# Settings (environment variables):
#   MERCATO_CACHE_DIR         where the binary is kept              ($HOME/.cache/mercato)
#   DOCKER_CONFIG             the docker client's settings folder   ($HOME/.docker)
#   GO                        the go command                        (go, or /usr/local/go/bin/go)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"

: "${MERCATO_CACHE_DIR:=${HOME}/.cache/mercato}"
COMPOSE_VERSION=v2.40.3
COMPOSE_MODULE=github.com/docker/compose/v2
BIN_DIR="$MERCATO_CACHE_DIR/bin"
COMPOSE="$BIN_DIR/docker-compose-$COMPOSE_VERSION"
PLUGIN_DIR="${DOCKER_CONFIG:-${HOME}/.docker}/cli-plugins"
COMPOSE_FILE="$REPO/deploy/docker-compose.yml"

die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

go_command() {
  local candidate
  for candidate in "${GO:-}" go /usr/local/go/bin/go; do
    [[ -n $candidate ]] && command -v "$candidate" >/dev/null && {
      printf '%s\n' "$candidate"
      return
    }
  done
  die "Go is needed once, to build docker compose (set GO)"
}

install_compose() {
  [[ -x $COMPOSE ]] && return
  printf 'building docker compose %s into %s (once, a few minutes)\n' "$COMPOSE_VERSION" "$BIN_DIR"
  local go module_dir partial
  go=$(go_command)
  # Not `go install module@version`: compose's go.mod has exclude directives, which that
  # refuses. The module's source is fetched (and verified) instead, outside any module, and
  # built as the main module, with its own go.sum.
  module_dir=$(cd "$MERCATO_CACHE_DIR" &&
    "$go" mod download -json "$COMPOSE_MODULE@$COMPOSE_VERSION" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
  mkdir -p "$BIN_DIR"
  # Built aside, then renamed: an interrupted build leaves nothing that looks installed. The
  # version is stamped the way compose's own Makefile does (else `compose version` says "dev").
  partial="$COMPOSE.partial.$$"
  (cd "$module_dir" && "$go" build -mod=readonly -buildvcs=false -trimpath \
    -ldflags "-s -w -X $COMPOSE_MODULE/internal.Version=$COMPOSE_VERSION" -o "$partial" ./cmd) ||
    {
      rm -f "$partial"
      die "could not build docker compose $COMPOSE_VERSION"
    }
  mv "$partial" "$COMPOSE"
}

# Links the cached binary as the docker client's compose plugin, replacing only a link of ours.
install_plugin() {
  local plugin="$PLUGIN_DIR/docker-compose" target
  if [[ -e $plugin || -L $plugin ]]; then
    target=$(readlink "$plugin" || true)
    [[ $target == "$COMPOSE" ]] && return
    if [[ $target != "$BIN_DIR"/docker-compose-* ]]; then
      printf 'note: keeping the compose plugin already in %s\n' "$plugin" >&2
      return
    fi
  fi
  mkdir -p "$PLUGIN_DIR"
  ln -sfn "$COMPOSE" "$plugin"
}

# The command that runs compose: the docker client's plugin where there is a client.
compose_command() {
  if command -v docker >/dev/null && docker compose version >/dev/null 2>&1; then
    printf '%s\n' docker compose
  else
    printf '%s\n' "$COMPOSE"
  fi
}

check() {
  local -a compose
  mapfile -t compose < <(compose_command)
  # The file demands a JWT secret; any value does for checking it (Mercato judges its length).
  # --quiet: compose only parses, interpolates and validates; an error goes to stderr.
  MERCATO_JWT_SECRET=compose-config-check "${compose[@]}" -f "$COMPOSE_FILE" config --quiet ||
    die "docker compose rejects $COMPOSE_FILE"
  MERCATO_JWT_SECRET=compose-config-check "${compose[@]}" -f "$COMPOSE_FILE" \
    --profile observability config --quiet ||
    die "docker compose rejects $COMPOSE_FILE with --profile observability"
  if env -u MERCATO_JWT_SECRET "${compose[@]}" -f "$COMPOSE_FILE" config --quiet 2>/dev/null; then
    die "docker compose accepts $COMPOSE_FILE without MERCATO_JWT_SECRET"
  fi
  printf 'docker compose %s: deploy/docker-compose.yml is valid (with and without --profile observability) and refuses to run without MERCATO_JWT_SECRET\n' \
    "$("${compose[@]}" version --short)"
}

main() {
  if [[ ${1:-} == --path ]]; then
    [[ -x $COMPOSE ]] || die "docker compose $COMPOSE_VERSION is not installed: run $0"
    printf '%s\n' "$COMPOSE"
    return
  fi
  [[ $# -eq 0 ]] || die "usage: $0 [--path]"
  install_compose
  if command -v docker >/dev/null; then
    install_plugin
  fi
  check
}

main "$@"
