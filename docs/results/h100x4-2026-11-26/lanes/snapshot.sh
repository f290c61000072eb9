#!/usr/bin/env bash
# Copies every lane's database (a consistent SQLite backup, gzipped) and log tail into DEST.
#
#   snapshot.sh WORKDIR DEST
set -uo pipefail
work=${1:?usage: snapshot.sh WORKDIR DEST}
dest=${2:?usage: snapshot.sh WORKDIR DEST}
mkdir -p "$dest"
for db in "$work"/*.db; do
  [ -f "$db" ] || continue
  name=$(basename "$db")
  python3 -c "import sqlite3, sys
s = sqlite3.connect(sys.argv[1]); d = sqlite3.connect(sys.argv[2]); s.backup(d); d.close()" "$db" "$dest/$name" \
    && gzip -f "$dest/$name"
done
tail -n 400 "$work"/*.log > "$dest/logs.txt" 2>/dev/null || true
