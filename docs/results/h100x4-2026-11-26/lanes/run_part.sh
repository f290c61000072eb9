#!/usr/bin/env bash
# Runs one part of the GPU study with joulebench's own CLI, resumable:
#
#   benchmarks/gpu_study/run_part.sh PLAN.yaml RESULTS.db
#
# Every model folder the plan names as ./models/<preset> is created first with `joulebench model create`
# when missing (published architecture, seeded random bf16 weights, the real Llama 3 tokenizer).
# Prints `joulebench sources`, the dry run, and the sweep's own output.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
plan=${1:?usage: run_part.sh PLAN.yaml RESULTS.db}
db=${2:?usage: run_part.sh PLAN.yaml RESULTS.db}
jb=(python3 -m joulebench)
export CUDA_DEVICE_ORDER=PCI_BUS_ID

presets=$(python3 -c 'import sys, yaml
for m in yaml.safe_load(open(sys.argv[1]))["models"]:
    if m.startswith("./models/"):
        print(m.removeprefix("./models/"))' "$plan")
for preset in $presets; do
  if [ ! -f "$here/models/$preset/config.json" ]; then
    mkdir -p "$here/models"
    "${jb[@]}" model create "$preset" "$here/models/$preset"
  fi
done
"${jb[@]}" sources
"${jb[@]}" sweep "$plan" --dry-run --resume --db "$db"
"${jb[@]}" sweep "$plan" --resume --db "$db" --max-retries 1
