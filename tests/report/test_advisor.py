from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from joulebench.errors import UsageError
from joulebench.report.advisor import J_PER_KWH, Advice, advise
from joulebench.results.aggregate import summarize_metrics
from joulebench.results.tidy import trial_metrics
from joulebench.store.frames import load_frames
from tests.report.resultsdb import ResultsWriter

# From tests/report/resultsdb.py: setup (measured total) and J/token of each engine.
SETUP_J = {"transformers": 650 + 850 + 95, "vllm": 8000 + 13500 + 1100}
PER_TOKEN_J = {"transformers": (1440 + 1540 + 1640) / 3 / 400, "vllm": 390 / 400}


def _advise(db: Path, runs: str | None = None, **kw: Any) -> Advice:
    metrics = trial_metrics(load_frames(db, runs))
    return advise(summarize_metrics(metrics), metrics, **kw)


def test_ranking_and_crossover_match_the_hand_computation(sample_db: Path) -> None:
    advice = _advise(sample_db, requests_per_day=1000, cold_starts_per_day=1)
    assert advice.load.tokens_per_request == 100  # measured mean output tokens per response
    assert advice.load.tokens_measured
    assert [d.engine for d in advice.ranking] == ["vllm", "transformers"]
    vllm = advice.ranking[0]
    assert vllm.energy_j == pytest.approx(SETUP_J["vllm"] + PER_TOKEN_J["vllm"] * 100_000)
    by_var = {c.variable: c for c in advice.crossovers}
    # S_t K + p_t N T = S_v K + p_v N T  =>  N* = K (S_v - S_t) / (T (p_t - p_v)) = 21005 / 287.5
    n_star = (SETUP_J["vllm"] - SETUP_J["transformers"]) / (
        100 * (PER_TOKEN_J["transformers"] - PER_TOKEN_J["vllm"])
    )
    assert by_var["requests_per_day"].value == pytest.approx(n_star)
    assert n_star == pytest.approx(73.06, abs=0.01)
    assert by_var["requests_per_day"].cheaper_below == "transformers"
    assert by_var["requests_per_day"].cheaper_above == "vllm"
    assert by_var["requests_per_day"].low < n_star < by_var["requests_per_day"].high
    assert by_var["cold_starts_per_day"].value == pytest.approx(1000 / n_star)
    assert by_var["cold_starts_per_day"].cheaper_above == "transformers"


def test_the_ranking_flips_across_the_crossover(sample_db: Path) -> None:
    below = _advise(sample_db, requests_per_day=70, cold_starts_per_day=1)
    above = _advise(sample_db, requests_per_day=76, cold_starts_per_day=1)
    assert below.ranking[0].engine == "transformers"
    assert above.ranking[0].engine == "vllm"
    many_starts = _advise(sample_db, requests_per_day=1000, cold_starts_per_day=14)
    assert many_starts.ranking[0].engine == "transformers"


def test_given_tokens_carbon_and_cost(sample_db: Path) -> None:
    advice = _advise(
        sample_db, requests_per_day=10, cold_starts_per_day=2, tokens_per_request=50,
        grid_gco2_per_kwh=400, price_per_kwh=0.25,
    )  # fmt: skip
    assert not advice.load.tokens_measured
    tf = next(d for d in advice.ranking if d.engine == "transformers")
    energy = 2 * SETUP_J["transformers"] + PER_TOKEN_J["transformers"] * 500
    assert tf.energy_j == pytest.approx(energy)
    assert tf.gco2 == pytest.approx(energy / J_PER_KWH * 400)
    assert tf.cost == pytest.approx(energy / J_PER_KWH * 0.25)
    assert tf.energy_half_width_j is not None and tf.energy_half_width_j > 0
    assert advice.to_dict()["ranking"][0]["kwh"] == pytest.approx(advice.ranking[0].kwh)


def test_no_crossover_when_one_engine_dominates(sample_db: Path, tmp_path: Path) -> None:
    w = ResultsWriter(tmp_path / "dom.db")
    for engine, setup_j, gen_j in (("a", 100.0, 10.0), ("b", 200.0, 20.0)):
        run = w.run(engine, "m", workload="w")
        for i in range(2):
            w.window(w.trial(run, "setup", i), "setup", 1.0, {"gpu": setup_j + i})
            trial = w.trial(run, "generation", i, output_tokens=10, n_requests=1)
            w.window(trial, "generate", 1.0, {"gpu": gen_j + i})
    w.close()
    advice = _advise(tmp_path / "dom.db", requests_per_day=5, cold_starts_per_day=5)
    assert advice.crossovers == ()
    assert advice.dominance == (("a", "b"),)


def test_engine_without_setup_is_not_ranked(tmp_path: Path) -> None:
    w = ResultsWriter(tmp_path / "nosetup.db")
    for engine in ("a", "b"):
        run = w.run(engine, "m", workload="w")
        if engine == "a":
            w.window(w.trial(run, "setup"), "setup", 1.0, {"gpu": 100.0})
        w.window(w.trial(run, "generation", output_tokens=10, n_requests=1), "generate", 1.0, {"gpu": 5.0})
    w.close()
    advice = _advise(tmp_path / "nosetup.db", requests_per_day=1, cold_starts_per_day=1)
    assert [d.engine for d in advice.ranking] == ["a"]
    assert [e for e, _ in advice.excluded] == ["b"]
    assert math.isclose(advice.ranking[0].energy_j, 100 + 0.5 * 10)


def test_restarts_cost_the_warm_cache_setup_where_cold_and_warm_were_measured(tmp_path: Path) -> None:
    w = ResultsWriter(tmp_path / "caches.db")
    run = w.run("vllm", "m", workload="w")
    for i, (cache, energy) in enumerate((("cold", 9000.0), ("warm", 3000.0), ("warm", 3200.0))):
        w.window(w.trial(run, "setup", i, compile_cache=cache), "setup", 10.0, {"gpu": energy})
    w.window(w.trial(run, "generation", output_tokens=10, n_requests=1), "generate", 1.0, {"gpu": 5.0})
    w.close()
    advice = _advise(tmp_path / "caches.db", requests_per_day=1, cold_starts_per_day=1)
    (day,) = advice.ranking
    assert day.engine == "vllm" and day.setup_energy_j == 3100.0  # the warm trials' mean, not the cold one
    assert day.setup_from == "vllm (warm compile cache)"


def test_several_models_need_a_choice(sample_db: Path, tmp_path: Path) -> None:
    w = ResultsWriter(tmp_path / "two.db")
    for model in ("m1", "m2"):
        run = w.run("a", model, workload="w")
        w.window(w.trial(run, "setup"), "setup", 1.0, {"gpu": 100.0})
        w.window(w.trial(run, "generation", output_tokens=10, n_requests=1), "generate", 1.0, {"gpu": 5.0})
    w.close()
    with pytest.raises(UsageError, match=r"several models measured \(m1, m2\)"):
        _advise(tmp_path / "two.db", requests_per_day=1, cold_starts_per_day=1)
    assert _advise(tmp_path / "two.db", requests_per_day=1, cold_starts_per_day=1, model="m2").model == "m2"
    with pytest.raises(UsageError, match="must be a number >= 0"):
        _advise(sample_db, requests_per_day=-1, cold_starts_per_day=1)


def _with_warm_ups(path: Path, warm_up: dict[str, tuple[int, float]], own_trial: bool = True) -> Path:
    """Engines 'a' (setup 1,000 J, 0.25 J/token) and 'b' (setup 3,000 J, 0.10 J/token), 3 repeats of 400
    tokens each; ``warm_up`` gives an engine a warm-up of (tokens, joules) before its first repeat: a trial
    of its own, or (``own_trial=False``) a window of the first repeat's trial, as older runs store it."""
    w = ResultsWriter(path)
    for engine, setup_j, repeat_j in (("a", 1000.0, 100.0), ("b", 3000.0, 40.0)):
        run = w.run(engine, "m", workload="w", batch_size=4, output_tokens=100)
        for i in range(2):
            w.window(w.trial(run, "setup", i), "setup", 10.0, {"gpu": setup_j + (-1) ** i})
        tokens, warm_j = warm_up.get(engine, (0, 0.0))
        if engine in warm_up and own_trial:
            details = {"warmup_output_tokens": tokens}
            t = w.trial(run, "warmup", 0, output_tokens=tokens, n_requests=4, details=details)
            w.window(t, "warmup", 5.0, {"gpu": warm_j})
        for k in range(3):
            inside = k == 0 and engine in warm_up and not own_trial
            details = {"warmup_output_tokens": tokens} if inside else None
            t = w.trial(run, "generation", k, output_tokens=400, n_requests=4, details=details)
            if inside:
                w.window(t, "warmup", 5.0, {"gpu": warm_j})
            w.window(t, "generate", 2.0, {"gpu": repeat_j + k - 1})
    w.close()
    return path


@pytest.mark.parametrize("own_trial", [True, False])
def test_a_restart_costs_the_first_batch_above_a_warm_one(tmp_path: Path, own_trial: bool) -> None:
    # a's first batch of the shape costs 300 J for 400 tokens, 200 J above the repeats' 0.25 J/token
    db = _with_warm_ups(tmp_path / "warm.db", {"a": (400, 300.0), "b": (400, 40.0)}, own_trial)
    advice = _advise(db, requests_per_day=10, cold_starts_per_day=3)
    days = {d.engine: d for d in advice.ranking}
    assert (days["a"].first_batch_j, days["a"].first_batch_n) == (pytest.approx(200.0), 1)
    assert (days["b"].first_batch_j, days["b"].first_batch_n) == (0.0, 1)  # no dearer than warm: nothing
    tokens_per_day = 10 * 100
    assert days["a"].energy_j == pytest.approx((1000 + 200) * 3 + 0.25 * tokens_per_day)
    assert days["a"].restart_energy_j == pytest.approx(1200.0)
    # the crossover along requests/day moves with the restart cost: K (R_b - R_a) / (T (p_a - p_b))
    (along_n,) = [c for c in advice.crossovers if c.variable == "requests_per_day"]
    assert along_n.value == pytest.approx(3 * (3000 - 1200) / (100 * (0.25 - 0.10)))

    from joulebench.cli.advise import format_advice

    text = format_advice(advice)
    assert "First batch (J/start)" in text and "200 (n=1)" in text
    assert "First batch: the first batch of this shape after an engine start" in text


def test_a_warm_up_cut_short_says_nothing_of_the_first_full_batch(tmp_path: Path) -> None:
    db = _with_warm_ups(tmp_path / "short.db", {"a": (64, 300.0)})
    advice = _advise(db, requests_per_day=10, cold_starts_per_day=3)
    days = {d.engine: d for d in advice.ranking}
    assert all((d.first_batch_j, d.first_batch_n) == (0.0, 0) for d in days.values())
    assert days["a"].energy_j == pytest.approx(1000 * 3 + 0.25 * 1000)
    from joulebench.cli.advise import format_advice

    assert "First batch" not in format_advice(advice)


def test_each_warm_up_is_set_against_the_repeats_of_its_own_run(tmp_path: Path) -> None:
    # Two runs of one cell on two cards: the second card costs 20 % more per token. The first run's
    # warm-up is 200 J above its own repeats; against the pooled J/token it would look 190 J above.
    w = ResultsWriter(tmp_path / "cards.db")
    for i, repeat_j in enumerate((100.0, 120.0)):
        run = w.run("a", "m", workload="w")
        w.window(w.trial(run, "setup", 0), "setup", 10.0, {"gpu": 1000.0 + i})
        for k in range(2):
            details = {"warmup_output_tokens": 400} if (i, k) == (0, 0) else None
            t = w.trial(run, "generation", k, output_tokens=400, n_requests=4, details=details)
            if details:
                w.window(t, "warmup", 5.0, {"gpu": 300.0})
            w.window(t, "generate", 2.0, {"gpu": repeat_j})
    w.close()
    (day,) = _advise(tmp_path / "cards.db", requests_per_day=1, cold_starts_per_day=1).ranking
    assert (day.first_batch_j, day.first_batch_n) == (pytest.approx(200.0), 1)
