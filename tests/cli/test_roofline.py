"""`joulebench roofline` end to end with NVML faked at the pynvml seam (this machine has no GPU) and the
kernels on this CPU's torch: the stored energies against the fake's power schedule integrated by hand, and
then a real run on the tiny Llama, measured through the same fake card, shown against the floor in `run`'s
summary and in the report."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from joulebench.cli import roofline as cli_roofline
from joulebench.cli.main import main
from joulebench.measurement.monitor import Monitor
from joulebench.measurement.nvml import NvmlSource
from joulebench.measurement.nvml_fake import FakeGpu, FakeNvml
from joulebench.measurement.schedule import integral, steps_of
from joulebench.roofline.floor import CardLimits, decode_floor
from joulebench.roofline.measure import gpu_targets
from joulebench.roofline.shape import read_shape
from joulebench.store.db import ResultsDB

pytest.importorskip("torch")

CARD = "NVIDIA H100 80GB HBM3"
# idle at 70 W while the baseline is taken (1 s, after the source has timed its counter), then 400 W
SCHEDULE = [(0.0, 70.0), (2.5, 400.0)]


def _fake_card(monkeypatch: pytest.MonkeyPatch) -> list[FakeNvml]:
    """The card, made when the command starts its monitor (its schedule's clock starts then)."""
    made: list[FakeNvml] = []

    def monitor() -> Monitor:
        made.append(FakeNvml([FakeGpu(power_w=SCHEDULE, name=CARD, uuid="GPU-5f1c")]))
        m = Monitor([NvmlSource(made[-1], visible_devices="0")])
        m.start()
        return m

    monkeypatch.setattr(cli_roofline, "_monitor", monitor)
    # the GPU's kernels run on this machine's CPU; the energy is the fake card's
    monkeypatch.setattr(
        cli_roofline, "_targets", lambda m: [replace(t, torch_device="cpu") for t in gpu_targets(m)]
    )
    return made


def _roofline(db: Path, *extra: str) -> int:
    args = ["roofline", "--db", str(db), "--seconds", "1", "--idle-seconds", "1", "--copy-mib", "8"]
    with pytest.raises(SystemExit) as exit:
        main([*args, "--gemm-size", "128", "--gemm-dtype", "float32", *extra])
    return int(exit.value.code or 0)


def test_each_kernels_energy_is_the_cards_counter_over_its_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    made = _fake_card(monkeypatch)
    assert _roofline(tmp_path / "r.db", "--json") == 0
    (fake,) = made
    printed = json.loads(capsys.readouterr().out)
    assert [p["kernel"] for p in printed] == ["copy", "gemm"]
    with ResultsDB(tmp_path / "r.db") as db:
        rows = db.roofline()
    assert [(r["device"], r["device_name"], r["device_uuid"], r["kernel"]) for r in rows] == [
        ("gpu0", CARD, "GPU-5f1c", "copy"),
        ("gpu0", CARD, "GPU-5f1c", "gemm"),
    ]
    steps = steps_of(SCHEDULE)
    for row in rows:
        a, b = row["start_s"] - fake.start_s, row["end_s"] - fake.start_s
        true_j = integral(steps, a, b)
        assert row["method"] == "counter"
        assert abs(row["energy_j"] - true_j) <= row["uncertainty_j"], (row["kernel"], row["energy_j"], true_j)
        assert row["idle_power_w"] == pytest.approx(70.0, rel=0.02)
        # above idle: the part over 70 W, within the window's bound and the baseline's error over the span
        above_true = true_j - 70.0 * (b - a)
        slack = row["uncertainty_j"] + abs(row["idle_power_w"] - 70.0) * (b - a)
        assert abs(row["above_idle_energy_j"] - above_true) <= slack
    copy, gemm = rows
    assert copy["units"] % (2 * 8 * 2**20) == 0 and gemm["units"] % (2 * 128**3) == 0
    assert printed[0]["j_per_unit"] == pytest.approx(copy["energy_j"] / copy["units"])


def test_each_row_keeps_its_readings_and_db_recompute_computes_it_again_from_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """As a trial's windows: the card's readings over each kernel's window are stored beside its row, and
    `joulebench db recompute` puts back, from them alone, the energy an older rule had stored."""
    _fake_card(monkeypatch)
    db_path = tmp_path / "r.db"
    assert _roofline(db_path) == 0
    with ResultsDB(db_path) as db:
        measured = db.roofline()
        for row in measured:
            lines = db.roofline_trace(row["id"])
            times = [x["t_s"] for x in lines if "t_s" in x]
            assert min(times) <= row["start_s"] and max(times) >= row["end_s"]  # a reading past each edge
            # as if an older rule had stored it: twice the energy, no bound, an unknown flag of the monitor
            db.replace_roofline_energy(
                row["id"],
                {"energy_j": 2 * row["energy_j"], "uncertainty_j": None, "above_idle_energy_j": None,
                 "method": "counter", "flags": ("monitor-paused",)},
            )  # fmt: skip
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit:
        main(["db", "recompute", str(db_path)])
    assert exit.value.code in (0, None)
    assert "2 roofline rows computed again, 0 without a trace" in capsys.readouterr().out
    with ResultsDB(db_path) as db:
        again = db.roofline()
    for before, after in zip(measured, again, strict=True):
        for key in ("energy_j", "uncertainty_j", "above_idle_energy_j"):
            assert after[key] == pytest.approx(before[key], rel=1e-12), key
        assert after["method"] == before["method"] == "counter"
        # the accounting's flags come again; one it does not set (the monitor's) is kept
        assert after["flags"].split(",") == [*filter(None, before["flags"].split(",")), "monitor-paused"]


def test_a_row_whose_trace_holds_no_reading_of_its_card_is_kept_and_counted_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A trace that is there but holds none of the card's readings is not "without a trace": the row
    keeps its stored values and `db recompute` names it as such."""
    import gzip
    import sqlite3

    _fake_card(monkeypatch)
    db_path = tmp_path / "r.db"
    assert _roofline(db_path) == 0
    with ResultsDB(db_path) as db:
        copy, _ = db.roofline()
        headers = [x for x in db.roofline_trace(copy["id"]) if "t_s" not in x]
    assert headers  # the trace's source lines stay, its readings go
    data = gzip.compress("".join(json.dumps(x) + "\n" for x in headers).encode())
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE roofline_traces SET data = ? WHERE roofline_id = ?", (data, copy["id"]))
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit:
        main(["db", "recompute", str(db_path)])
    assert exit.value.code in (0, None)
    out = capsys.readouterr().out
    assert "1 roofline rows computed again, 0 without a trace kept as they were, 1 whose trace" in out
    with ResultsDB(db_path) as db:
        kept, _ = db.roofline()
    assert kept["energy_j"] == copy["energy_j"] and kept["uncertainty_j"] == copy["uncertainty_j"]


def test_a_run_on_the_measured_card_is_shown_against_its_floor(
    tiny_llama: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from joulebench.report.build import build_report
    from joulebench.runner import monitoring
    from joulebench.runner.display import floor_line
    from joulebench.runner.run import execute
    from tests.runner.helpers import cpu_config

    db = tmp_path / "r.db"
    _fake_card(monkeypatch)
    assert _roofline(db) == 0
    assert "pJ/byte" in capsys.readouterr().out

    def run_monitor(config: object, stage_file: Path) -> Monitor:
        m = Monitor([NvmlSource(FakeNvml([FakeGpu(power_w=250.0, name=CARD)]), visible_devices="0")])
        m.start()
        m.follow_stage_file(stage_file)
        return m

    monkeypatch.setattr(monitoring, "start_monitor", run_monitor)
    result = execute(cpu_config(tiny_llama, repeats=2, output_tokens=8), db)
    assert result.status == "ok"
    floor = result.summary["floor"]
    assert floor["card"] == CARD

    # the floor worked out again from the stored rows and the model's own config
    with ResultsDB(db) as store:
        copy, gemm = store.roofline()
        run = store.run(result.run_id)
    shape = read_shape(str(tiny_llama), None)
    assert shape is not None and run["config"]["resolved"]["model_shape"] == shape.to_dict()
    limits = CardLimits(
        CARD,
        bytes_per_s=copy["units"] / (copy["end_s"] - copy["start_s"]),
        flops_per_s=gemm["units"] / (gemm["end_s"] - gemm["start_s"]),
        idle_power_w=(copy["idle_power_w"] + gemm["idle_power_w"]) / 2,
        j_per_byte=copy["above_idle_energy_j"] / copy["units"],
        j_per_flop=gemm["above_idle_energy_j"] / gemm["units"],
    )
    prompt = run["config"]["resolved"]["prompt_lengths"]["mean_tokens"]
    expected = decode_floor(shape, limits, batch=2, prompt_tokens=prompt, output_tokens=8)
    assert expected is not None
    assert floor["floor_j_per_token"] == pytest.approx(expected.j_per_token)
    gpu = result.summary["generation"]["metrics"]["j_per_token.gpu"]["mean"]
    assert floor["pct_of_floor"] == pytest.approx(100 * gpu / expected.j_per_token)
    line = floor_line(floor)
    assert line is not None and f"{floor['pct_of_floor']:.0f} % of the floor" in line and CARD in line

    import pandas as pd

    report = build_report(db, tmp_path / "report")
    assert "Distance from the floor" in report.html.read_text()
    summary = pd.read_csv(report.html.parent / "summary.csv")
    pct = summary[(summary["metric"] == "pct_of_floor") & (summary["component"] == "gpu")]
    # the report's mean over repeats of each repeat's percentage: the run's, from the mean J/token
    assert float(pct["mean"].iloc[0]) == pytest.approx(floor["pct_of_floor"], rel=1e-9)

    # and the advisor, choosing under a latency target every cell meets
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit:
        main(["advise", "--db", str(db), "--max-tpot-ms", "1e9", "--json"])
    assert exit.value.code == 0
    (chosen,) = json.loads(capsys.readouterr().out)["meeting"]
    assert chosen["pct_of_floor"] == pytest.approx(floor["pct_of_floor"], rel=1e-9)

    # measuring the card again says which runs it gives a floor to
    assert _roofline(db) == 0
    assert "1 run(s) here have one now" in capsys.readouterr().out


def test_without_a_gpu_it_says_so_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _roofline(tmp_path / "r.db") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no GPU to measure" in err
    assert not (tmp_path / "r.db").exists()  # nothing was measured: no database made
