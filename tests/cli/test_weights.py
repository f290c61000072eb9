"""Truncated or damaged weights are one line and exit 2 before anything runs (they ended in exit 1, with
nothing on stderr, after the engine had tried to load them)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from joulebench.errors import ModelError
from joulebench.models.integrity import check_safetensors, check_weights


def _copy(tiny_llama: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(tiny_llama, folder)
    return folder


def test_a_whole_model_passes(tiny_llama: Path) -> None:
    files = sorted(tiny_llama.glob("*.safetensors"))
    assert files
    check_weights(tiny_llama)


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda data: data[: len(data) - 1], "is truncated"),
        (lambda data: data[: len(data) // 2], "is truncated"),
        (lambda data: data[:5], "is not a safetensors file"),
        (lambda data: b"\xff" * 8 + data[8:], "is truncated or not a safetensors file"),
        (lambda data: data[:8] + b"{not json" + data[17:], "has a damaged header"),
    ],
)
def test_damage_is_named(tiny_llama: Path, tmp_path: Path, damage: object, words: str) -> None:
    folder = _copy(tiny_llama, tmp_path)
    (path,) = sorted(folder.glob("*.safetensors"))[:1]
    path.write_bytes(damage(path.read_bytes()))  # type: ignore[operator]
    with pytest.raises(ModelError, match=words):
        check_safetensors(path)


def test_run_on_truncated_weights_is_one_line_and_exit_2(tiny_llama: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_llama, tmp_path)
    (path,) = sorted(folder.glob("*.safetensors"))[:1]
    os.truncate(path, path.stat().st_size // 2)
    db = tmp_path / "r.db"
    proc = subprocess.run(
        [sys.executable, "-m", "joulebench", "run", "--model", str(folder), "--db", str(db)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"joulebench: error: {path} is truncated: ") and "download it again" in line
    assert not db.exists()
