#!/usr/bin/env bash
# Waits up to SECONDS for every lane in WORK to end, printing progress, then snapshots into DEST.
#
#   wait.sh WORK DEST SECONDS
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=${1:?usage: wait.sh WORK DEST SECONDS}
dest=${2:?usage: wait.sh WORK DEST SECONDS}
limit=${3:?usage: wait.sh WORK DEST SECONDS}
end=$((SECONDS + limit))
while [ $SECONDS -lt $end ]; do
  running=0
  for pidfile in "$work"/*.pid; do
    kill -0 "$(cat "$pidfile")" 2>/dev/null && running=$((running + 1))
  done
  [ $running -eq 0 ] && break
  sleep 10
done
for log in "$work"/*.log; do
  echo "---- $(basename "$log"): $(grep -c '' "$log") lines"
  tail -n 4 "$log" | cut -c1-220
done
nvidia-smi --query-gpu=index,power.draw,memory.used,utilization.gpu --format=csv,noheader
echo "lanes still running: $running"
bash "$here/snapshot.sh" "$work" "$dest"
