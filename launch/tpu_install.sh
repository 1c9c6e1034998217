#!/usr/bin/env bash
# Install azr-jax (with the [tpu] extra) on every worker of a TPU slice: every host runs the same
# program, so every host needs the same code.
set -euo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARBALL_NAME=azr-jax.tar.gz

usage() {
  cat <<EOF
Usage: $SCRIPT_NAME --name NAME --zone ZONE --project PROJECT (--repo-url URL [--ref REF] | --tarball) [options]

Install the package on all TPU workers: the code in $AZR_REMOTE_DIR, a Python >= 3.11
virtual environment in $AZR_REMOTE_VENV (the TPU VM images' system python3 is older: the first
python3.13/3.12/3.11 on PATH is used, else python3.11 is installed with apt-get), and
'pip install -e .[tpu]' into it.

$TPU_TARGET_HELP
  --repo-url URL       git URL to clone (or update) on each worker
  --ref REF            branch, tag or commit to check out (default: main)
  --tarball            pack this checkout ($REPO_ROOT) and copy it to each worker instead
  --source-dir DIR     checkout to pack with --tarball (default: the one holding this script)
  --extras LIST        pip extras (default: tpu)
  --python PY          interpreter (>= 3.11) that creates the environment on the workers
  --dry-run            print the commands instead of running them
  -h, --help           this help
EOF
}

init_tpu_target
REPO_URL=""
REF=main
TARBALL=0
SOURCE_DIR=$REPO_ROOT
EXTRAS=tpu
PYTHON=""

split_args "$@"
set -- "${ARGS[@]}"
while [[ $# -gt 0 ]]; do
  case $1 in
    --name) require_value "$1" "${2-}"; TPU_NAME=$2; shift 2 ;;
    --zone) require_value "$1" "${2-}"; ZONE=$2; shift 2 ;;
    --project) require_value "$1" "${2-}"; PROJECT=$2; shift 2 ;;
    --repo-url) require_value "$1" "${2-}"; REPO_URL=$2; shift 2 ;;
    --ref) require_value "$1" "${2-}"; REF=$2; shift 2 ;;
    --tarball) TARBALL=1; shift ;;
    --source-dir) require_value "$1" "${2-}"; SOURCE_DIR=$2; shift 2 ;;
    --extras) require_value "$1" "${2-}"; EXTRAS=$2; shift 2 ;;
    --python) require_value "$1" "${2-}"; PYTHON=$2; shift 2 ;;
    --dry-run) AZR_DRY_RUN=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1'" ;;
  esac
done

check_tpu_target
if [[ $TARBALL == 1 && -n $REPO_URL ]]; then
  die "choose one of --repo-url and --tarball"
fi
if [[ $TARBALL == 0 && -z $REPO_URL ]]; then
  die "missing required --repo-url (or use --tarball)"
fi
if [[ ! $EXTRAS =~ ^[a-z0-9_,-]+$ ]]; then
  die "--extras is a comma-separated list of extra names (got '$EXTRAS')"
fi
if [[ ! $REF =~ ^[A-Za-z0-9._/-]+$ ]]; then
  die "--ref may hold letters, digits and ._/- only (got '$REF')"
fi
if [[ -n $PYTHON && ! $PYTHON =~ ^[A-Za-z0-9_./-]+$ ]]; then
  die "--python is an interpreter name or path (got '$PYTHON')"
fi
require_tool gcloud

# On each worker: pick (or install) Python >= 3.11, (re)create the venv when it is missing or
# older, then install the package into it. One line: the dry-run prints one command per line.
NEW_ENOUGH="-c 'import sys; sys.exit(sys.version_info < (3, 11))'"
VENV_PY="$AZR_REMOTE_VENV/bin/python"
SETUP_PY=(
  "PY=$(shell_quote "$PYTHON")"
  "if [ -z \"\$PY\" ]; then for c in python3.13 python3.12 python3.11 python3; do if command -v \"\$c\" >/dev/null 2>&1 && \"\$c\" $NEW_ENOUGH; then PY=\$c; break; fi; done; fi"
  "if [ -z \"\$PY\" ]; then echo \"no Python >= 3.11 on \$(hostname): installing python3.11\"; sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3.11 python3.11-venv; PY=python3.11; fi"
  "\"\$PY\" $NEW_ENOUGH || { echo \"\$PY is older than Python 3.11\" >&2; exit 2; }"
  "if ! { [ -x \"$VENV_PY\" ] && \"$VENV_PY\" $NEW_ENOUGH; }; then rm -rf \"$AZR_REMOTE_VENV\"; \"\$PY\" -m venv \"$AZR_REMOTE_VENV\"; fi"
  "\"$VENV_PY\" -m pip install --upgrade pip"
  "\"$VENV_PY\" -m pip install -e '.[$EXTRAS]'"
)
PIP_INSTALL=""
for part in "${SETUP_PY[@]}"; do
  PIP_INSTALL+="${PIP_INSTALL:+; }$part"
done
if [[ $TARBALL == 1 ]]; then
  if [[ ! -f $SOURCE_DIR/setup.py ]]; then
    die "--source-dir '$SOURCE_DIR' is not an azr-jax checkout (no setup.py)"
  fi
  LOCAL_TARBALL=${TMPDIR:-/tmp}/$TARBALL_NAME
  run_cmd tar -czf "$LOCAL_TARBALL" --exclude=.git --exclude='*.egg-info' --exclude=__pycache__ \
    -C "$SOURCE_DIR" .
  run_cmd gcloud compute tpus tpu-vm scp "$LOCAL_TARBALL" "$TPU_NAME:~/$TARBALL_NAME" \
    --zone="$ZONE" --project="$PROJECT" --worker=all
  REMOTE="set -e; rm -rf \"$AZR_REMOTE_DIR\"; mkdir -p \"$AZR_REMOTE_DIR\"; tar -xzf \"\$HOME/$TARBALL_NAME\" -C \"$AZR_REMOTE_DIR\"; cd \"$AZR_REMOTE_DIR\"; $PIP_INSTALL"
else
  QUOTED_URL=$(shell_quote "$REPO_URL")
  REMOTE="set -e; if [ -d \"$AZR_REMOTE_DIR/.git\" ]; then git -C \"$AZR_REMOTE_DIR\" fetch --tags origin; else git clone $QUOTED_URL \"$AZR_REMOTE_DIR\"; fi; cd \"$AZR_REMOTE_DIR\"; git checkout $REF; if git rev-parse --verify -q origin/$REF >/dev/null; then git reset --hard origin/$REF; fi; $PIP_INSTALL"
fi
tpu_ssh "$TPU_NAME" "$ZONE" "$PROJECT" all "$REMOTE"
