"""Other libraries' output goes to the log, whoever writes it and however; joulebench's own to the
terminal's streams. Run in a fresh process, so that its file descriptors 1 and 2 are real."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = r"""
import logging, os, subprocess, sys, warnings
from pathlib import Path
from joulebench.cli.capture import to_log

log = Path(sys.argv[1])
logging.basicConfig(level=logging.INFO)  # a handler made before: it holds the old sys.stderr object
with to_log(log) as streams:
    print("library print")
    sys.stderr.write("library stderr\n")
    os.write(1, b"C-level stdout\n")
    os.write(2, b"C-level stderr\n")
    warnings.warn("library warning")
    logging.getLogger("lib").warning("library log record")
    subprocess.run([sys.executable, "-c", "print('child process')"], check=True)
    print("own result", file=streams.out)
    print("own progress", file=streams.err)
print("after the block")
"""


def test_every_kind_of_library_output_lands_in_the_log(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(log)], capture_output=True, text=True, timeout=60, check=True
    )
    assert proc.stdout == "own result\nafter the block\n"
    assert proc.stderr == "own progress\n"
    text = log.read_text()
    for line in ("library print", "library stderr", "C-level stdout", "C-level stderr", "library warning",
                 "library log record", "child process"):  # fmt: skip
        assert line in text, line
    assert (log.stat().st_mode & 0o777) == 0o600


def test_verbose_leaves_every_stream_alone(tmp_path: Path) -> None:
    script = SCRIPT.replace("to_log(log)", "to_log(log, enabled=False)")
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "run.log")],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "library print" in proc.stdout and "C-level stderr" in proc.stderr
    assert not (tmp_path / "run.log").exists()
