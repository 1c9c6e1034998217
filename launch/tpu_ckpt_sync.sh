#!/usr/bin/env bash
# Copy a run directory (checkpoints, metrics, logs) between a local disk and GCS with
# 'gcloud storage rsync': to keep a copy of a run, to seed a new slice, or to fetch results.
set -euo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<USAGE
Usage: $SCRIPT_NAME --from SRC --to DST [options]

Mirror SRC into DST; one of them is a gs:// URL, the other a local directory.

  --from SRC           source directory or gs:// URL
  --to DST             destination directory or gs:// URL
  --delete             also delete files in DST that are not in SRC (exact mirror)
  --name NAME          run the copy on the TPU workers of this slice instead of here
                       (with --zone, --project, --worker; env AZR_TPU_NAME/AZR_ZONE/AZR_PROJECT)
  --zone ZONE          zone of the slice (with --name)
  --project PROJECT    project of the slice (with --name)
  --worker W           worker index or 'all' when run on the slice (default: 0)
  --dry-run            print the commands instead of running them
  -h, --help           this help
USAGE
}

SRC=""
DST=""
DELETE=0
TPU_NAME=""
ZONE=${AZR_ZONE:-}
PROJECT=${AZR_PROJECT:-}
WORKER=0

split_args "$@"
set -- "${ARGS[@]}"
while [[ $# -gt 0 ]]; do
  case $1 in
    --from) require_value "$1" "${2-}"; SRC=$2; shift 2 ;;
    --to) require_value "$1" "${2-}"; DST=$2; shift 2 ;;
    --delete) DELETE=1; shift ;;
    --name) require_value "$1" "${2-}"; TPU_NAME=$2; shift 2 ;;
    --zone) require_value "$1" "${2-}"; ZONE=$2; shift 2 ;;
    --project) require_value "$1" "${2-}"; PROJECT=$2; shift 2 ;;
    --worker) require_value "$1" "${2-}"; WORKER=$2; shift 2 ;;
    --dry-run) AZR_DRY_RUN=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1'" ;;
  esac
done

require_set --from "$SRC"
require_set --to "$DST"
if [[ $SRC == gs://* && $DST == gs://* ]] || [[ $SRC != gs://* && $DST != gs://* ]]; then
  die "exactly one of --from and --to must be a gs:// URL (got '$SRC' -> '$DST')"
fi
RSYNC=(gcloud storage rsync --recursive)
if [[ $DELETE == 1 ]]; then
  RSYNC+=(--delete-unmatched-destination-objects)
fi
RSYNC+=("$SRC" "$DST")
require_tool gcloud

if [[ -n $TPU_NAME ]]; then
  check_tpu_target
  check_worker "$WORKER"
  REMOTE=$(shell_quote "${RSYNC[@]}")
  if [[ $DST != gs://* ]]; then
    REMOTE="mkdir -p $(shell_quote "$DST") && $REMOTE"
  fi
  tpu_ssh "$TPU_NAME" "$ZONE" "$PROJECT" "$WORKER" "$REMOTE"
else
  if [[ $DST != gs://* ]]; then
    run_cmd mkdir -p "$DST"
  fi
  run_cmd "${RSYNC[@]}"
fi
