#!/usr/bin/env bash
# One lane of the study on a machine with several GPUs: the plans run one after another on the GPUs named,
# each a resumable `joulebench sweep` into one database. Lanes on different GPUs run side by side.
#
#   lane.sh GPUS RESULTS.db [--after PIDFILE]... PLAN.yaml...
#
# GPUS is a CUDA_VISIBLE_DEVICES list in NVML order (e.g. 2 or 0,1): the monitor measures those GPUs only.
# --after waits until the process whose pid the file holds has ended (a lane that needs a GPU or a model
# another lane is still using or making). Each lane keeps its own compile caches so that a setup trial's
# cold or warm state is its own, not a neighbour's.
set -uo pipefail
gpus=${1:?usage: lane.sh GPUS RESULTS.db [--after PIDFILE]... PLAN.yaml...}
db=${2:?usage: lane.sh GPUS RESULTS.db [--after PIDFILE]... PLAN.yaml...}
shift 2
while [ "${1:-}" = "--after" ]; do
  pidfile=${2:?--after needs a pid file}
  shift 2
  while [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; do sleep 5; done
done

export CUDA_DEVICE_ORDER=PCI_BUS_ID CUDA_VISIBLE_DEVICES=$gpus
first=${gpus%%,*}
lane_cache=${LANE_CACHE_ROOT:-$HOME/.cache/joulebench-lanes}/gpu$gpus
export VLLM_CACHE_ROOT=$lane_cache/vllm TORCHINDUCTOR_CACHE_DIR=$lane_cache/inductor \
  TRITON_CACHE_DIR=$lane_cache/triton TORCH_EXTENSIONS_DIR=$lane_cache/torch_extensions
# DeepSpeed's single-process rendezvous binds MASTER_PORT: one port per lane
export MASTER_PORT=$((29500 + first))

status=0
for plan in "$@"; do
  echo "== $(date -u +%H:%M:%S) lane gpu $gpus: $plan"
  python3 -m joulebench sweep "$plan" --dry-run --resume --db "$db" || status=$?
  python3 -m joulebench sweep "$plan" --resume --db "$db" --max-retries 1 || status=$?
done
echo "== $(date -u +%H:%M:%S) lane gpu $gpus done, status $status"
exit "$status"
