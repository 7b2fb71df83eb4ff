#!/usr/bin/env bash
# Stop the inflight e2e test bed started by up.sh and remove its state dir.
# Kills only the processes named in $INFLIGHT_BED_DIR/pids/*.pid (checking that
# each PID still belongs to this bed), waits for them to exit, then deletes
# $INFLIGHT_BED_DIR.  Idempotent: does nothing if the bed is not there.
# Env: INFLIGHT_BED_DIR (default /tmp/inflight-bed), INFLIGHT_KEEP_STATE=1 keeps the dir.
set -euo pipefail
# shellcheck source=lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

if [[ ! -e "$INFLIGHT_BED_DIR" ]]; then
  log "no test bed at $INFLIGHT_BED_DIR; nothing to do"
  exit 0
fi

failed=0
for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
  stop_component "${COMPONENTS[i]}" || failed=1
done
((failed == 0)) || die "some processes did not exit; state left in $INFLIGHT_BED_DIR"

if [[ "${INFLIGHT_KEEP_STATE:-0}" == 1 ]]; then
  log "processes stopped; state kept in $INFLIGHT_BED_DIR"
else
  rm -rf "$INFLIGHT_BED_DIR"
  log "test bed stopped and $INFLIGHT_BED_DIR removed"
fi
