#!/usr/bin/env bash
# Request a Cloud TPU VM slice through the queued-resources API (the way capacity, spot and
# reservations are handed out), optionally waiting until it is ACTIVE.
set -euo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# Seconds between state checks with --wait.
POLL_SECONDS=30

usage() {
  cat <<EOF
Usage: $SCRIPT_NAME --name NAME --zone ZONE --project PROJECT --accelerator-type TYPE [options]

Create a TPU VM slice with 'gcloud compute tpus queued-resources create'.

$TPU_TARGET_HELP
  --accelerator-type T v4-32, v5e-64 (sent as v5litepod-64), v5p-128, v6e-8, or any gcloud type
  --runtime-version V  TPU software version (default: tpu-ubuntu2204-base for v4,
                       v2-alpha-tpuv5-lite for v5e, v2-alpha-tpuv5 for v5p, v2-alpha-tpuv6e for v6e)
  --spot               spot capacity (cheaper, can be preempted at any time)
  --preemptible        best-effort capacity (uses 'gcloud alpha ... --best-effort')
  --reserved           use the project's reservation
  --valid-until-duration D   give up if not provisioned within D (e.g. 6h)
  --wait               poll until the slice is ACTIVE (fails if it ends FAILED/SUSPENDED)
  --dry-run            print the commands instead of running them
  -h, --help           this help
EOF
}

init_tpu_target
ACCEL=""
RUNTIME=""
CAPACITY=""
VALID_UNTIL=""
WAIT=0

split_args "$@"
set -- "${ARGS[@]}"
while [[ $# -gt 0 ]]; do
  case $1 in
    --name) require_value "$1" "${2-}"; TPU_NAME=$2; shift 2 ;;
    --zone) require_value "$1" "${2-}"; ZONE=$2; shift 2 ;;
    --project) require_value "$1" "${2-}"; PROJECT=$2; shift 2 ;;
    --accelerator-type) require_value "$1" "${2-}"; ACCEL=$2; shift 2 ;;
    --runtime-version) require_value "$1" "${2-}"; RUNTIME=$2; shift 2 ;;
    --spot | --preemptible | --reserved)
      if [[ -n $CAPACITY && $CAPACITY != "$1" ]]; then
        die "choose one of --spot, --preemptible, --reserved"
      fi
      CAPACITY=$1; shift ;;
    --valid-until-duration) require_value "$1" "${2-}"; VALID_UNTIL=$2; shift 2 ;;
    --wait) WAIT=1; shift ;;
    --dry-run) AZR_DRY_RUN=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1'" ;;
  esac
done

check_tpu_target
require_set --accelerator-type "$ACCEL"
if [[ ! $ACCEL =~ ^v[0-9]+[a-z]*-[0-9]+$ ]]; then
  die "--accelerator-type looks like v4-32 or v5e-64 (got '$ACCEL')"
fi
# gcloud calls v5e 'v5litepod'.
GCLOUD_ACCEL=${ACCEL/#v5e-/v5litepod-}
if [[ -z $RUNTIME ]]; then
  case $GCLOUD_ACCEL in
    v4-*) RUNTIME=tpu-ubuntu2204-base ;;
    v5litepod-*) RUNTIME=v2-alpha-tpuv5-lite ;;
    v5p-*) RUNTIME=v2-alpha-tpuv5 ;;
    v6e-*) RUNTIME=v2-alpha-tpuv6e ;;
    *) die "no default --runtime-version for '$ACCEL'; pass one" ;;
  esac
fi
require_tool gcloud

CREATE=(gcloud compute tpus queued-resources create "$TPU_NAME")
case $CAPACITY in
  --preemptible) CREATE=(gcloud alpha compute tpus queued-resources create "$TPU_NAME") ;;
esac
CREATE+=(--node-id="$TPU_NAME" --zone="$ZONE" --project="$PROJECT"
  --accelerator-type="$GCLOUD_ACCEL" --runtime-version="$RUNTIME")
case $CAPACITY in
  --spot) CREATE+=(--spot) ;;
  --preemptible) CREATE+=(--best-effort) ;;
  --reserved) CREATE+=(--reserved) ;;
esac
if [[ -n $VALID_UNTIL ]]; then
  CREATE+=(--valid-until-duration="$VALID_UNTIL")
fi
run_cmd "${CREATE[@]}"

if [[ $WAIT == 1 ]]; then
  DESCRIBE=(gcloud compute tpus queued-resources describe "$TPU_NAME" --zone="$ZONE"
    --project="$PROJECT" --format='value(state.state)')
  if [[ $AZR_DRY_RUN == 1 ]]; then
    note "would repeat every ${POLL_SECONDS}s until the state is ACTIVE:"
    run_cmd "${DESCRIBE[@]}"
    exit 0
  fi
  while true; do
    STATE=$("${DESCRIBE[@]}")
    note "queued resource $TPU_NAME: $STATE"
    case $STATE in
      ACTIVE) break ;;
      FAILED | SUSPENDED | SUSPENDING) die "queued resource $TPU_NAME ended in state $STATE" ;;
    esac
    sleep "$POLL_SECONDS"
  done
fi
