#!/usr/bin/env bash
# Starts lanes from an earlier part's databases, so that their sweeps (always --resume) run only what that
# part left: cells it never reached, and of a cell it cut off mid-way only the missing repeats.
#
#   seed.sh WORK LANE=RAW.db.gz...     e.g. seed.sh WORK gpu0=docs/results/…/raw/part4-gpu0.db.gz
#
# Run it before launch.sh. A lane's database that exists already is left alone. Sweep keys include the
# model folder's absolute path: run the lanes from the same folder as the part that wrote RAW (/root/repo
# in the study's device calls), or the cells start afresh.
set -euo pipefail
work=${1:?usage: seed.sh WORK LANE=RAW.db.gz...}
shift
mkdir -p "$work"
for pair in "$@"; do
  lane=${pair%%=*}
  raw=${pair#*=}
  [ "$lane" != "$pair" ] && [ -f "$raw" ] || { echo "seed.sh: expected LANE=RAW.db.gz, got '$pair'" >&2; exit 2; }
  if [ -e "$work/$lane.db" ]; then
    echo "seed.sh: $work/$lane.db exists; left as it is"
    continue
  fi
  gunzip -c "$raw" > "$work/$lane.db"
  echo "lane $lane starts from $raw"
done
