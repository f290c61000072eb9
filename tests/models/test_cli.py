"""`joulebench model` through the real entry point: one line and exit code 2 for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def joulebench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "joulebench", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


def _one_error_line(proc: subprocess.CompletedProcess[str], text: str) -> None:
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("joulebench: error: ") and text in lines[0], proc.stderr


def test_unknown_preset(tmp_path: Path) -> None:
    _one_error_line(
        joulebench("model", "create", "gpt-5", str(tmp_path / "m")), "unknown model preset 'gpt-5'"
    )


def test_unknown_dtype(tmp_path: Path) -> None:
    _one_error_line(
        joulebench("model", "create", "llama-3.2-1b", str(tmp_path / "m"), "--dtype", "q4"), "dtype"
    )


def test_existing_folder_needs_force(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    _one_error_line(joulebench("model", "create", "llama-3.2-1b", str(tmp_path)), "already exists")
    # --force replaces model folders only, never an unrelated folder
    _one_error_line(
        joulebench("model", "create", "llama-3.2-1b", str(tmp_path), "--force"), "not a model folder"
    )
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_out_dir_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    _one_error_line(
        joulebench("model", "create", "llama-3.2-1b", str(tmp_path / "a-file" / "m")), "cannot create"
    )


def test_missing_tokenizer_package(tmp_path: Path) -> None:
    # Python's -c with a hidden llama_models: the package is absent as far as the import system can tell
    code = (
        "import importlib.util, sys; real = importlib.util.find_spec;"
        "importlib.util.find_spec = lambda n, *a: None if n == 'llama_models' else real(n, *a);"
        "from joulebench.cli.main import main; main(sys.argv[1:])"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "model", "create", "llama-3.2-1b", str(tmp_path / "m")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    _one_error_line(proc, "llama-models is not installed: pip install 'joulebench[models]'")
    assert not (tmp_path / "m").exists()


def test_list() -> None:
    proc = joulebench("model", "list")
    assert proc.returncode == 0
    assert [line.split()[0] for line in proc.stdout.splitlines()] == [
        "smollm2-135m",
        "llama-3.2-1b",
        "llama-3.2-3b",
        "llama-3.1-8b",
        "llama-3.1-70b",
    ]


def test_create_smollm2(tmp_path: Path) -> None:
    pytest.importorskip("gguf")
    out = tmp_path / "smol"
    proc = joulebench("model", "create", "smollm2-135m", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1].startswith(f"smollm2-135m: {out} (")
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "llama" and config["vocab_size"] == 49152
    assert "quantization_config" not in config
    assert (out / "model.safetensors").stat().st_size > 260_000_000
    assert not list(tmp_path.glob(".smol.*"))
    _one_error_line(joulebench("model", "create", "smollm2-135m", str(out)), "already exists")
