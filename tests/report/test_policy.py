"""`advise --policy`: each policy's day worked by hand for gaps we chose, against measured inputs laid out as
the summary holds them; and end to end on a real run of the tiny Llama (parked, set up) with its figure."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from pathlib import Path

import pytest

from joulebench.report.policy import DAY_S, Arrivals, Policy, _weigh, advise_policy

pd = pytest.importorskip("pandas")


def _span_width(patch) -> float:  # type: ignore[no-untyped-def]
    """The data-space width of an ``axvspan`` (a Polygon before matplotlib 3.9, a Rectangle since)."""
    xs = patch.get_path().transformed(patch.get_patch_transform()).vertices[:, 0]
    return float(xs.max() - xs.min())


def _stat_row(kind: str, engine: str, workload: str, stage: str, component: str, metric: str, mean: float):  # type: ignore[no-untyped-def]
    return {"kind": kind, "engine": engine, "model": "m", "workload": workload, "stage": stage,
            "component": component, "metric": metric, "mean": mean, "ci_half_width": 0.1 * mean, "n": 3,
            "estimated": False, "method": "counter", "bound": float("nan")}  # fmt: skip


def _summary() -> pd.DataFrame:
    rows = [
        _stat_row("park", "vllm", "w", "park", "total", "above_idle_power_w", 50.0),
        _stat_row("sleep-1", "vllm", "w", "sleep_enter", "total", "above_idle_energy_j", 100.0),
        _stat_row("sleep-1", "vllm", "w", "sleep_enter", "", "duration_s", 2.0),
        _stat_row("sleep-1", "vllm", "w", "sleep", "total", "above_idle_power_w", 10.0),
        _stat_row("sleep-1", "vllm", "w", "wake", "total", "above_idle_energy_j", 200.0),
        _stat_row("sleep-1", "vllm", "w", "wake", "", "duration_s", 5.0),
        _stat_row("setup", "vllm", "", "setup", "total", "above_idle_energy_j", 3000.0),
        _stat_row("setup", "vllm", "", "setup", "", "duration_s", 30.0),
    ]
    return pd.DataFrame(rows)


def test_each_policys_day_is_the_sum_over_its_gaps_worked_by_hand(tmp_path: Path) -> None:
    times = tmp_path / "times.txt"
    times.write_text("# request times, s\n0\n10\n110\n1110\n")  # gaps 10, 100 and 1000 s over 1110 s
    arrivals = Arrivals.from_file(times)
    assert arrivals.gaps_s == (10.0, 100.0, 1000.0) and arrivals.per_day == pytest.approx(3 * DAY_S / 1110)
    advice = advise_policy(_summary(), arrivals, None, None, None)
    by_name = {r.policy.name: r for r in advice.results}
    assert set(by_name) == {"always warm", "sleep level 1 after T", "stop after T, restart"}
    scale = arrivals.per_day / 3

    # always warm: parked through every gap
    assert by_name["always warm"].energy_j_per_day == pytest.approx(50.0 * 1110 * scale)
    # sleep after T = 0: every gap is a sleep call, asleep for the gap less the call's 2 s, and a wake
    sleep = dict(by_name["sleep level 1 after T"].curve)
    by_hand = sum(100.0 + 10.0 * (g - 2.0) + 200.0 for g in (10.0, 100.0, 1000.0))
    assert sleep[0.0] == pytest.approx(by_hand * scale)
    # T = 100 s (on the grid): the two gaps up to 100 s stay parked, the 1000 s gap sleeps after 100 s
    by_hand = 50.0 * (10 + 100) + 50.0 * 100 + 100.0 + 10.0 * (1000 - 100 - 2) + 200.0
    assert sleep[100.0] == pytest.approx(by_hand * scale)
    # stop after T = 0: three setups of 3 kJ, nothing above idle while stopped
    stop = by_name["stop after T, restart"]
    assert dict(stop.curve)[0.0] == pytest.approx(3 * 3000.0 * scale)
    # each policy's choice is its least energy, and the ranking follows it
    for r in advice.results:
        assert r.energy_j_per_day == min(j for _, j in r.curve)
    assert [r.energy_j_per_day for r in advice.results] == sorted(r.energy_j_per_day for r in advice.results)
    # the inputs are named, each with where it came from
    assert {i.name for i in advice.inputs} >= {
        "parked power",
        "sleep level 1: asleep",
        "restart: setup of vllm",
    }
    assert all("trials of vllm / m" in i.source for i in advice.inputs)


def test_a_policy_that_never_pays_is_shown_as_never_leaving_the_parked_state(tmp_path: Path) -> None:
    """Asleep at 60 W above idle, more than parked at 50 W: sleeping never pays, and its least energy is a
    timeout no gap reaches. Said so, rather than as a timeout to set."""
    from joulebench.cli.advise import _policy_dict, format_policy

    summary = _summary()
    asleep = (summary["kind"] == "sleep-1") & (summary["stage"] == "sleep")
    summary.loc[asleep, "mean"] = 60.0
    times = tmp_path / "times.txt"
    times.write_text("0\n10\n110\n1110\n")  # gaps 10, 100 and 1000 s
    advice = advise_policy(summary, Arrivals.from_file(times), None, None, None)
    sleep = next(r for r in advice.results if r.policy.name == "sleep level 1 after T")
    warm = next(r for r in advice.results if r.policy.name == "always warm")
    assert (sleep.timeout_s, sleep.waits_per_day) == (1000.0, 0.0)  # the grid's first T >= the longest gap
    assert sleep.energy_j_per_day == warm.energy_j_per_day
    assert advice.results.index(warm) < advice.results.index(sleep)  # a tie goes to always warm
    rows = {line.split("  ")[0]: line for line in format_policy(advice).splitlines()}
    assert "  1,000 s or more: no gap that long  " in rows["sleep level 1 after T"]
    # a restart (3 kJ) costs more than parking through the 10 s gap (500 J), less than through the others
    assert advice.results[0].policy.name == "stop after T, restart" and advice.results[0].timeout_s == 10.0
    assert "  10 s  " in rows["stop after T, restart"]
    assert "Least energy: stop after T, restart, T = 10 s." in rows
    reached = {p["policy"]: p["timeout_reached"] for p in _policy_dict(advice)["policies"]}  # type: ignore[union-attr]
    assert reached == {"always warm": False, "sleep level 1 after T": False, "stop after T, restart": True}


def test_the_figure_says_estimated_when_an_input_is() -> None:
    pytest.importorskip("matplotlib")
    from joulebench.report.policy import policy_figure

    arrivals = Arrivals.from_rate(1000.0)
    measured = policy_figure(advise_policy(_summary(), arrivals, None, None, None))
    summary = _summary()
    summary.loc[summary["kind"] == "park", "estimated"] = True
    estimated = policy_figure(advise_policy(summary, arrivals, None, None, None))
    assert measured.axes[0].get_ylabel() == "energy above idle per day (kWh)"
    assert estimated.axes[0].get_ylabel() == "energy above idle per day (kWh, estimated)"


def test_the_day_in_one_pass_equals_the_sum_gap_by_gap() -> None:
    rng = random.Random(3)
    gaps = sorted(rng.expovariate(1 / 300) for _ in range(2000))
    arrivals = Arrivals(tuple(gaps), 5000.0, "test")
    policy = Policy("p", enter_j=80.0, after_w=7.0, enter_s=3.0, back_j=150.0, back_s=4.0)
    result = _weigh(policy, 40.0, arrivals)
    for t, energy in result.curve[::7]:
        direct = sum(
            40.0 * g if g <= t else 40.0 * t + 80.0 + 7.0 * max(g - t - 3.0, 0.0) + 150.0 for g in gaps
        )
        assert energy == pytest.approx(direct * 5000.0 / len(gaps), rel=1e-9)
    waits = sum(g > result.timeout_s for g in gaps) * 5000.0 / len(gaps)
    assert result.waits_per_day == pytest.approx(waits)
    assert result.added_latency_s == pytest.approx(waits * 4.0 / 5000.0)


def test_bursty_arrivals_keep_their_mean_and_spread() -> None:
    a = Arrivals.from_rate(20_000, burstiness=3.0)
    mean = sum(a.gaps_s) / len(a.gaps_s)
    cv = math.sqrt(sum((g - mean) ** 2 for g in a.gaps_s) / len(a.gaps_s)) / mean
    assert mean == pytest.approx(DAY_S / 20_000, rel=0.1) and cv == pytest.approx(3.0, rel=0.15)
    assert Arrivals.from_rate(20_000, burstiness=3.0) == a  # the same sample every time


def test_a_real_parked_engine_gets_a_policy_from_its_own_rows(tiny_llama: Path, tmp_path: Path) -> None:
    from joulebench.runner.run import execute
    from tests.runner.helpers import cpu_config

    db = tmp_path / "r.db"
    config = cpu_config(tiny_llama, setup_repeats=2, repeats=2, idle_s=1.0, park_s=1.0, sleep_levels=[2])
    assert execute(config, db).status == "ok"

    def advise(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "joulebench", "advise", "--db", str(db), "--policy", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=300)

    figure = tmp_path / "policy.png"
    proc = advise("--requests-per-day", "500", "--burstiness", "2", "--figure", str(figure), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    # the two setup trials may have found the weights in the page cache or not (another test, or memory
    # pressure, may have evicted them): the report then tells them apart, and a restart is the warm one
    policies = {p["policy"] for p in out["policies"]}
    assert {"always warm", "sleep level 2 after T"} < policies
    assert all(p == "stop after T, restart" or p.startswith("stop after T, restart (transformers")
               for p in policies - {"always warm", "sleep level 2 after T"})  # fmt: skip
    names = {i["name"] for i in out["inputs"]}
    assert {
        "parked power",
        "sleep level 2: the call",
        "sleep level 2: asleep",
        "sleep level 2: waking",
    } < names
    assert all(n.startswith("restart: setup of transformers") for n in names if n.startswith("restart"))
    assert all(i["estimated"] for i in out["inputs"])  # this machine measures nothing: said so
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = advise("--requests-per-day", "500")
    assert text.returncode == 0 and "Least energy:" in text.stdout and "(estimated)" in text.stdout
    bad_calls = [
        ([], "needs one arrival pattern"),
        (["--requests-per-day", "0"], "must be > 0"),
        (["--arrivals", str(tmp_path / "none.txt")], "--arrivals"),
        (["--requests-per-day", "9", "--cold-starts-per-day", "2"], "does not go with --policy"),
    ]
    for bad, words in bad_calls:
        proc = advise(*bad)
        assert proc.returncode == 2 and words in proc.stderr and len(proc.stderr.splitlines()) == 1

    # the run's power timeline shades every stage it stored but those inside generate, each where it was
    from matplotlib.colors import to_rgb

    from joulebench.report.timeline import SHADES, timeline
    from joulebench.store.frames import load_frames, parse_run_filter

    frames = load_frames(db, parse_run_filter(None))
    (run_id,) = (int(i) for i in frames.runs["id"])
    fig = timeline(frames, db, run_id)
    assert fig is not None
    ax = fig.axes[0]
    shaded = {label for label in ax.get_legend_handles_labels()[1] if " (" not in label}
    stored = set(frames.stage_energy["stage"])
    assert {"park", "sleep_enter", "sleep", "wake", "spawn"} <= shaded
    assert shaded == stored - {"prefill", "decode", "steady", "setup"}
    for stage in ("park", "sleep", "wake"):  # one shade per window, as long as the window
        windows = frames.stage_energy[frames.stage_energy["stage"] == stage]
        widths = sorted((windows["end_s"] - windows["start_s"]).drop_duplicates())
        drawn = sorted(_span_width(p) for p in ax.patches if p.get_facecolor()[:3] == to_rgb(SHADES[stage]))
        assert len(drawn) == len(widths) == 2 and drawn == pytest.approx(widths)
