"""A warm engine parked, put to sleep and woken after its repeats (the tiny Llama, Transformers on CPU,
whose sleep level 2 drops the weights and reads them again), and what cannot sleep refused in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def test_a_parked_engine_is_measured_above_idle_and_reported(tiny_llama: Path, tmp_path: Path) -> None:
    import pandas as pd

    from joulebench.report.build import build_report
    from joulebench.runner.display import lifecycle_lines
    from joulebench.runner.run import execute
    from joulebench.store.db import ResultsDB
    from tests.runner.helpers import cpu_config

    result = execute(cpu_config(tiny_llama, repeats=2, idle_s=1.0, park_s=1.0), tmp_path / "r.db")
    assert result.status == "ok"
    (parked,) = result.summary["generation"]["lifecycle"]
    assert parked["state"] == "parked" and parked["trials"] == 2 and parked["estimated"]
    assert parked["stages"]["park"]["above_idle_w"]["n"] == 2
    (line,) = lifecycle_lines(result.summary)
    assert line.startswith("parked: held ") and "W (est.) above idle (2 trials)" in line
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
    from joulebench.report.lifecycle import lifecycle_table
    from joulebench.results.aggregate import summarize_metrics
    from joulebench.results.tidy import trial_metrics
    from joulebench.store.frames import load_frames

    table = lifecycle_table(summarize_metrics(trial_metrics(load_frames(tmp_path / "r.db"))))
    assert table is not None and table.columns[:4] == ("Engine", "Model", "State", "n")
    ((engine, _, state, n, *_),) = table.rows
    assert (engine, state, n) == ("transformers", "parked", "2")
    # and what to do between requests: energy against the idle timeout, for the stated arrival pattern
    (policy,) = [f for f in report.figures if f.name.startswith("fig10_policy")]
    assert "1000 requests/day" in policy.title and policy.png.stat().st_size > 0
    summary = pd.read_csv(report.html.parent / "summary.csv")
    held = summary[(summary["kind"] == "park") & (summary["metric"] == "above_idle_power_w")]
    assert held["n"].max() == 2  # both parks, with a CI
    # the run's line and the report read the same windows the same way (runner/summary.py, results/tidy.py)
    (total,) = held[held["component"] == "total_incl_estimated"].itertuples()
    shown = parked["stages"]["park"]["above_idle_w"]
    assert (total.mean, total.ci_low, total.ci_high) == pytest.approx(
        (shown["mean"], shown["ci_low"], shown["ci_high"]), rel=1e-9
    )


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--park-s", "1", "--sleep-levels", "1"], "--sleep-levels [1]: transformers has levels 2"),
        (["--park-s", "1", "--sleep-levels", "2", "--engine-opt", "compile=true"], "sleeps uncompiled only"),
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


def test_a_sleeping_engine_wakes_and_serves_again(tiny_llama: Path, tmp_path: Path) -> None:
    from joulebench.runner.generation import GenerationSession
    from joulebench.runner.prepare import prepare
    from joulebench.runner.run import execute
    from joulebench.store.db import ResultsDB
    from tests.runner.helpers import cpu_config

    config = cpu_config(tiny_llama, repeats=1, idle_s=1.0, park_s=1.0, sleep_levels=[2])
    p = prepare(config)
    session = GenerationSession(p.engine, p.engine_config, log_dir=tmp_path, env={})
    try:
        result = execute(config, tmp_path / "r.db", engine_session=session)
        assert result.status == "ok"
        states = [st["state"] for st in result.summary["generation"]["lifecycle"]]
        assert states == ["parked", "asleep, level 2"]
        from joulebench.runner.display import lifecycle_lines

        asleep = lifecycle_lines(result.summary)[1]
        assert asleep.startswith("asleep, level 2: to sleep ") and "; waking " in asleep
        # woken from level 2 (weights dropped, read again), the same engine serves the same batch
        batch = session.generate("after", p.requests, p.sampling, 120.0)
        assert all(r.error is None and r.output_tokens > 0 for r in batch.responses)
    finally:
        session.close()
    with ResultsDB(tmp_path / "r.db") as db:
        (sleep,) = db.trials(result.run_id, "sleep")
        assert sleep["status"] == "ok" and sleep["details"]["level"] == 2
        rows = db.stage_energy(sleep["id"])
        spans = {r["stage"]: (r["start_s"], r["end_s"]) for r in rows}
        assert list(spans) == ["sleep_enter", "sleep", "wake"]
        enter, asleep, wake = spans["sleep_enter"], spans["sleep"], spans["wake"]
        assert enter[1] <= asleep[0] and asleep[1] <= wake[0]  # in order, not overlapping
        assert asleep[1] - asleep[0] >= 1.0  # held as long as asked
        latency = sleep["details"]["latency_s"]
        assert latency["wake"] == pytest.approx(wake[1] - wake[0])
        assert all(r["above_idle_energy_j"] is not None for r in rows)
