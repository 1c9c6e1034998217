#!/usr/bin/env bash
# Stream the training logs of a TPU slice (the per-worker files tpu_run.sh writes).
set -euo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<USAGE
Usage: $SCRIPT_NAME --name NAME --zone ZONE --project PROJECT [options]

Show the training log of TPU worker(s): tail of $AZR_REMOTE_LOG_DIR/train-*.log, then follow it.

$TPU_TARGET_HELP
  --worker W           worker index or 'all' (default: 0, the host that logs metrics)
  --lines N            lines of history to show first (default: 100)
  --no-follow          print and exit instead of following
  --dry-run            print the commands instead of running them
  -h, --help           this help
USAGE
}

init_tpu_target
WORKER=0
LINES=100
FOLLOW=1

split_args "$@"
set -- "${ARGS[@]}"
while [[ $# -gt 0 ]]; do
  case $1 in
    --name) require_value "$1" "${2-}"; TPU_NAME=$2; shift 2 ;;
    --zone) require_value "$1" "${2-}"; ZONE=$2; shift 2 ;;
    --project) require_value "$1" "${2-}"; PROJECT=$2; shift 2 ;;
    --worker) require_value "$1" "${2-}"; WORKER=$2; shift 2 ;;
    --lines) require_value "$1" "${2-}"; LINES=$2; shift 2 ;;
    --no-follow) FOLLOW=0; shift ;;
    --dry-run) AZR_DRY_RUN=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1'" ;;
  esac
done

check_tpu_target
check_worker "$WORKER"
if [[ ! $LINES =~ ^[0-9]+$ ]]; then
  die "--lines must be a non-negative integer (got '$LINES')"
fi
require_tool gcloud

TAIL="tail -n $LINES"
if [[ $FOLLOW == 1 ]]; then
  TAIL+=" -F"
fi
tpu_ssh "$TPU_NAME" "$ZONE" "$PROJECT" "$WORKER" "$TAIL \"$AZR_REMOTE_LOG_DIR\"/train-*.log"
