#!/usr/bin/env bash
# Train on this machine's NVIDIA GPU(s) through JAX's CUDA backend.
set -euo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Share of GPU memory JAX takes at start-up: leaves room for the CUDA context, cuDNN workspaces and
# the sandbox processes' host memory pressure; JAX's own default is 0.75.
DEFAULT_MEM_FRACTION=0.90

usage() {
  cat <<USAGE
Usage: $SCRIPT_NAME --model MODEL --workdir DIR [options] [-- --config.key=value ...]

Run azr-jax train --config=configs/MODEL.py:TOPOLOGY --workdir=DIR on the local GPU(s).
Re-running with the same --workdir resumes from its last checkpoint.

  --model MODEL        one of: ${AZR_MODELS[*]}
  --workdir DIR        run directory (checkpoints, metrics, logs)
  --topology TOPO      one of: ${AZR_GPU_TOPOLOGIES[*]} (default: 1xH100)
  --hf-path DIR        local Hugging Face checkpoint directory of the base model
  --install            first run: pip install -e '.[cuda]' in $REPO_ROOT
  --mem-fraction F     XLA_PYTHON_CLIENT_MEM_FRACTION (default: $DEFAULT_MEM_FRACTION)
  --no-preallocate     XLA_PYTHON_CLIENT_PREALLOCATE=false (allocate on demand; slower, shares the GPU)
  --dry-run            print the commands instead of running them
  -h, --help           this help
Arguments after '--' are passed to the trainer (config overrides).
USAGE
}

MODEL=""
WORKDIR=""
TOPOLOGY=1xH100
HF_PATH=""
INSTALL=0
MEM_FRACTION=$DEFAULT_MEM_FRACTION
PREALLOCATE=true
OVERRIDES=()

split_args "$@"
set -- "${ARGS[@]}"
while [[ $# -gt 0 ]]; do
  case $1 in
    --model) require_value "$1" "${2-}"; MODEL=$2; shift 2 ;;
    --workdir) require_value "$1" "${2-}"; WORKDIR=$2; shift 2 ;;
    --topology) require_value "$1" "${2-}"; TOPOLOGY=$2; shift 2 ;;
    --hf-path) require_value "$1" "${2-}"; HF_PATH=$2; shift 2 ;;
    --install) INSTALL=1; shift ;;
    --mem-fraction) require_value "$1" "${2-}"; MEM_FRACTION=$2; shift 2 ;;
    --no-preallocate) PREALLOCATE=false; shift ;;
    --dry-run) AZR_DRY_RUN=1; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; OVERRIDES=("$@"); break ;;
    *) die "unknown argument '$1'" ;;
  esac
done

require_set --model "$MODEL"
check_model "$MODEL"
require_set --workdir "$WORKDIR"
check_choice --topology "$TOPOLOGY" "${AZR_GPU_TOPOLOGIES[@]}"
if [[ ! $MEM_FRACTION =~ ^(0?\.[0-9]+|1(\.0*)?)$ ]]; then
  die "--mem-fraction must be a number in (0, 1] (got '$MEM_FRACTION')"
fi
for override in "${OVERRIDES[@]}"; do
  if [[ $override != --config.* ]]; then
    die "arguments after '--' must be --config.key=value overrides (got '$override')"
  fi
done

# configs/ is relative to the checkout.
run_cmd cd "$REPO_ROOT"
if [[ $INSTALL == 1 ]]; then
  run_cmd python3 -m pip install -e '.[cuda]'
fi
if [[ $AZR_DRY_RUN == 0 ]]; then
  require_tool azr-jax
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader >&2 || true
  else
    note "nvidia-smi not found: is the NVIDIA driver installed?"
  fi
fi
TRAIN=(azr-jax train "--config=configs/$MODEL.py:$TOPOLOGY" "--workdir=$WORKDIR")
if [[ -n $HF_PATH ]]; then
  TRAIN+=("--config.model.hf_path=$HF_PATH")
fi
TRAIN+=("${OVERRIDES[@]}")
run_cmd env "XLA_PYTHON_CLIENT_MEM_FRACTION=$MEM_FRACTION" "XLA_PYTHON_CLIENT_PREALLOCATE=$PREALLOCATE" \
  "${TRAIN[@]}"
