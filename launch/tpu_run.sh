#!/usr/bin/env bash
# Start `azr-jax train` on every worker of a TPU slice, detached (nohup) so it survives the ssh
# session, one log file per worker. JAX finds the other hosts itself (jax.distributed.initialize()
# on TPU pods), so every worker runs the identical command.
set -euo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# Persistent XLA compilation cache on each worker: a restarted run skips recompiling. Remote paths
# use $HOME (expanded by the worker's shell), never a quoted '~'.
REMOTE_CACHE_DIR="\$HOME/.cache/azr-jax-xla"
REMOTE_HF_DIR="\$HOME/hf-weights"

usage() {
  cat <<EOF
Usage: $SCRIPT_NAME --name NAME --zone ZONE --project PROJECT --model MODEL --topology TOPO --workdir gs://BUCKET/RUN [options] [-- --config.key=value ...]

Start training on all workers: azr-jax train --config=configs/MODEL.py:TOPO --workdir=WORKDIR ...
Logs go to $AZR_REMOTE_LOG_DIR/train-<hostname>.log on each worker (see tpu_logs.sh).
Re-running with the same --workdir resumes from its last checkpoint.

$TPU_TARGET_HELP
  --model MODEL        one of: ${AZR_MODELS[*]}
  --topology TOPO      one of: ${AZR_TPU_TOPOLOGIES[*]}
  --workdir gs://...   run directory shared by all hosts (checkpoints, metrics); must be on GCS
  --hf-path PATH       Hugging Face weights: a directory on the workers, or gs://... (copied to
                       $REMOTE_HF_DIR/<name> on every worker first)
  --env KEY=VALUE      extra environment variable for the trainer (repeatable)
  --stop               stop a running training (the pid in $AZR_REMOTE_LOG_DIR/train.pid) instead
  --dry-run            print the commands instead of running them
  -h, --help           this help
Arguments after '--' are passed to the trainer (config overrides).
EOF
}

init_tpu_target
MODEL=""
TOPOLOGY=""
WORKDIR=""
HF_PATH=""
STOP=0
EXTRA_ENV=()
OVERRIDES=()

split_args "$@"
set -- "${ARGS[@]}"
while [[ $# -gt 0 ]]; do
  case $1 in
    --name) require_value "$1" "${2-}"; TPU_NAME=$2; shift 2 ;;
    --zone) require_value "$1" "${2-}"; ZONE=$2; shift 2 ;;
    --project) require_value "$1" "${2-}"; PROJECT=$2; shift 2 ;;
    --model) require_value "$1" "${2-}"; MODEL=$2; shift 2 ;;
    --topology) require_value "$1" "${2-}"; TOPOLOGY=$2; shift 2 ;;
    --workdir) require_value "$1" "${2-}"; WORKDIR=$2; shift 2 ;;
    --hf-path) require_value "$1" "${2-}"; HF_PATH=$2; shift 2 ;;
    --env)
      require_value "$1" "${2-}"
      if [[ ! $2 =~ ^[A-Za-z_][A-Za-z0-9_]*=.*$ ]]; then
        die "--env takes KEY=VALUE (got '$2')"
      fi
      EXTRA_ENV+=("$2"); shift 2 ;;
    --stop) STOP=1; shift ;;
    --dry-run) AZR_DRY_RUN=1; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; OVERRIDES=("$@"); break ;;
    *) die "unknown argument '$1'" ;;
  esac
done

check_tpu_target
require_tool gcloud

if [[ $STOP == 1 ]]; then
  tpu_ssh "$TPU_NAME" "$ZONE" "$PROJECT" all \
    "if [ -f \"$AZR_REMOTE_LOG_DIR/train.pid\" ]; then kill -TERM \"\$(cat \"$AZR_REMOTE_LOG_DIR/train.pid\")\" && echo \"stopping on \$(hostname)\"; fi"
  exit 0
fi

require_set --model "$MODEL"
check_model "$MODEL"
require_set --topology "$TOPOLOGY"
check_choice --topology "$TOPOLOGY" "${AZR_TPU_TOPOLOGIES[@]}"
require_set --workdir "$WORKDIR"
if [[ $WORKDIR != gs://* ]]; then
  die "--workdir must be a gs:// path: all hosts of a pod write one checkpoint, so it must be shared (got '$WORKDIR')"
fi
for override in "${OVERRIDES[@]}"; do
  if [[ $override != --config.* ]]; then
    die "arguments after '--' must be --config.key=value overrides (got '$override')"
  fi
done

TRAIN_LINE=$(shell_quote azr-jax train "--config=configs/$MODEL.py:$TOPOLOGY" "--workdir=$WORKDIR")
FETCH=""
if [[ -n $HF_PATH ]]; then
  if [[ $HF_PATH == gs://* ]]; then
    HF_NAME=$(basename "${HF_PATH%/}")
    if [[ ! $HF_NAME =~ ^[A-Za-z0-9._-]+$ ]]; then
      die "--hf-path must end in a plain directory name (got '$HF_PATH')"
    fi
    LOCAL_HF="$REMOTE_HF_DIR/$HF_NAME"
    FETCH="mkdir -p \"$LOCAL_HF\" && gcloud storage rsync --recursive $(shell_quote "$HF_PATH") \"$LOCAL_HF\" && "
    TRAIN_LINE+=" \"--config.model.hf_path=$LOCAL_HF\""
  else
    TRAIN_LINE+=" $(shell_quote "--config.model.hf_path=$HF_PATH")"
  fi
fi
if [[ ${#OVERRIDES[@]} -gt 0 ]]; then
  TRAIN_LINE+=" $(shell_quote "${OVERRIDES[@]}")"
fi

# PATH: the venv of tpu_install.sh holds the azr-jax entry point (~/.local/bin: a pip --user
# install); unbuffered output keeps logs live.
ENV_WORDS="PATH=\"$AZR_REMOTE_VENV/bin:\$HOME/.local/bin:\$PATH\" PYTHONUNBUFFERED=1 JAX_COMPILATION_CACHE_DIR=\"$REMOTE_CACHE_DIR\""
if [[ ${#EXTRA_ENV[@]} -gt 0 ]]; then
  ENV_WORDS+=" $(shell_quote "${EXTRA_ENV[@]}")"
fi
LOG="$AZR_REMOTE_LOG_DIR/train-\$(hostname).log"
REMOTE="set -e; cd \"$AZR_REMOTE_DIR\"; mkdir -p \"$AZR_REMOTE_LOG_DIR\" \"$REMOTE_CACHE_DIR\"; ${FETCH}nohup env $ENV_WORDS $TRAIN_LINE > \"$LOG\" 2>&1 < /dev/null & echo \$! > \"$AZR_REMOTE_LOG_DIR/train.pid\"; echo \"started on \$(hostname), log $LOG\""
tpu_ssh "$TPU_NAME" "$ZONE" "$PROJECT" all "$REMOTE"
