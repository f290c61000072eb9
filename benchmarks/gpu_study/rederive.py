"""Every published GPU-study figure derived again from the committed raw databases, by this release's
accounting rule (docs/counters.md), and what changed written beside each folder:

    python benchmarks/gpu_study/rederive.py [FOLDER ...]     # default: every folder under docs/results

For each folder it runs the product's own commands (``build``: ``joulebench db merge`` of the raw
databases as they came back, ``joulebench db recompute`` on the merge, ``joulebench report --portable``),
then ``analyze.py`` (with ``--superseded`` where the folder has one), and writes
``rederive.txt``: each summary figure (mean of J/token, J/response, W, J, tokens/s) whose mean moved by
more than 0.05 %, the old and new value and by how much, largest first.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import analyze  # beside this script

ROOT = Path(__file__).resolve().parents[2]
METRICS = ("j_per_token", "j_per_response", "power_w", "energy_j", "tokens_per_s")
KEY = ("kind", "engine", "model", "workload", "stage", "component", "estimated", "metric")
THRESHOLD = 0.0005


def _summary(path: Path) -> dict[tuple[str, ...], float]:
    if not path.is_file():
        return {}
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {tuple(r[k] for k in KEY): float(r["mean"]) for r in rows if r["metric"] in METRICS and r["mean"]}


def build(folder: Path) -> None:
    """``study.db`` (ignored by git) and ``report/`` of a results folder, from its ``raw/*.db.gz``."""
    merged = folder / "study.db"
    merged.unlink(missing_ok=True)
    raws = sorted((folder / "raw").glob("*.db.gz"))
    for command in (
        ["db", "merge", *map(str, raws), "--out", str(merged)],
        ["db", "recompute", str(merged)],
        ["report", "--db", str(merged), "--out", str(folder / "report"), "--portable"],
    ):
        print("joulebench " + " ".join(command).replace(str(ROOT) + "/", ""), flush=True)
        subprocess.run([sys.executable, "-m", "joulebench", *command], check=True)


def rederive(folder: Path) -> list[str]:
    before = _summary(folder / "report" / "summary.csv")
    build(folder)
    args = [str(folder)]
    if (folder / "superseded").is_dir():
        args += ["--superseded", str(folder / "superseded")]
    analyze.main(args)
    after = _summary(folder / "report" / "summary.csv")
    changes = []
    for key, new in after.items():
        old = before.get(key)
        if old is None or old == 0:
            continue
        rel = (new - old) / abs(old)
        if abs(rel) > THRESHOLD:
            changes.append((abs(rel), key, old, new, rel))
    changes.sort(reverse=True)
    lines = [
        f"# {folder.name}: summary means that moved by more than {THRESHOLD:.2%} when every window was "
        "computed again by docs/counters.md's rule (benchmarks/gpu_study/rederive.py)",
        "# engine | model | workload | stage | component | metric | was | is | change",
    ]
    for _, key, old, new, rel in changes:
        kind, engine, model, workload, stage, component, _estimated, metric = key
        lines.append(
            f"{kind} | {engine} | {model} | {workload or '-'} | {stage} | {component or '-'} | {metric} | "
            f"{old:.6g} | {new:.6g} | {rel:+.3%}"
        )
    record = folder / "rederive.txt"
    if not changes and record.is_file():
        # the report was rebuilt by the same rule: the record of what the rule changed stays as it is
        return [*lines, f"(none this time; {record.name} keeps the earlier record)"]
    if not changes:
        lines.append("(none)")
    record.write_text("\n".join(lines) + "\n")
    return lines


def main(argv: list[str]) -> int:
    folders = [Path(a) for a in argv] or sorted(
        p for p in (ROOT / "docs" / "results").iterdir() if p.is_dir()
    )
    for folder in folders:
        lines = rederive(folder)
        print("\n".join(lines[:12]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
