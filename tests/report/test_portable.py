"""`report --portable`: every number kept, no path of the measuring machine in any file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from joulebench.report.portable import strip_paths


def test_paths_become_their_last_part() -> None:
    assert strip_paths("/home/ana/models/llama-3.2-1b") == "llama-3.2-1b"
    assert strip_paths('{"model_path": "/srv/m/x", "n": 3}') == '{"model_path": "x", "n": 3}'
    assert strip_paths("logs: /tmp/jb/joulebench-logs/run-1, done") == "logs: run-1, done"
    assert (
        strip_paths("http://127.0.0.1:8000/v1 and 3/4 and a/b") == "http://127.0.0.1:8000/v1 and 3/4 and a/b"
    )


def _files_text(folder: Path) -> str:
    return "\n".join(p.read_bytes().decode("utf-8", "replace") for p in sorted(folder.iterdir()))


def test_a_portable_report_names_no_machine_path(tiny_llama: Path, tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    proc = subprocess.run(
        [sys.executable, "-m", "joulebench", "run", "--model", str(tiny_llama), "--batch-size", "2",
         "--output-tokens", "4", "--length-mode", "fixed", "--repeats", "2", "--device", "cpu",
         "--idle-s", "0", "--db", str(db), "--quiet"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    machine = str(tiny_llama.parent)  # the folder the model lives in, on this machine
    for portable in (False, True):
        out = tmp_path / ("portable" if portable else "plain")
        args = ["report", "--db", str(db), "--out", str(out)] + (["--portable"] if portable else [])
        done = subprocess.run([sys.executable, "-m", "joulebench", *args], capture_output=True, text=True,
                              timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr
        text = _files_text(out)
        assert (machine in text) is not portable  # the plain report does name it: the check can fail
        assert tiny_llama.name in text  # the model is still named, by its folder
    plain = (tmp_path / "plain" / "summary.csv").read_text()
    assert plain.replace(machine + "/", "") == (tmp_path / "portable" / "summary.csv").read_text()
