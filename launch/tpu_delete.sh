#!/usr/bin/env bash
# Delete a TPU slice and its queued resource (stops the billing). Checkpoints on GCS stay.
set -euo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<USAGE
Usage: $SCRIPT_NAME --name NAME --zone ZONE --project PROJECT [options]

Delete the queued resource and its TPU VM node ('queued-resources delete --force').

$TPU_TARGET_HELP
  --async              return without waiting for the deletion to finish
  --dry-run            print the commands instead of running them
  -h, --help           this help
USAGE
}

init_tpu_target
ASYNC=0

split_args "$@"
set -- "${ARGS[@]}"
while [[ $# -gt 0 ]]; do
  case $1 in
    --name) require_value "$1" "${2-}"; TPU_NAME=$2; shift 2 ;;
    --zone) require_value "$1" "${2-}"; ZONE=$2; shift 2 ;;
    --project) require_value "$1" "${2-}"; PROJECT=$2; shift 2 ;;
    --async) ASYNC=1; shift ;;
    --dry-run) AZR_DRY_RUN=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1'" ;;
  esac
done

check_tpu_target
require_tool gcloud

DELETE=(gcloud compute tpus queued-resources delete "$TPU_NAME" --zone="$ZONE" --project="$PROJECT"
  --force --quiet)
if [[ $ASYNC == 1 ]]; then
  DELETE+=(--async)
fi
run_cmd "${DELETE[@]}"
