#!/usr/bin/env bash
# Validate the Kubernetes manifests (deploy/k8s) against the Kubernetes API's schemas, offline.
#
#   deploy/local/kubeconform.sh [files or folders ...]     (default: deploy/k8s)
#
# kubeconform is installed once with `go install` (Go modules come through the Go module proxy).
# Its schemas normally come from GitHub, which this machine cannot reach: they are derived
# instead from the API's own OpenAPI document, api/openapi-spec/swagger.json of the
# k8s.io/kubernetes Go module, by lib/k8s_json_schemas.py (standard-library Python), and cached.
# Settings (environment variables):
#   MERCATO_CACHE_DIR         where the binary and the schemas are kept  ($HOME/.cache/mercato)
#   MERCATO_K8S_VERSION       the Kubernetes version to validate against (1.35.4)
#   GO                        the go command                             (go, or /usr/local/go/bin/go)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"

: "${MERCATO_CACHE_DIR:=${HOME}/.cache/mercato}"
: "${MERCATO_K8S_VERSION:=1.35.4}"
KUBECONFORM_VERSION=v0.6.7
BIN_DIR="$MERCATO_CACHE_DIR/bin"
# `go install` builds report their version as "development": the file name carries it instead.
KUBECONFORM="$BIN_DIR/kubeconform-$KUBECONFORM_VERSION"
SCHEMA_ROOT="$MERCATO_CACHE_DIR/k8s-schemas"
SCHEMA_DIR="$SCHEMA_ROOT/v$MERCATO_K8S_VERSION-standalone-strict"

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
  die "Go is needed once, to install kubeconform and fetch the Kubernetes schemas (set GO)"
}

install_kubeconform() {
  [[ -x $KUBECONFORM ]] && return
  printf 'installing kubeconform %s into %s\n' "$KUBECONFORM_VERSION" "$BIN_DIR"
  mkdir -p "$BIN_DIR"
  GOBIN="$BIN_DIR" "$(go_command)" install \
    "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
  mv "$BIN_DIR/kubeconform" "$KUBECONFORM"
}

generate_schemas() {
  [[ -f $SCHEMA_DIR/deployment-apps-v1.json ]] && return
  printf 'deriving the Kubernetes %s schemas into %s\n' "$MERCATO_K8S_VERSION" "$SCHEMA_DIR"
  local module_dir partial
  # Outside any module, `go mod download` only fetches (and verifies) the module's files.
  module_dir=$(cd "$MERCATO_CACHE_DIR" &&
    "$(go_command)" mod download -json "k8s.io/kubernetes@v$MERCATO_K8S_VERSION" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
  [[ -f $module_dir/api/openapi-spec/swagger.json ]] ||
    die "no api/openapi-spec/swagger.json in k8s.io/kubernetes@v$MERCATO_K8S_VERSION"
  # Written aside, then renamed: an interrupted run leaves no half folder behind.
  partial="$SCHEMA_DIR.partial.$$"
  rm -rf "$partial"
  python3 "$HERE/lib/k8s_json_schemas.py" "$module_dir/api/openapi-spec/swagger.json" "$partial"
  rm -rf "$SCHEMA_DIR"
  mv "$partial" "$SCHEMA_DIR"
}

main() {
  mkdir -p "$MERCATO_CACHE_DIR"
  install_kubeconform
  generate_schemas
  if [[ $# -eq 0 ]]; then
    set -- "$REPO/deploy/k8s"
  fi
  # Kustomization is kustomize's file, not an API object: there is no schema to check it with.
  "$KUBECONFORM" -strict -summary -kubernetes-version "$MERCATO_K8S_VERSION" \
    -schema-location "$SCHEMA_ROOT" -skip Kustomization "$@"
}

main "$@"
