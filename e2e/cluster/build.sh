#!/usr/bin/env bash
# Build (once) and cache the test bed's Go binaries under ~/.cache/inflight/bin/:
#   kube-apiserver, kube-controller-manager, kube-scheduler  (k8s.io/kubernetes)
#   etcd                                                     (go.etcd.io/etcd/server/v3)
#   kwok                                                     (sigs.k8s.io/kwok/cmd/kwok)
# Versions come from versions.env only.  A cached build is reused when its
# stamp (component, version, Go version, recipe revision) matches.
#
# Each component is built from a small wrapper Go module generated under
# ~/.cache/inflight/src/ (upstream go.mod files carry relative replace
# directives, so `go install pkg@version` refuses them).
#
# Env: INFLIGHT_BUILD_JOBS (go build -p, default 2), INFLIGHT_FORCE_BUILD=1 to rebuild.
set -euo pipefail
# shellcheck source=lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

JOBS="${INFLIGHT_BUILD_JOBS:-2}"
SRC_DIR="$INFLIGHT_CACHE_DIR/src"
command -v go >/dev/null || die "go is not installed (need Go >= 1.26)"
GO_VERSION="$(go env GOVERSION)"
export CGO_ENABLED=0

# stamp_key NAME VERSION -> the string stored in DIR/.stamp after a good build.
stamp_key() { echo "$1 $2 $GO_VERSION recipe=$BUILD_RECIPE_REV"; }

# is_built DIR KEY BIN... -> 0 if DIR has every BIN and a matching stamp.
is_built() {
  local dir="$1" key="$2" b
  shift 2
  [[ "${INFLIGHT_FORCE_BUILD:-0}" == 1 ]] && return 1
  [[ -f "$dir/.stamp" && "$(cat "$dir/.stamp")" == "$key" ]] || return 1
  for b in "$@"; do [[ -x "$dir/$b" ]] || return 1; done
}

# link_current DIR BIN... -> symlink BIN_DIR/BIN -> DIR/BIN.
link_current() {
  local dir="$1" b
  shift
  for b in "$@"; do ln -sfn "${dir#"$BIN_DIR"/}/$b" "$BIN_DIR/$b"; done
}

# module_info MODULE@VERSION FIELD -> a field of `go mod download -json`.
module_info() {
  (cd "$SRC_DIR" && GOFLAGS=-mod=mod go mod download -json "$1") |
    sed -n "s/^[[:space:]]*\"$2\": \"\\(.*\\)\",\{0,1\}\$/\\1/p"
}

# go_build_wrapper NAME OUT_DIR KEY GOMOD_TEXT LDFLAGS PKG...
# Writes a wrapper module into SRC_DIR/NAME, resolves the packages (go get),
# builds them into a temporary directory and moves the result into OUT_DIR.
go_build_wrapper() {
  local name="$1" out="$2" key="$3" gomod="$4" ldflags="$5"
  shift 5
  local src="$SRC_DIR/$name" start=$SECONDS
  rm -rf "$src"
  mkdir -p "$src"
  printf '%s\n' "$gomod" >"$src/go.mod"
  log "$name: resolving modules ($*)"
  (cd "$src" && GOFLAGS=-mod=mod go get "$@" >"$src/go-get.log" 2>&1) || {
    tail -n 30 "$src/go-get.log" >&2
    die "$name: go get failed (full log: $src/go-get.log)"
  }
  log "$name: resolved in $((SECONDS - start))s; compiling with -p $JOBS"
  local tmp="$out.tmp.$$"
  rm -rf "$out".tmp.* # leftovers of interrupted builds
  mkdir -p "$tmp"
  local pkgs=() p
  for p in "$@"; do pkgs+=("${p%@*}"); done
  (cd "$src" && GOFLAGS=-mod=mod go build -trimpath -p "$JOBS" -ldflags "$ldflags" -o "$tmp/" "${pkgs[@]}") || {
    rm -rf "$tmp"
    die "$name: go build failed"
  }
  echo "$key" >"$tmp/.stamp"
  rm -rf "$out"
  mv "$tmp" "$out"
  log "$name: built in $((SECONDS - start))s -> $out"
}

build_kubernetes() {
  local bins=(kube-apiserver kube-controller-manager kube-scheduler)
  local key
  key="$(stamp_key kubernetes "$KUBERNETES_VERSION")"
  if is_built "$K8S_BIN_DIR" "$key" "${bins[@]}"; then
    log "kubernetes $KUBERNETES_VERSION: cached in $K8S_BIN_DIR"
    link_current "$K8S_BIN_DIR" "${bins[@]}"
    return
  fi
  [[ "$KUBERNETES_VERSION" =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || die "KUBERNETES_VERSION must look like v1.M.P"
  local minor="${BASH_REMATCH[1]}" staging_version="v0.${BASH_REMATCH[1]}.${BASH_REMATCH[2]}"

  # Derive the staging modules from k8s.io/kubernetes's own go.mod: every
  # `k8s.io/X => ./staging/src/k8s.io/X` becomes `k8s.io/X => k8s.io/X v0.M.P`.
  local upstream_gomod info_file
  upstream_gomod="$(module_info "k8s.io/kubernetes@$KUBERNETES_VERSION" GoMod)"
  info_file="$(module_info "k8s.io/kubernetes@$KUBERNETES_VERSION" Info)"
  [[ -f "$upstream_gomod" ]] || die "could not download k8s.io/kubernetes@$KUBERNETES_VERSION"
  local replaces go_line godebug_lines
  replaces="$(awk -v v="$staging_version" '$2 == "=>" && $3 ~ /^\.\/staging\// { printf "\t%s => %s %s\n", $1, $1, v }' "$upstream_gomod")"
  [[ -n "$replaces" ]] || die "no staging replace directives found in $upstream_gomod"
  go_line="$(grep -m1 '^go ' "$upstream_gomod")"
  godebug_lines="$(grep '^godebug ' "$upstream_gomod" || true)"
  log "kubernetes $KUBERNETES_VERSION: $(wc -l <<<"$replaces") staging modules pinned to $staging_version"

  # Version stamping, as hack/lib/version.sh does, so `kubectl version` is right.
  local build_date commit ldflags="-s -w" pkg
  build_date="$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "$info_file")"
  build_date="${build_date:-1970-01-01T00:00:00Z}"
  commit="${KUBERNETES_GIT_COMMIT:-unknown}"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitCommit=$commit -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
  done

  local gomod
  gomod="module inflight.invalid/e2e/kubernetes-build

$go_line
$godebug_lines

require k8s.io/kubernetes $KUBERNETES_VERSION

replace (
$replaces
)"
  go_build_wrapper "kubernetes-$KUBERNETES_VERSION" "$K8S_BIN_DIR" "$key" "$gomod" "$ldflags" \
    "k8s.io/kubernetes/cmd/kube-apiserver@$KUBERNETES_VERSION" \
    "k8s.io/kubernetes/cmd/kube-controller-manager@$KUBERNETES_VERSION" \
    "k8s.io/kubernetes/cmd/kube-scheduler@$KUBERNETES_VERSION"
  link_current "$K8S_BIN_DIR" "${bins[@]}"
}

build_etcd() {
  local key
  key="$(stamp_key etcd "$ETCD_VERSION")"
  if is_built "$ETCD_BIN_DIR" "$key" etcd; then
    log "etcd $ETCD_VERSION: cached in $ETCD_BIN_DIR"
    link_current "$ETCD_BIN_DIR" etcd
    return
  fi
  # The etcd binary's main package is the root of go.etcd.io/etcd/server/v3.
  # Its go.mod replaces the sibling modules with relative paths; the wrapper
  # requires them at the same published version instead.
  local gomod m
  gomod="module inflight.invalid/e2e/etcd-build

go 1.26.0

require (
	go.etcd.io/etcd/server/v3 $ETCD_VERSION"
  for m in api/v3 client/pkg/v3 client/v3 pkg/v3; do
    gomod+="
	go.etcd.io/etcd/$m $ETCD_VERSION"
  done
  gomod+="
)"
  local ldflags="-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=${ETCD_VERSION}"
  go_build_wrapper "etcd-$ETCD_VERSION" "$ETCD_BIN_DIR" "$key" "$gomod" "$ldflags" \
    "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  # The main package is the module root go.etcd.io/etcd/server/v3, which
  # go build names "server" (major-version suffix dropped).
  if [[ ! -x "$ETCD_BIN_DIR/etcd" ]]; then
    mv "$ETCD_BIN_DIR/server" "$ETCD_BIN_DIR/etcd"
  fi
  link_current "$ETCD_BIN_DIR" etcd
}

build_kwok() {
  local key
  key="$(stamp_key kwok "$KWOK_VERSION")"
  if is_built "$KWOK_BIN_DIR" "$key" kwok; then
    log "kwok $KWOK_VERSION: cached in $KWOK_BIN_DIR"
    link_current "$KWOK_BIN_DIR" kwok
    return
  fi
  local gomod
  gomod="module inflight.invalid/e2e/kwok-build

go 1.26.0

require sigs.k8s.io/kwok $KWOK_VERSION"
  local ldflags="-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}"
  go_build_wrapper "kwok-$KWOK_VERSION" "$KWOK_BIN_DIR" "$key" "$gomod" "$ldflags" \
    "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  link_current "$KWOK_BIN_DIR" kwok
}

main() {
  mkdir -p "$BIN_DIR" "$SRC_DIR"
  local t0=$SECONDS t
  log "build: cache $BIN_DIR, $GO_VERSION, -p $JOBS"
  t=$SECONDS; build_etcd; log "timing: etcd $((SECONDS - t))s"
  t=$SECONDS; build_kwok; log "timing: kwok $((SECONDS - t))s"
  t=$SECONDS; build_kubernetes; log "timing: kubernetes $((SECONDS - t))s"
  log "timing: total $((SECONDS - t0))s"
  "$KUBE_APISERVER" --version >&2
  # sed reads to the end: `head` would close the pipe early, and under
  # pipefail etcd's SIGPIPE (exit 141) would fail the build.
  "$ETCD" --version | sed -n 1p >&2
  "$KWOK" --version >&2 2>&1 || true
}

main "$@"
