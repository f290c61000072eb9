"""Traces: documented CSV/JSONL (optionally gzip), replayed into the same windows, exact energies."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from joulebench.errors import UsageError
from joulebench.measurement.monitor import Monitor
from joulebench.measurement.records import Component, Method, Reading
from joulebench.measurement.series import SourceMeta
from joulebench.measurement.trace import Trace, read_trace, write_trace

# A hand-written trace: GPU counter (200 W, updates every 100 ms), node power from IPMI (1 Hz, 500 W),
# a CPU package counter at 80 W; stages "load" [1, 3] and "gen" [2.5, 4]; idle baseline over [0, 1].
HAND_JSONL = "\n".join(
    [
        json.dumps(
            {
                "type": "header",
                "format": "joulebench-trace",
                "version": 1,
                "start_s": 0.0,
                "end_s": 4.0,
                "sources": [
                    {"name": "nvml", "interval_s": 0.1, "counter_period_s": 0.1, "power_interval_s": 0.02},
                    {"name": "ipmi", "interval_s": 1.0},
                    {"name": "rapl", "interval_s": 0.1, "counter_period_s": 0.001},
                ],
                "statuses": [{"name": "nvml", "available": True, "reason": "1 GPU", "components": ["gpu"]}],
            }
        ),
        json.dumps(
            {
                "type": "idle",
                "start_s": 0.0,
                "end_s": 1.0,
                "power_w": [
                    {"component": "gpu", "device": "gpu0", "power_w": 50.0},
                    {"component": "gpu", "device": "all", "power_w": 50.0},
                ],
            }
        ),
        json.dumps({"type": "stage", "name": "load", "start_s": 1.0, "end_s": 3.0}),
        json.dumps({"type": "stage", "name": "gen", "start_s": 2.5, "end_s": 4.0}),
        *[
            json.dumps(
                {
                    "t_s": k * 0.5,
                    "source": "nvml",
                    "component": "gpu",
                    "device": "gpu0",
                    "energy_j": 100.0 * k,
                }
            )
            for k in range(9)
        ],
        *[
            json.dumps(
                {"t_s": float(k), "source": "ipmi", "component": "node", "device": "node", "power_w": 500.0}
            )
            for k in range(5)
        ],
        *[
            json.dumps(
                {
                    "t_s": float(k),
                    "source": "rapl",
                    "component": "cpu",
                    "device": "package-0",
                    "energy_j": 80.0 * k,
                }
            )
            for k in range(5)
        ],
    ]
)


def _row(result, component, device="all"):
    return next(c for c in result.components if c.component is component and c.device == device)


def test_replay_of_a_hand_written_trace_gives_exact_energies(tmp_path: Path) -> None:
    path = tmp_path / "hand.jsonl"
    path.write_text(HAND_JSONL + "\n")
    mon = Monitor.from_trace(path)
    stages = {s.name: s for s in mon.stages()}
    load, gen = stages["load"], stages["gen"]
    assert _row(load, Component.GPU).energy_j == pytest.approx(400.0)
    assert _row(load, Component.GPU).above_idle_energy_j == pytest.approx(400.0 - 100.0)
    assert _row(load, Component.CPU).energy_j == pytest.approx(160.0)
    assert _row(load, Component.NODE).energy_j == pytest.approx(1000.0)
    other = _row(load, Component.OTHER)
    assert other.method is Method.DERIVED and other.energy_j == pytest.approx(1000.0 - 400.0 - 160.0)
    assert "includes-dram" in other.flags
    assert _row(gen, Component.GPU).energy_j == pytest.approx(300.0)  # overlapping stages are fine
    assert mon.window("any", 0.25, 0.75).energy_j(Component.GPU) == pytest.approx(100.0)
    assert [s.name for s in mon.statuses()] == ["nvml", "replay"]


@pytest.mark.parametrize("name", ["t.jsonl", "t.jsonl.gz", "t.csv", "t.csv.gz"])
def test_every_format_round_trips_exactly(tmp_path: Path, name: str) -> None:
    hand = tmp_path / "hand.jsonl"
    hand.write_text(HAND_JSONL)
    original = Monitor.from_trace(hand)
    out = original.write_trace(tmp_path / name)
    if name.endswith(".gz"):
        assert out.read_bytes()[:2] == b"\x1f\x8b"  # a real gzip stream
    if ".csv" in name:
        text = gzip.decompress(out.read_bytes()).decode() if name.endswith(".gz") else out.read_text()
        assert "t_s,source,component,device,power_w,energy_j" in text
    again = Monitor.from_trace(out)
    assert again.stages() == original.stages()
    assert again.idle_power_w() == original.idle_power_w()


def test_reading_rows_keep_units_and_types(tmp_path: Path) -> None:
    trace = Trace(
        sources=[SourceMeta("rapl", 0.1, 0.001)],
        readings=[Reading(1.5, "rapl", Component.DRAM, "package-1", energy_j=12.25)],
        start_s=1.0,
        end_s=2.0,
    )
    back = read_trace(write_trace(tmp_path / "x.csv", trace))
    assert back.readings == trace.readings
    assert back.sources == trace.sources and (back.start_s, back.end_s) == (1.0, 2.0)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.txt", "", "must end in"),
        (
            "bad.jsonl",
            '{"t_s": 1, "source": "x", "component": "fan", "device": "d", "power_w": 1}\n',
            "line 1",
        ),
        ("bad.jsonl", "not json\n", "line 1"),
        ("bad.csv", "t_s,power_w\n1,2\n", "lacks source"),
        ("bad.jsonl.gz", "plain text, not gzip", "cannot read trace"),
        ("empty.jsonl", "\n", "no readings"),
    ],
)
def test_bad_traces_are_usage_errors(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(UsageError, match=message):
        read_trace(path)


def _corrupt_gzip(text: str) -> bytes:
    data = gzip.compress(text.encode())
    return data[:20] + bytes(b ^ 0x5A for b in data[20:-8]) + data[-8:]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"t_s": NaN, "source": "x", "component": "cpu", "device": "p", "energy_j": 1}', "finite"),
        ('{"t_s": 1, "source": "x", "component": "cpu", "device": "p", "power_w": "inf"}', "finite"),
        ('{"type": "stage", "name": "a", "start_s": "nan", "end_s": 2}', "finite"),
        ('{"t_s": 1, "source": "x", "component": "other", "device": "all", "power_w": 1}', "derived"),
        ('{"t_s": 1, "source": "x", "component": "cpu", "device": "all", "power_w": 1}', "'all'"),
        (
            '{"type": "header", "format": "joulebench-trace", "version": 1, '
            '"sources": [{"name": "x", "interval_s": "soon"}]}',
            "line 1",
        ),
    ],
)
def test_non_finite_numbers_and_derived_rows_are_refused(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n" + HAND_JSONL.splitlines()[-1] + "\n")
    with pytest.raises(UsageError, match=message):
        read_trace(path)


def test_corrupt_gzip_stream_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl.gz"
    path.write_bytes(_corrupt_gzip(HAND_JSONL * 50))
    with pytest.raises(UsageError, match="cannot read trace"):
        read_trace(path)


def test_a_stage_unfinished_at_stop_stays_flagged_after_replay(tmp_path: Path) -> None:
    hand = tmp_path / "hand.jsonl"
    hand.write_text(HAND_JSONL)
    original = Monitor.from_trace(hand)
    original._done.append(("never_ended", 2.0, 3.5, True))  # what Monitor.stop() leaves for an open stage
    again = Monitor.from_trace(original.write_trace(tmp_path / "t.jsonl"))
    assert again.stages() == original.stages()
    (stage,) = [s for s in again.stages() if s.name == "never_ended"]
    assert all("unfinished" in c.flags for c in stage.components)
