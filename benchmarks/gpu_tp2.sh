#!/usr/bin/env bash
# Tensor parallelism on a 2-GPU machine (H100 x2): vLLM with tensor_parallel_size 2 and Transformers across
# both GPUs, each against its 1-GPU run, on a Llama-3.2-1B-shaped checkpoint (random weights, the real
# Llama 3 tokenizer) made by `joulebench model create`. Energy is recorded per GPU and summed.
#
#   benchmarks/gpu_tp2.sh RESULTS.db
#
# Resumable: run it again with the same database after a stop and only the unfinished cells run.
set -euo pipefail
cd "$(dirname "$0")/.."

db=${1:?usage: benchmarks/gpu_tp2.sh RESULTS.db}
plan=benchmarks/plans/gpu_tp2.yaml
model=benchmarks/models/llama-3.2-1b

gpus=$(nvidia-smi --query-gpu=index --format=csv,noheader | wc -l)
if [ "$gpus" -lt 2 ]; then
  echo "gpu_tp2.sh: needs 2 GPUs, found $gpus" >&2
  exit 2
fi
# CUDA then numbers GPUs as NVML does, so CUDA_VISIBLE_DEVICES names the GPUs that are measured.
export CUDA_DEVICE_ORDER=PCI_BUS_ID

if [ ! -f "$model/config.json" ]; then
  mkdir -p "$(dirname "$model")"
  joulebench model create llama-3.2-1b "$model"
fi

joulebench sources
joulebench sweep "$plan" --dry-run --resume --db "$db"
status=0
joulebench sweep "$plan" --resume --db "$db" || status=$?

# Which GPUs each run measured: tensor-parallel runs must show gpu0 and gpu1, the others one GPU.
python - "$db" <<'PY'
import sqlite3
import sys

conn = sqlite3.connect(sys.argv[1])
rows = conn.execute(
    """
    SELECT r.engine, r.tensor_parallel, r.workload, r.batch_size, r.status,
           GROUP_CONCAT(DISTINCT se.device), SUM(CASE WHEN se.device = 'all' THEN se.energy_j END)
    FROM runs r JOIN trials t ON t.run_id = r.id JOIN stage_energy se ON se.trial_id = t.id
    WHERE r.sweep_key IS NOT NULL AND t.kind = 'generation' AND se.component = 'gpu' AND se.stage = 'generate'
    GROUP BY r.id ORDER BY r.id
    """
).fetchall()
print(f"{'engine':<14}{'tp':>3}  {'workload':<10}{'batch':>6}  {'status':<8}{'gpu devices':<22}{'gpu J (sum)':>12}")
for engine, tp, workload, batch, status, devices, energy in rows:
    names = ",".join(sorted(d for d in (devices or "").split(",") if d != "all"))
    joules = f"{energy:.1f}" if energy is not None else "-"
    print(f"{engine:<14}{tp:>3}  {workload:<10}{batch:>6}  {status:<8}{names:<22}{joules:>12}")
PY
exit "$status"
