"""Bring a results README's token-generation tables in line with its ``analysis.json``:

    python benchmarks/gpu_study/refresh_tables.py docs/results/h100x4-2026-11-26 [--check]

Each row of a table whose header has ``engine`` and ``J/token`` is matched to its cell of
``analysis.json`` (model, workload, engine label), and each number column is printed again from the cell
at exactly the precision it had (decimals, thousands separators, ``±`` and ``%`` kept). So is each
``s / J`` cell of the setup table (header ``stage | Transformers | DeepSpeed | vLLM, cold ...``), from the
analysis' setup stages. Every cell that changes is listed; ``--check`` changes nothing and exits 1 when a
cell would change.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

MODELS = {"1B": "llama-3.2-1b", "3B": "llama-3.2-3b", "8B": "llama-3.1-8b"}
WORKLOADS = ("standard", "high-concurrency", "high-throughput")
# a README label's start -> the analysis engine labels it may stand for, first found wins
ENGINES = (
    ("vLLM, tensor parallel 2", ("vllm:tp2",)),
    ("Transformers, layers split over 2 GPUs", ("transformers:2gpu",)),
    ("DeepSpeed, automatic tensor parallelism", ("deepspeed:tp2",)),
    ("Transformers, its own tensor parallelism", ("transformers:tp-plan",)),
    ("Transformers compiled", ("transformers:compiled",)),
    ("Transformers, expandable", ("transformers:expandable",)),
    ("DeepSpeed, expandable", ("deepspeed:expandable",)),
    ("Transformers", ("transformers:eager", "transformers")),
    ("DeepSpeed", ("deepspeed",)),
    ("vLLM", ("vllm",)),
)
# a column's header -> (analysis metric, what of it): "stat" mean ± CI, "mean", "cv", "n"
COLUMNS = {
    "J/token": ("j_per_token", "stat"),
    "J/token (GPU)": ("j_per_token", "stat"),
    "J/response": ("j_per_response", "stat"),
    "J/response (GPU)": ("j_per_response", "stat"),
    "tokens/s": ("tokens_per_s", "stat"),
    "J/token (both GPUs)": ("j_per_token", "stat"),
    "GPU W": ("power_w", "stat"),
    "GPU W (both)": ("power_w", "stat"),
    "GPU power (W)": ("power_w", "stat"),
    "TTFT (s)": ("ttft_s", "stat"),
    "TPOT (s)": ("itl_s", "mean"),
    "steady J/token": ("steady_j_per_token", "mean"),
    "CV J/token": ("j_per_token", "cv"),
    "repeats": ("j_per_token", "n"),
}
NUMBER = re.compile(r"[0-9][0-9,]*(?:\.[0-9]+)?")


def _render(value: float, like: str) -> str:
    """``value`` printed as ``like`` was: its decimals and its thousands separators."""
    decimals = len(like.split(".")[1]) if "." in like else 0
    text = (
        f"{value:,.{decimals}f}"
        if "," in like or (decimals == 0 and abs(value) >= 10_000)
        else f"{value:.{decimals}f}"
    )
    return text


def _cell(text: str, stat: dict[str, Any], what: str) -> str:
    numbers = NUMBER.findall(text)
    if not numbers:
        return text
    if what == "n":
        return text.replace(numbers[0], str(stat["n"]), 1)
    if what == "cv":
        return text.replace(numbers[0], _render(100 * stat["cv"], numbers[0]), 1)
    parts = [stat["mean"]]
    if what == "stat" and "±" in text and len(numbers) >= 2:
        parts.append(stat["ci_half_width"])
    out, pos = "", 0
    for value, old in zip(parts, numbers, strict=False):
        at = text.index(old, pos)
        out += text[pos:at] + _render(value, old)
        pos = at + len(old)
    return out + text[pos:]


def _cells(analysis: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(g["model"], g["workload"], g["engine"]): g for g in analysis["generation"]}


# the setup table: a row's start -> (stage, model); a column's start -> the analysis' setup engine
SETUP_ROWS = (
    ("import", ("import", "all models")),
    ("engine initialisation", ("engine_init", "all models")),
    *((f"model loading, E_LM {size}", ("model_load", name)) for size, name in MODELS.items()),
    *((f"whole setup until the first token, {size}", ("setup", name)) for size, name in MODELS.items()),
)
SETUP_COLUMNS = (
    ("Transformers", ("transformers:eager", "transformers")),
    ("DeepSpeed", ("deepspeed",)),
    ("vLLM, cold", ("vllm (cold compile cache)",)),
    ("vLLM, warm", ("vllm (warm compile cache)",)),
)


def _setup_cell(text: str, stages: dict[str, Any]) -> str:
    """``s ± ci / J ± ci`` (or ``s / J`` for one trial) from a stage's duration and energy."""
    parts = text.split(" / ")
    if len(parts) != 2:
        return text
    return " / ".join(
        _cell(p, stages[m], "stat") for p, m in zip(parts, ("duration_s", "energy_j"), strict=True)
    )


def _setup_row(header: list[str], fields: list[str], setup: dict[tuple[str, str], Any]) -> list[str]:
    stage_model = next((sm for start, sm in SETUP_ROWS if fields[0].startswith(start)), None)
    out = list(fields)
    if stage_model is None:
        return out
    stage, model = stage_model
    for k, name in enumerate(header[1:], start=1):
        engines = next((e for start, e in SETUP_COLUMNS if name.startswith(start)), ())
        entry = next((setup[(e, model)] for e in engines if (e, model) in setup), None)
        if entry is not None and stage in entry["stages"] and k < len(fields):
            out[k] = _setup_cell(fields[k], entry["stages"][stage])
    return out


def refresh(folder: Path) -> tuple[str, list[str]]:
    readme = folder / "README.md"
    analysis = json.loads((folder / "analysis.json").read_text())
    cells = _cells(analysis)
    setup = {(e["engine"], e["model"]): e for e in analysis.get("setup", [])}
    lines = readme.read_text().splitlines()
    changes: list[str] = []
    header: list[str] | None = None
    model = workload = None
    for i, line in enumerate(lines):
        if not line.startswith("|"):
            header = None
            continue
        fields = [f.strip() for f in line.strip().strip("|").split("|")]
        if header is None:
            generation = "engine" in fields and any(f.startswith("J/token") for f in fields)
            is_setup = fields[:1] == ["stage"] and "DeepSpeed" in fields
            header = fields if generation or is_setup else []
            model = workload = None
            continue
        if not header or set(line) <= set("|-: "):
            continue
        if header[0] == "stage":
            new_fields = _setup_row(header, fields, setup)
            changes += [
                f"{fields[0]} | {header[k]}: {fields[k]} -> {v}"
                for k, v in enumerate(new_fields)
                if v != fields[k]
            ]
            lines[i] = "| " + " | ".join(new_fields) + " |"
            continue
        row = dict(zip(header, fields, strict=False))
        model = MODELS.get(row.get("model", ""), model) or "llama-3.2-1b"  # a table without the column: 1B
        # a table without the column is of the standard workload (the two-GPU cells)
        workload = next((w for w in WORKLOADS if row.get("workload", "standard").startswith(w)), workload)
        label = row["engine"]
        engines = next((names for start, names in ENGINES if label.startswith(start)), ())
        cell = next((cells[(model, workload, e)] for e in engines if (model, workload, e) in cells), None)
        if cell is None:
            continue
        new_fields = list(fields)
        for k, name in enumerate(header):
            if name not in COLUMNS or k >= len(fields):
                continue
            metric, what = COLUMNS[name]
            stat = cell.get(metric)
            if not stat or stat.get("mean") is None:
                continue
            new_fields[k] = _cell(fields[k], stat, what)
            if new_fields[k] != fields[k]:
                changes.append(f"{model} {workload} {label} | {name}: {fields[k]} -> {new_fields[k]}")
        lines[i] = "| " + " | ".join(new_fields) + " |"
    return "\n".join(lines) + "\n", changes


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    text, changes = refresh(args.folder)
    print("\n".join(changes) if changes else "no cell changes")
    if args.check:
        return 1 if changes else 0
    (args.folder / "README.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
