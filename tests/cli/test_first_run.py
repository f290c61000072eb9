"""README command 1 on a machine with no readable sensor: joules (estimated, and labelled so), the fix that
would measure them, clean output, and the other libraries' words kept in the run's log."""

from __future__ import annotations

import re
from pathlib import Path

from joulebench.store.db import ResultsDB
from tests.conftest import FirstRun

# What other libraries print when nothing stops them: warnings, log records, progress bars.
NOISE = [
    re.compile(p)
    for p in (
        r"\[WARNING\]",  # DeepSpeed's accelerator line, on stdout, when transformers imports it
        r"Warning\b",  # UserWarning, FutureWarning, DeprecationWarning ...
        r"\bWARNING\b",
        r"\d+it/s\]|it/s\]|s/it\]",  # tqdm's rate
        r"\d+%\|",  # tqdm's bar
        r"de-quantizing|Loading weights|Writing model shards",  # transformers' GGUF conversion
        r"^\[transformers\]",
        r"Traceback",
    )
]


def _noise(text: str) -> list[str]:
    return [line for line in text.splitlines() if any(p.search(line) for p in NOISE)]


def test_prints_estimated_joules_labelled_and_the_rapl_fix(first_run: FirstRun) -> None:
    assert first_run.returncode == 0, first_run.stderr[-3000:]
    out = first_run.stdout
    # J/token, and nowhere a measured total: what it holds is named
    assert re.search(r"J/token total incl\. est\.\s+│\s+[0-9.]+ ±", out), out
    assert not re.search(r"J/token total\s+│", out)
    assert "totals: total incl. est. = CPU (estimated) + DRAM (estimated)" in out
    assert "estimated (never in a measured total): CPU = utilisation x" in out
    assert "to measure it instead: rapl:" in out


def test_output_holds_none_of_the_other_libraries_words(first_run: FirstRun) -> None:
    assert first_run.returncode == 0, first_run.stderr[-3000:]
    assert _noise(first_run.stdout) == []
    assert _noise(first_run.stderr) == []
    # ... which went to the run's log, named at the end, and not lost
    (line,) = [x for x in first_run.stderr.splitlines() if x.startswith("logs: ")]
    logs = Path(line.removeprefix("logs: "))
    assert logs.is_dir() and logs.parent.name == "joulebench-logs" and logs.parent.parent == first_run.cwd
    assert (logs.stat().st_mode & 0o077) == 0  # owner-only: logs quote prompts and paths
    main_log = (logs / "joulebench.log").read_text()
    assert _noise(main_log), "the libraries said nothing: this test would prove nothing"
    assert {p.name for p in logs.iterdir()} >= {"joulebench.log", "setup-0.log"}
    with ResultsDB(first_run.db) as db:
        (run,) = db.runs()
        assert run["environment"]["log_dir"] == str(logs)


def test_progress_says_the_time_left(first_run: FirstRun) -> None:
    # not a terminal: a line per step; once a repeat has finished, the repeats left have a pace
    lines = [x for x in first_run.stdout.splitlines() if re.match(r"\d\d:\d\d:\d\d run 1: repeat ", x)]
    assert len(lines) == 3, first_run.stdout
    assert re.search(r"\(about \d+ s left\)$", lines[0]) and re.search(r"\(about \d+ s left\)$", lines[1])
    assert not lines[2].endswith("left)")  # nothing left after the last


def test_database_is_owner_only(first_run: FirstRun) -> None:
    assert (first_run.db.stat().st_mode & 0o077) == 0
