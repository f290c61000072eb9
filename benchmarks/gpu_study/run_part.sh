#!/usr/bin/env bash
# Runs one part of the GPU study with joulebench's own CLI, resumable:
#
#   benchmarks/gpu_study/run_part.sh PLAN.yaml RESULTS.db
#
# The model folder named in the plan is created first with `joulebench model create` when missing.
# Prints `joulebench sources`, the dry run, and the sweep's own output.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
plan=${1:?usage: run_part.sh PLAN.yaml RESULTS.db}
db=${2:?usage: run_part.sh PLAN.yaml RESULTS.db}
jb=(python3 -m joulebench)
export CUDA_DEVICE_ORDER=PCI_BUS_ID

model_dir="$here/models/llama-3.2-1b"
if [ ! -f "$model_dir/config.json" ]; then
  mkdir -p "$here/models"
  "${jb[@]}" model create llama-3.2-1b "$model_dir"
fi
"${jb[@]}" sources
"${jb[@]}" sweep "$plan" --dry-run --resume --db "$db"
"${jb[@]}" sweep "$plan" --resume --db "$db" --max-retries 1
