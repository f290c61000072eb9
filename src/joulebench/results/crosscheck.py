"""The energy counter against the power timeline, window by window: two readings of one GPU by different
means. Where they part by more than the counter's own bound allows, one of them is wrong, and a report says
so before its numbers are trusted.

For each GPU window of a finished repeat or warm-up whose trial kept a trace, the counter's energy (as
stored) is set against the trapezoid integral of the same GPU's power readings over the same span.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from joulebench.measurement.accounting import integrate_power
from joulebench.measurement.series import PowerSeries
from joulebench.store.frames import load_trace

if TYPE_CHECKING:
    from joulebench.store.frames import Frames

STAGES = ("generate", "warmup")
#: windows shorter than this are left out of the headline: a 100 ms counter period is a large part of them
LONG_S = 2.0


@dataclass(frozen=True)
class Crosscheck:
    run_id: int
    trial_id: int
    stage: str
    device: str
    duration_s: float
    counter_j: float
    timeline_j: float

    @property
    def rel_diff(self) -> float:
        return (self.timeline_j - self.counter_j) / self.counter_j


def counter_vs_timeline(frames: Frames, db_path: str | Path) -> list[Crosscheck]:
    """Every GPU window (one device) of a finished repeat or warm-up with a traced power timeline."""
    trials = frames.trials
    ok = trials[(trials["status"] == "ok") & trials["kind"].isin(["generation", "warmup"])]
    run_of = dict(zip(ok["id"], ok["run_id"], strict=True))
    se = frames.stage_energy
    rows = se[
        se["trial_id"].isin(list(run_of))
        & se["stage"].isin(STAGES)
        & (se["component"] == "gpu")
        & (se["device"] != "all")
        & (se["method"] == "counter")
    ]
    out: list[Crosscheck] = []
    timelines: dict[int, dict[str, PowerSeries]] = {}  # per trial, each device's, read once
    for r in rows.to_dict("records"):
        trial_id, counter_j = int(r["trial_id"]), r["energy_j"]
        if counter_j is None or not counter_j > 0:  # None, NaN (fails every comparison), nothing
            continue
        if trial_id not in timelines:
            timelines[trial_id] = _timelines(db_path, trial_id)
        series = timelines[trial_id].get(str(r["device"]))
        if series is None:
            continue
        integrated = integrate_power(series, float(r["start_s"]), float(r["end_s"]))
        if integrated is None:
            continue
        out.append(
            Crosscheck(
                int(run_of[trial_id]), trial_id, str(r["stage"]), str(r["device"]),
                float(r["end_s"]) - float(r["start_s"]), float(counter_j), integrated[0],
            )
        )  # fmt: skip
    return out


def _timelines(db_path: str | Path, trial_id: int) -> dict[str, PowerSeries]:
    """A trial's power readings, one timeline per device (a trial on several GPUs keeps one each)."""
    out: dict[str, PowerSeries] = {}
    for reading in load_trace(db_path, trial_id):
        power = reading.get("power_w")
        if power is not None:
            series = out.setdefault(str(reading.get("device")), PowerSeries(max_points=1 << 30))
            series.add(float(reading["t_s"]), float(power))  # type: ignore[arg-type]
    return out


def summary(checks: list[Crosscheck]) -> dict[str, float | int | None]:
    """Windows compared, and the median and largest |timeline - counter| / counter (all, and >= 2 s)."""
    absolute = sorted(abs(c.rel_diff) for c in checks)
    long = sorted(abs(c.rel_diff) for c in checks if c.duration_s >= LONG_S)
    return {
        "windows": len(checks),
        "median_abs_rel_diff": absolute[len(absolute) // 2] if absolute else None,
        "max_abs_rel_diff": absolute[-1] if absolute else None,
        "windows_ge_2s": len(long),
        "max_abs_rel_diff_windows_ge_2s": long[-1] if long else None,
    }
