"""A warm engine parked after its repeats (the tiny Llama, Transformers on CPU), and an engine without a
sleep mode refused in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def test_a_parked_engine_is_measured_above_idle_and_reported(tiny_llama: Path, tmp_path: Path) -> None:
    import pandas as pd

    from joulebench.report.build import build_report
    from joulebench.runner.run import execute
    from joulebench.store.db import ResultsDB
    from tests.runner.helpers import cpu_config

    result = execute(cpu_config(tiny_llama, repeats=2, idle_s=1.0, park_s=1.0), tmp_path / "r.db")
    assert result.status == "ok"
    with ResultsDB(tmp_path / "r.db") as db:
        parks = db.trials(result.run_id, "park")
        generation = db.trials(result.run_id, "generation")
        assert [t["status"] for t in parks] == ["ok", "ok"] and [t["repeat_index"] for t in parks] == [0, 1]
        for park in parks:
            rows = db.stage_energy(park["id"])
            assert {r["stage"] for r in rows} == {"park"}
            ((start, end),) = {(r["start_s"], r["end_s"]) for r in rows}
            assert 1.0 <= end - start < 1.5  # the hold, as asked
            assert all(r["idle_power_w"] is not None and r["above_idle_energy_j"] is not None for r in rows)
            assert park["details"]["hold_s"] == 1.0
        # parked after the last repeat, in the same engine
        last = max(generation, key=lambda t: t["started_unix_s"])
        assert min(p["started_unix_s"] for p in parks) >= last["started_unix_s"]

    report = build_report(tmp_path / "r.db", tmp_path / "report")
    assert "Parked and asleep" in report.html.read_text()
    # and what to do between requests: energy against the idle timeout, for the stated arrival pattern
    (policy,) = [f for f in report.figures if f.name.startswith("fig10_policy")]
    assert "1000 requests/day" in policy.title and policy.png.stat().st_size > 0
    summary = pd.read_csv(report.html.parent / "summary.csv")
    held = summary[(summary["kind"] == "park") & (summary["metric"] == "above_idle_power_w")]
    assert held["n"].max() == 2  # both parks, with a CI


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--park-s", "1", "--sleep-levels", "1"], "transformers has no sleep mode"),
        (["--sleep-levels", "1"], "give --park-s > 0"),
        (["--park-s", "-1"], "--park-s must be"),
        (["--park-s", "1", "--sleep-levels", "one"], "give levels as numbers"),
    ],
)
def test_what_cannot_park_or_sleep_is_one_line_and_exit_2(
    args: list[str], words: str, tmp_path: Path
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "joulebench", "run", "--db", str(tmp_path / "r.db"), "--repeats", "1", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert words in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "r.db").exists()
