"""Prefill and decode spans of a batch, from per-request times worked out by hand."""

from __future__ import annotations

import pytest

from joulebench.runner.phases import Phases, phase_spans
from joulebench.workloads.spec import Response


def _r(i: int, submit: float, first: float, finish: float, error: str | None = None) -> Response:
    return Response(i, 10, 5, "length", first_token_s=first, finish_s=finish, submit_s=submit, error=error)


def test_a_static_batch_has_one_prefill_and_one_decode() -> None:
    # HF generate: every request submitted at 0, first tokens together at 2, finishes 8 and 10
    p = phase_spans([_r(0, 0, 2, 8), _r(1, 0, 2, 10)], 0.0, 10.0)
    assert p.prefill == ((0.0, 2.0),) and p.decode == ((2.0, 10.0),)


def test_arrivals_over_time_interleave_the_phases() -> None:
    # a server: A in prefill 0-1, decodes 1-6; B arrives at 3, prefill 3-4 (while A decodes: prefill), decodes
    # 4-5; nothing in flight 6-7; C 7-7.5-9
    rs = [_r(0, 0, 1, 6), _r(1, 3, 4, 5), _r(2, 7, 7.5, 9)]
    p = phase_spans(rs, 0.0, 9.0)
    assert p.prefill == ((0.0, 1.0), (3.0, 4.0), (7.0, 7.5))
    assert p.decode == ((1.0, 3.0), (4.0, 6.0), (7.5, 9.0))
    assert Phases.seconds(p.prefill) + Phases.seconds(p.decode) == 8.0  # 6-7: nothing in flight


def test_spans_stay_inside_the_window_and_failed_requests_count_not() -> None:
    rs = [_r(0, -1, 1, 12), _r(1, 0, 5, 6, error="boom")]
    p = phase_spans(rs, 0.0, 10.0)
    assert p.prefill == ((0.0, 1.0),) and p.decode == ((1.0, 10.0),)


def test_without_per_request_times_there_are_no_phases() -> None:
    r = Response(0, 10, 5)
    p = phase_spans([r], 0.0, 1.0)
    assert not p.available and "no per-request" in (p.reason or "")
    assert not phase_spans([], 0.0, 1.0).available


def test_a_real_batch_splits_into_prefill_and_decode_that_add_up(tiny_llama, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """HF Transformers on this CPU, its energy estimated (no sensor here): the two phases are windows of
    the repeat that do not overlap, so their energies add up to the repeat's, less what fell in no phase."""
    from joulebench.runner.recompute import recompute
    from joulebench.runner.run import execute
    from joulebench.store.db import ResultsDB
    from tests.runner.helpers import cpu_config

    result = execute(cpu_config(tiny_llama, repeats=2, batch_size=3, output_tokens=6), tmp_path / "r.db")
    assert result.status == "ok"
    with ResultsDB(tmp_path / "r.db") as db:
        for trial in db.trials(result.run_id, "generation"):
            m = trial["details"]["metrics"]
            assert m["phases_available"] is True
            assert m["decode.output_tokens"] == 3 * 6 - 3
            assert m["prefill.prompt_tokens"] == sum(r["prompt_tokens"] for r in db.requests(trial["id"]))
            assert m["prefill.duration_s"] > 0 and m["decode.duration_s"] > 0
            assert m["prefill.duration_s"] + m["decode.duration_s"] <= m["duration_s"] + 1e-9
            rows = db.stage_energy(trial["id"])
            for comp in ("cpu", "dram"):
                whole = m[f"energy_j.{comp}"]
                phases = m[f"prefill.energy_j.{comp}"] + m[f"decode.energy_j.{comp}"]
                outside = m["duration_s"] - m["prefill.duration_s"] - m["decode.duration_s"]
                # what fell in no phase: at most the window's power (estimated CPU <= its TDP) that long
                assert phases <= whole + 1e-6
                assert whole - phases <= outside * (m[f"power_w.{comp}"] * 3 + 30) + 1e-6
                assert m[f"decode.j_per_token.{comp}"] == m[f"decode.energy_j.{comp}"] / 15
                stored = sum(
                    r["energy_j"]
                    for r in rows
                    if (r["stage"], r["component"], r["device"]) == ("decode", comp, "all")
                )
                assert stored == m[f"decode.energy_j.{comp}"]
        before = {t["id"]: t["details"]["metrics"] for t in db.trials(result.run_id, "generation")}
        recompute(db)  # the phases' windows come again from the trace, and their metrics with them
        for trial in db.trials(result.run_id, "generation"):
            m, was = trial["details"]["metrics"], before[trial["id"]]
            for key in ("prefill.energy_j.cpu", "decode.j_per_token.dram", "prefill.j_per_prompt_token.cpu"):
                assert m[key] == was[key] or abs(m[key] - was[key]) <= 1e-9 * abs(was[key]), key


def test_each_request_takes_its_share_of_every_piece_it_was_in_flight_for() -> None:
    from joulebench.runner.phases import request_shares

    # A 0-4, B 1-3, C fails, nothing 4-5, D 5-6; 10 W throughout, so a piece's energy is 10 x its seconds
    rs = [_r(0, 0, 0.5, 4), _r(1, 1, 1.5, 3), _r(2, 0, 1, 2, error="boom"), _r(3, 5, 5.5, 6)]
    shares = request_shares(rs, 0.0, 6.0, lambda a, b: 10.0 * (b - a))
    # A: 0-1 alone (10) + 1-3 with B (10) + 3-4 alone (10); B: 10; the 4-5 gap (10) shared by A, B, D; D: 10
    assert shares == [30 + 10 / 3, 10 + 10 / 3, None, 10 + 10 / 3]
    assert abs(sum(s for s in shares if s is not None) - 60.0) < 1e-12  # the window's energy, all of it


def test_a_real_batch_shares_its_energy_among_its_requests(tiny_llama, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from joulebench.runner.run import execute
    from joulebench.store.db import ResultsDB
    from tests.runner.helpers import cpu_config

    result = execute(cpu_config(tiny_llama, repeats=1, batch_size=3, output_tokens=5), tmp_path / "r.db")
    with ResultsDB(tmp_path / "r.db") as db:
        (trial,) = db.trials(result.run_id, "generation")
        details = trial["details"]
        rows = db.requests(trial["id"])
        shares = [r["energy_j"] for r in rows]
        assert [r["request_index"] for r in rows] == [0, 1, 2] and all(
            r["energy_estimated"] == 1 for r in rows
        )
        # each request's times are stored on the windows' clock, inside its repeat
        assert all(details["begin_s"] <= r["submit_s"] <= r["first_token_s"] <= r["finish_s"] for r in rows)
        assert all(r["finish_s"] <= details["end_s"] for r in rows)
        whole = details["metrics"]["energy_j.total_incl_estimated"]
        # pieces of one window add up to it: a counter's increments and a power timeline are spread alike
        assert abs(sum(shares) - whole) <= 1e-6 * whole
        m = details["metrics"]
        assert min(shares) <= m["request_energy_j.median"] <= m["request_energy_j.p90"] <= max(shares)
        assert "request_energy_j" not in details  # one place holds them: the request rows


def test_shares_of_many_requests_come_in_one_pass() -> None:
    """A server's thousand requests: every piece's energy is shared by those in flight, checked against the
    direct rule (each piece split among the requests covering it) on a coarse grid."""
    import random
    from itertools import pairwise

    from joulebench.runner.phases import request_shares

    rng = random.Random(7)
    rs = []
    for i in range(1000):
        submit = rng.uniform(0, 100)
        rs.append(_r(i, submit, submit + 0.1, submit + rng.uniform(0.2, 5)))
    power = lambda a, b: 3.0 * (b - a)  # noqa: E731
    shares = request_shares(rs, 0.0, 110.0, power)
    assert abs(sum(s for s in shares if s is not None) - 330.0) < 1e-6
    # the direct rule for one request: the pieces it spans, each split by how many overlap that piece
    cuts = sorted({0.0, 110.0, *(t for r in rs for t in (r.submit_s, min(r.finish_s, 110.0)))})
    target = rs[500]
    direct = 0.0
    for a, b in pairwise(cuts):
        n = sum(1 for r in rs if r.submit_s <= a and min(r.finish_s, 110.0) >= b)
        if target.submit_s <= a and target.finish_s >= b:
            direct += power(a, b) / n
    gap = sum(power(a, b) for a, b in pairwise(cuts)
              if not any(r.submit_s <= a and min(r.finish_s, 110.0) >= b for r in rs))  # fmt: skip
    assert abs(shares[500] - (direct + gap / 1000)) < 1e-9


def _downgrade_to_schema_2(path) -> None:  # type: ignore[no-untyped-def]
    """What version 2 wrote: the shares in the trial's details, no request times or energy columns."""
    import json
    import sqlite3

    conn = sqlite3.connect(path)
    for (trial_id,) in conn.execute("SELECT id FROM trials WHERE kind = 'generation'").fetchall():
        rows = conn.execute(
            "SELECT request_index, energy_j, energy_estimated FROM requests WHERE trial_id = ?", (trial_id,)
        ).fetchall()
        (text,) = conn.execute("SELECT details_json FROM trials WHERE id = ?", (trial_id,)).fetchone()
        details = json.loads(text)
        details["request_energy_j"] = {str(i): e for i, e, _ in rows}
        details["request_energy_estimated"] = bool(rows[0][2])
        conn.execute("UPDATE trials SET details_json = ? WHERE id = ?", (json.dumps(details), trial_id))
    for column in ("submit_s", "first_token_s", "finish_s", "energy_j", "energy_estimated"):
        conn.execute(f"ALTER TABLE requests DROP COLUMN {column}")
    conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()


def test_request_energies_survive_migration_and_are_computed_again(tiny_llama, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import shutil
    import sqlite3
    import subprocess
    import sys

    from joulebench.runner.run import execute
    from joulebench.store.db import ResultsDB
    from tests.runner.helpers import cpu_config

    path = tmp_path / "r.db"
    result = execute(cpu_config(tiny_llama, repeats=1, batch_size=3, output_tokens=5), path)
    with ResultsDB(path) as db:
        (trial,) = db.trials(result.run_id, "generation")
        measured = [r["energy_j"] for r in db.requests(trial["id"])]
        metrics = trial["details"]["metrics"]

    # a database of schema 2 opened by this release: the shares move from the details to the rows
    old = tmp_path / "v2.db"
    shutil.copy(path, old)
    _downgrade_to_schema_2(old)
    with ResultsDB(old) as db:
        (moved,) = db.trials(result.run_id, "generation")
        rows = db.requests(moved["id"])
        assert [r["energy_j"] for r in rows] == measured and all(r["energy_estimated"] == 1 for r in rows)
        assert all(r["submit_s"] is None for r in rows)  # never stored then: not made up now
        assert (
            "request_energy_j" not in moved["details"] and "request_energy_estimated" not in moved["details"]
        )

    # recompute derives each share again from the trace and the stored times, and the summary with them
    conn = sqlite3.connect(path)
    conn.execute("UPDATE requests SET energy_j = 1e9")
    conn.commit()
    conn.close()
    proc = subprocess.run(
        [sys.executable, "-m", "joulebench", "db", "recompute", str(path)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    with ResultsDB(path) as db:
        (again,) = db.trials(result.run_id, "generation")
        shares = [r["energy_j"] for r in db.requests(again["id"])]
        m = again["details"]["metrics"]
    assert shares == pytest.approx(measured, rel=1e-9)
    assert sum(shares) == pytest.approx(m["energy_j.total_incl_estimated"], rel=1e-6)
    assert m["request_energy_j.median"] == pytest.approx(metrics["request_energy_j.median"], rel=1e-9)
