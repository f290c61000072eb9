from __future__ import annotations

import io
import time

from rich.console import Console

from joulebench.measurement.monitor import Monitor
from joulebench.runner.display import LiveProgress


def test_live_line_shows_trial_throughput_and_watts() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=160)
    progress = LiveProgress(console)
    with Monitor(estimate=True, interval_s=0.05) as monitor:
        time.sleep(0.3)
        progress({"event": "run_start", "run_id": 7, "monitor": monitor})
        progress({"event": "phase", "phase": "generate", "index": 1, "total": 3})
        progress({"event": "trial", "kind": "generation", "index": 1, "status": "ok",
                  "metrics": {"tokens_per_s": 123.45}, "error": None})  # fmt: skip
        progress({"event": "trial", "kind": "generation", "index": 2, "status": "failed",
                  "metrics": None, "error": "worker killed by SIGKILL\nmore"})  # fmt: skip
        rendered = progress.__rich__().plain
        progress({"event": "run_end", "run_id": 7, "status": "partial"})
    assert "run 7: repeat 2 of 3" in rendered
    assert "last repeat 123.5 tok/s" in rendered
    assert "1 failed" in rendered
    watts = monitor.latest_power_w()
    assert watts and all(f"{k} " in rendered for k in watts)
    assert "generation 3 failed: worker killed by SIGKILL" in out.getvalue()
    assert progress.live is None


def test_a_warm_up_is_shown_against_the_repeats_mean() -> None:
    from joulebench.runner.display import warmup_lines

    summary = {
        "generation": {
            "metrics": {"j_per_token.total": {"mean": 0.25}},
            "warmups": [
                {"before_repeat": 0, "duration_s": 6.0, "output_tokens": 400, "j_per_token": 0.75},
                {"before_repeat": 2, "duration_s": 5.5, "output_tokens": 400, "j_per_token": None},
            ],
        }
    }
    assert warmup_lines(summary) == [
        "warm-up before repeat 1: 6 s, 400 tokens, 0.75 J/token (3x the repeats' mean)",
        "warm-up before repeat 3: 5.5 s, 400 tokens, energy not measured",
    ]


def test_a_log_gets_one_line_per_step_that_ends_with_its_time() -> None:
    from joulebench.runner.display import LineProgress

    lines: list[str] = []
    progress = LineProgress(lines.append, clock=lambda: time.mktime((2026, 11, 26, 19, 33, 12, 0, 0, -1)))
    progress({"event": "run_start", "run_id": 4})
    progress({"event": "phase", "phase": "idle", "index": 0, "total": 1})
    progress({"event": "trial", "kind": "idle", "index": 0, "status": "ok", "duration_s": 5.0,
              "metrics": None, "error": None})  # fmt: skip
    progress({"event": "phase", "phase": "engine_start", "index": 0, "total": 3})
    progress({"event": "phase", "phase": "warmup", "index": 0, "total": 3})
    progress({"event": "warmed", "index": 0, "total": 3, "duration_s": 458.07, "output_tokens": 512000})
    progress({"event": "phase", "phase": "generate", "index": 0, "total": 3})
    metrics = {"tokens_per_s": 1404.74, "j_per_token.gpu": 0.39137, "j_per_token.cpu": 0.05,
               "j_per_token.total": 0.44137, "estimated_components": ["cpu"]}  # fmt: skip
    progress({"event": "trial", "kind": "generation", "index": 0, "status": "ok", "duration_s": 364.48,
              "metrics": metrics, "error": None})  # fmt: skip
    progress({"event": "trial", "kind": "generation", "index": 1, "status": "failed", "duration_s": 1.1,
              "metrics": None, "error": "CUDA out of memory. Tried to allocate 3.13 GiB\nmore"})  # fmt: skip
    assert lines == [
        "19:33:12 run 4: idle baseline ok in 5.0 s",
        "19:33:12 run 4: starting the engine for repeat 1 of 3",
        "19:33:12 run 4: warm-up batch before repeat 1 of 3",
        "19:33:12 run 4: warm-up done in 458.1 s (512,000 tokens, 1,117.7 tokens/s)",
        "19:33:12 run 4: repeat 1 of 3 ok in 364.5 s, 1,404.7 tokens/s, "
        "J/token gpu 0.3914, cpu 0.05 (est.), total 0.4414",
        "19:33:12 run 4: repeat 2 of 3 failed: CUDA out of memory. Tried to allocate 3.13 GiB",
    ]


def test_time_left_is_the_trials_left_at_each_kinds_pace() -> None:
    from types import SimpleNamespace

    from joulebench.runner.config import RunConfig
    from joulebench.runner.display import TimeLeft

    now = [100.0]
    left = TimeLeft(clock=lambda: now[0])
    left.start(SimpleNamespace(config=RunConfig(repeats=3, setup_repeats=2, idle_s=5)))
    assert left.text() == ""  # nothing has a pace yet

    def trial(kind: str, phase: str, seconds: float, before_s: float = 0.0) -> str:
        now[0] += before_s  # what comes between: an engine start, a warm-up
        left.phase(phase)
        now[0] += seconds
        left.trial(kind)
        return left.text()

    assert trial("idle", "idle", 5) == ""  # setup and repeats still without a pace
    assert trial("setup", "setup", 30) == ""  # repeats still without one
    # the first repeat took 6 s, after an engine start and a warm-up of 90 s that are not its pace
    assert trial("generation", "generate", 6, before_s=90) == "about 42 s left"  # 2 x 6 + 1 x 30
    assert left.seconds() == 42
    assert trial("setup", "setup", 30) == "about 12 s left"
    assert trial("generation", "generate", 10) == "about 8 s left"  # the pace is the mean: (6 + 10) / 2
    assert trial("generation", "generate", 10) == "done"


def test_duration_text_reads_as_a_person_would() -> None:
    from joulebench.runner.display import duration_text

    assert [duration_text(s) for s in (4.2, 89, 600, 5400, 7290)] == [
        "4 s", "89 s", "10 min", "1 h 30 min", "2 h 02 min",
    ]  # fmt: skip


def test_totals_say_what_they_hold() -> None:
    from joulebench.results.energy import totals_hold

    assert totals_hold(["gpu", "total"], []) == {"total": "GPU only"}
    assert totals_hold(["gpu", "cpu", "dram"], ["cpu", "dram"]) == {
        "total": "GPU only",
        "total_incl_estimated": "GPU + CPU (estimated) + DRAM (estimated)",
    }
    assert totals_hold(["cpu", "dram"], ["cpu", "dram"]) == {
        "total_incl_estimated": "CPU (estimated) + DRAM (estimated)"
    }
    assert totals_hold(["gpu", "cpu", "dram"], []) == {"total": "GPU + CPU + DRAM"}
    assert totals_hold(["node", "gpu", "cpu"], ["cpu"]) == {"total": "whole node (IPMI)"}
    assert totals_hold([], []) == {}


def test_live_line_draws_a_bar_of_the_runs_trials_and_the_time_left() -> None:
    from types import SimpleNamespace

    from joulebench.runner.config import RunConfig

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=160)
    progress = LiveProgress(console)
    prepared = SimpleNamespace(config=RunConfig(repeats=3, setup_repeats=1, idle_s=0))
    progress({"event": "run_start", "run_id": 3, "monitor": None, "prepared": prepared})
    try:
        progress({"event": "phase", "phase": "setup", "index": 0, "total": 1})
        progress(
            {"event": "trial", "kind": "setup", "index": 0, "status": "ok", "metrics": {}, "error": None}
        )
        progress({"event": "phase", "phase": "generate", "index": 0, "total": 3})
        time.sleep(0.05)
        progress({"event": "trial", "kind": "generation", "index": 0, "status": "ok",
                  "metrics": {"tokens_per_s": 10.0}, "error": None})  # fmt: skip
        shown = Console(file=io.StringIO(), width=160, force_terminal=False)
        with shown.capture() as captured:
            shown.print(progress.__rich__())
    finally:
        progress.stop()
    text = captured.get()
    assert "2/4" in text and "run 3: repeat 1 of 3" in text and "s left" in text
    assert "━" in text  # the bar


def test_a_setup_stage_that_holds_model_loading_says_so() -> None:
    """TensorRT-LLM reports no model_load span: its engine_init row says what it holds; vLLM's does not."""
    from joulebench.results.stats import summarize
    from joulebench.runner.display import setup_tables

    stage = {"duration_s": summarize([30.0, 31.0]).to_dict(), "energy_j": {}, "bound_j": {}}
    setup = {
        "trials": 2,
        "ok": 2,
        "stages": {"engine_init": stage},
        "estimated_components": [],
        "by_factors": [],
    }
    for engine, label in (("tensorrt-llm", "engine_init (incl. model loading)"), ("vllm", "engine_init ")):
        out = io.StringIO()
        for table in setup_tables({"engine": engine, "setup": setup}):
            Console(file=out, width=120).print(table)
        assert label in out.getvalue(), out.getvalue()
    assert "incl." not in out.getvalue()  # vllm's, the last printed
