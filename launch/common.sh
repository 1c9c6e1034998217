# shellcheck shell=bash
# shellcheck disable=SC2034  # the settings below are read by the scripts that source this file
# Helpers shared by the launch scripts (sourced, never run). Why they exist:
# - every script takes `--flag value` and `--flag=value` alike (split_args),
# - `--dry-run` prints each command, shell-quoted so it can be pasted, instead of running it
#   (run_cmd); nothing else goes to stdout in dry-run mode, notes go to stderr,
# - bad input stops with a message naming the script and the flag (die, require_value, check_*).

# Models and topologies the trainer's configs provide (configs/<model>.py:<topology>).
AZR_MODELS=(tiny_cpu qwen2_5_coder_3b qwen2_5_7b qwen2_5_coder_7b qwen2_5_coder_14b llama3_1_8b)
# TPU topologies: what configs/*.py define (azr_jax/defaults.py TOPOLOGIES; v6e = Trillium).
AZR_TPU_TOPOLOGIES=(v4-32 v5e-64 v5p-128 v6e-8 v6e-64 v6e-256)
AZR_GPU_TOPOLOGIES=(1xH100 8xH100)
# Where things live on the TPU workers; $HOME is expanded by the worker's shell.
AZR_REMOTE_DIR="\$HOME/azr-jax"
AZR_REMOTE_LOG_DIR="\$HOME/azr-logs"
# The virtual environment tpu_install.sh creates (the package needs Python >= 3.11; TPU VM
# images ship an older system python3) and tpu_run.sh runs the trainer from.
AZR_REMOTE_VENV="\$HOME/azr-venv"

AZR_DRY_RUN=0
SCRIPT_NAME=$(basename "$0")

die() {
  printf '%s: error: %s\n' "$SCRIPT_NAME" "$*" >&2
  printf "Run '%s --help' for usage.\n" "$SCRIPT_NAME" >&2
  exit 2
}

note() {
  printf '%s: %s\n' "$SCRIPT_NAME" "$*" >&2
}

# split_args ARGS...: sets ARGS with every `--flag=value` split into `--flag value`; arguments
# after a bare `--` are passed through untouched (they are trainer config overrides).
split_args() {
  ARGS=()
  local passthrough=0 arg
  for arg in "$@"; do
    if [[ $passthrough == 0 && $arg == -- ]]; then
      passthrough=1
      ARGS+=("$arg")
    elif [[ $passthrough == 0 && $arg == --*=* ]]; then
      ARGS+=("${arg%%=*}" "${arg#*=}")
    else
      ARGS+=("$arg")
    fi
  done
}

# require_value FLAG VALUE: a flag that takes a value got one.
require_value() {
  if [[ -z ${2-} || ${2-} == --* ]]; then
    die "$1 needs a value"
  fi
}

# require_set FLAG VALUE: a mandatory flag was given.
require_set() {
  if [[ -z ${2-} ]]; then
    die "missing required $1"
  fi
}

# check_choice FLAG VALUE CHOICE...: VALUE is one of the choices.
check_choice() {
  local flag=$1 value=$2 choice
  shift 2
  for choice in "$@"; do
    if [[ $value == "$choice" ]]; then
      return 0
    fi
  done
  die "$flag must be one of: $* (got '$value')"
}

check_model() {
  check_choice --model "$1" "${AZR_MODELS[@]}"
}

# shell_quote WORD...: the words as one line a shell reads back as the same words.
shell_quote() {
  local out=() word
  for word in "$@"; do
    if [[ $word =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
      out+=("$word")
    else
      out+=("'${word//\'/\'\\\'\'}'")
    fi
  done
  printf '%s\n' "${out[*]}"
}

# run_cmd CMD ARGS...: run it, or print it under --dry-run.
run_cmd() {
  if [[ $AZR_DRY_RUN == 1 ]]; then
    shell_quote "$@"
  else
    "$@"
  fi
}

# require_tool NAME: the tool is installed (skipped under --dry-run, which runs nothing).
require_tool() {
  if [[ $AZR_DRY_RUN == 0 ]] && ! command -v "$1" >/dev/null 2>&1; then
    die "'$1' is not installed or not on PATH"
  fi
}

# tpu_ssh NAME ZONE PROJECT WORKER COMMAND: run COMMAND on TPU worker(s) (`all` or an index).
tpu_ssh() {
  run_cmd gcloud compute tpus tpu-vm ssh "$1" --zone="$2" --project="$3" --worker="$4" --command="$5"
}

check_worker() {
  if [[ ! $1 =~ ^(all|[0-9]+)$ ]]; then
    die "--worker must be 'all' or a worker index (got '$1')"
  fi
}

# The flags every TPU script shares; AZR_TPU_NAME / AZR_ZONE / AZR_PROJECT give defaults.
TPU_TARGET_HELP='  --name NAME          TPU (queued resource and node) name [env AZR_TPU_NAME]
  --zone ZONE          GCP zone, e.g. us-central2-b [env AZR_ZONE]
  --project PROJECT    GCP project id [env AZR_PROJECT]'

init_tpu_target() {
  TPU_NAME=${AZR_TPU_NAME:-}
  ZONE=${AZR_ZONE:-}
  PROJECT=${AZR_PROJECT:-}
}

check_tpu_target() {
  require_set --name "$TPU_NAME"
  require_set --zone "$ZONE"
  require_set --project "$PROJECT"
  if [[ ! $TPU_NAME =~ ^[a-z]([-a-z0-9]*[a-z0-9])?$ ]]; then
    die "--name must be lowercase letters, digits and dashes, starting with a letter (got '$TPU_NAME')"
  fi
}
