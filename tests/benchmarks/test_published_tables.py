"""The published results' tables say what their committed analysis says: every token-generation and setup
cell of each results README printed again from ``analysis.json`` at its own precision changes nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
FOLDERS = sorted(p for p in (ROOT / "docs" / "results").iterdir() if (p / "analysis.json").is_file())


@pytest.mark.parametrize("folder", FOLDERS, ids=[p.name for p in FOLDERS])
def test_readme_tables_match_the_analysis(folder: Path) -> None:
    script = ROOT / "benchmarks" / "gpu_study" / "refresh_tables.py"
    proc = subprocess.run(
        [sys.executable, str(script), str(folder), "--check"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "no cell changes"


def test_the_check_fails_when_a_cell_is_off(tmp_path: Path) -> None:
    folder = FOLDERS[0]
    (tmp_path / "analysis.json").write_text((folder / "analysis.json").read_text())
    text = (folder / "README.md").read_text()
    line = next(
        line for line in text.splitlines() if line.startswith("| 1B | standard") or "| standard (128" in line
    )
    cells = line.split("|")
    cells[4 if line.startswith("| 1B") else 3] = " 9.9999 ± 0.0001 "
    (tmp_path / "README.md").write_text(text.replace(line, "|".join(cells)))
    script = ROOT / "benchmarks" / "gpu_study" / "refresh_tables.py"
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path), "--check"], capture_output=True, text=True
    )
    assert proc.returncode == 1 and "9.9999 ± 0.0001 ->" in proc.stdout
