#!/usr/bin/env bash
# A part of the study on one machine with several GPUs, as background lanes (lane.sh), so that one short
# machine booking measures several engine/model pairs at once. Each lane has its own GPUs and database in WORK.
#
#   launch.sh LANES PHASE WORK
#
# LANES is a table (part2.lanes, part3.lanes): phase, lane name, GPUs, the lanes it waits for ("-": none),
# and the plans it runs in turn. `launch.sh LANES start WORK` makes every model the plans name (the first
# in the foreground, larger ones in the background; lanes wait for the models they use), then starts the
# lanes of phase "start"; `launch.sh LANES vllm WORK`, run once vLLM is importable, starts the lanes of
# phase "vllm". Lanes print to WORK/<lane>.log and leave their pid in WORK/<lane>.pid; snapshot.sh copies
# the databases out while they run, wait.sh waits for them.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
usage="usage: launch.sh LANES start|vllm WORK"
lanes=${1:?$usage}
phase=${2:?$usage}
work=${3:?$usage}
[ -f "$lanes" ] || { echo "launch.sh: no lanes table '$lanes'" >&2; exit 2; }
case $phase in start | vllm) ;; *) echo "launch.sh: unknown phase '$phase' ($usage)" >&2; exit 2 ;; esac
mkdir -p "$work"
models=$(cd "$here/.." && pwd)/models

plan_models() {  # the presets that plans name as ../models/<preset>, smallest first (llama-3.2-1b < -3b < -8b)
  python3 -c 'import sys, yaml
for plan in sys.argv[1:]:
    for m in yaml.safe_load(open(plan))["models"]:
        if m.startswith("../models/"):
            print(m.removeprefix("../models/"))' "$@" | sort -u | sort -t- -k3,3V
}

if [ "$phase" = start ]; then
  python3 -m joulebench sources > "$work/sources.txt" 2>&1 || true
  mapfile -t all_plans < <(grep -v '^#' "$lanes" | awk 'NF {for (i = 5; i <= NF; i++) print $i}' | sort -u)
  first=1
  for preset in $(plan_models "${all_plans[@]/#/$here/}"); do
    [ -f "$models/$preset/config.json" ] && continue
    if [ $first = 1 ]; then  # the first lanes start on the smallest model at once
      python3 -m joulebench model create "$preset" "$models/$preset"
      first=0
    else
      setsid nohup python3 -m joulebench model create "$preset" "$models/$preset" \
        > "$work/create-$preset.log" 2>&1 < /dev/null &
      echo $! > "$work/create-$preset.pid"
    fi
  done
fi

grep -v '^#' "$lanes" | while read -r lane_phase name gpus after plans; do
  [ -n "$lane_phase" ] && [ "$lane_phase" = "$phase" ] || continue
  waits=()
  if [ "$after" != - ]; then
    for other in ${after//,/ }; do waits+=(--after "$work/$other.pid"); done
  fi
  paths=()
  for plan in $plans; do paths+=("$here/$plan"); done
  for preset in $(plan_models "${paths[@]}"); do
    [ -f "$work/create-$preset.pid" ] && waits+=(--after "$work/create-$preset.pid")
  done
  setsid nohup bash "$here/lane.sh" "$gpus" "$work/$name.db" "${waits[@]}" "${paths[@]}" \
    > "$work/$name.log" 2>&1 < /dev/null &
  echo $! > "$work/$name.pid"
  echo "lane $name on gpu $gpus: pid $(cat "$work/$name.pid"): $plans"
done
