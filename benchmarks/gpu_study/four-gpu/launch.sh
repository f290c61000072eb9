#!/usr/bin/env bash
# The study's campaign on one machine with 4 GPUs, as background lanes (lane.sh), so that a 30-minute
# machine measures four engine/model pairs at once. Each lane has its own GPU and database in WORK.
#
#   launch.sh start WORK   with DeepSpeed importable: makes the models, then starts
#                          gpu0: 1B Transformers (+ its unmonitored twin)   gpu1: 1B DeepSpeed
#   launch.sh vllm WORK    with vLLM importable, once the 8B model exists:
#                          gpu2: 1B vLLM (+ its unmonitored twin), then 8B Transformers   gpu3: 8B vLLM
#                          gpu0,1: 1B on 2 GPUs, once gpu0 and gpu1 are done
#   snapshot.sh WORK DEST  copies every database and log tail out while lanes run.
#
# Lanes print to WORK/<lane>.log and leave their pid in WORK/<lane>.pid.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
phase=${1:?usage: launch.sh start|vllm WORK}
work=${2:?usage: launch.sh start|vllm WORK}
mkdir -p "$work"
models=$here/../models

lane() {  # lane NAME GPUS [--after PIDFILE]... PLAN...
  local name=$1 gpus=$2
  shift 2
  setsid nohup bash "$here/lane.sh" "$gpus" "$work/$name.db" "$@" > "$work/$name.log" 2>&1 < /dev/null &
  echo $! > "$work/$name.pid"
  echo "lane $name on gpu $gpus: pid $(cat "$work/$name.pid")"
}

case $phase in
  start)
    python3 -m joulebench sources > "$work/sources.txt" 2>&1 || true
    [ -f "$models/llama-3.2-1b/config.json" ] || python3 -m joulebench model create llama-3.2-1b "$models/llama-3.2-1b"
    if [ ! -f "$models/llama-3.1-8b/config.json" ]; then
      setsid nohup python3 -m joulebench model create llama-3.1-8b "$models/llama-3.1-8b" \
        > "$work/create-8b.log" 2>&1 < /dev/null &
      echo $! > "$work/create-8b.pid"
    fi
    lane gpu0 0 "$here/1b-transformers.yaml" "$here/1b-transformers-unmonitored.yaml"
    lane gpu1 1 "$here/1b-deepspeed.yaml"
    ;;
  vllm)
    lane gpu2 2 --after "$work/create-8b.pid" "$here/1b-vllm.yaml" "$here/1b-vllm-unmonitored.yaml" \
      "$here/8b-transformers.yaml"
    lane gpu3 3 --after "$work/create-8b.pid" "$here/8b-vllm.yaml"
    lane gpu01 0,1 --after "$work/gpu0.pid" --after "$work/gpu1.pid" "$here/1b-tp2.yaml"
    ;;
  *)
    echo "launch.sh: unknown phase '$phase' (start or vllm)" >&2
    exit 2
    ;;
esac
