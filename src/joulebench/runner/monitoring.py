"""The manager's monitor: the real :class:`~joulebench.measurement.monitor.Monitor`, or, with
``--no-monitor``, one that samples nothing (to measure the benchmark without the monitor's own load)
but still gives every window its times."""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path
from typing import Any, Protocol

from joulebench.measurement.records import SourceStatus, StageResult
from joulebench.runner.config import RunConfig


class RunMonitor(Protocol):
    """What the runner asks of a monitor: the real one (measurement.monitor.Monitor) or NullMonitor."""

    idle_utilization_pct: dict[str, float]

    def follow_stage_file(self, path: str | Path) -> None: ...
    def stop(self) -> object: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def window(self, name: str, start_s: float, end_s: float) -> StageResult: ...
    def measure_idle(self, seconds: float) -> dict[Any, float]: ...
    def statuses(self) -> list[SourceStatus]: ...
    def memory_mib(self) -> dict[str, tuple[int, int]]: ...
    def device_info(self) -> dict[str, list[Any]]: ...
    def latest_power_w(self) -> dict[str, float]: ...


class NullMonitor:
    """Windows with times and no components; nothing is sampled."""

    def __init__(self, reason: str = "monitor disabled (--no-monitor)") -> None:
        self.reason = reason
        self.idle_utilization_pct: dict[str, float] = {}

    def start(self) -> NullMonitor:
        return self

    def memory_mib(self) -> dict[str, tuple[int, int]]:
        return {}

    def stop(self) -> None:
        pass

    def follow_stage_file(self, path: str | Path) -> None:
        pass

    def pause(self) -> None:
        pass

    def resume(self) -> None:
        pass

    def window(self, name: str, start_s: float, end_s: float) -> StageResult:
        return StageResult(name, start_s, end_s, ())

    def measure_idle(self, seconds: float) -> dict[Any, float]:
        import time

        time.sleep(seconds)
        return {}

    def statuses(self) -> list[SourceStatus]:
        return [SourceStatus("monitor", False, self.reason)]

    def device_info(self) -> dict[str, list[Any]]:
        return {"start": [], "end": []}

    def latest_power_w(self) -> dict[str, float]:
        return {}


def start_monitor(config: RunConfig, stage_file: Path) -> RunMonitor:
    """A started monitor following ``stage_file`` (the workers' marks)."""
    if not config.monitor:
        return NullMonitor()
    from joulebench.measurement.monitor import Monitor

    monitor = Monitor(
        estimate=config.estimate,
        cpu_tdp_w=config.cpu_tdp_w,
        interval_s=config.interval_ms / 1000.0,
        gpu_power_interval_s=config.gpu_power_interval_ms / 1000.0,
    )
    monitor.start()
    monitor.follow_stage_file(stage_file)
    return monitor


def statuses_dicts(monitor: RunMonitor) -> list[dict[str, Any]]:
    from joulebench.measurement.serialize import status_dict

    return [status_dict(s) for s in monitor.statuses()]


def energy_sources_note(monitor: RunMonitor) -> str | None:
    """``None`` when some source measures energy, else the one-line reason why nothing does."""
    statuses = list(monitor.statuses())
    if any(s.available for s in statuses):
        return None
    reasons = "; ".join(f"{s.name}: {s.reason}" for s in statuses) or "no source probed"
    return f"no energy source ({reasons}); without --no-estimate, CPU and DRAM are estimated and labelled"


def trace_bytes(monitor: Any, start_s: float, end_s: float) -> bytes | None:
    """The window's readings as gzip JSONL, ``None`` when the monitor has none."""
    if isinstance(monitor, NullMonitor):
        return None
    with tempfile.TemporaryDirectory(prefix="joulebench-trace-") as tmp:
        path = Path(tmp) / "trace.jsonl.gz"
        monitor.write_trace(path, start_s, end_s)
        if not path.is_file():
            return None
        data = path.read_bytes()
    if not data.startswith(b"\x1f\x8b"):
        data = gzip.compress(data)
    body = gzip.decompress(data)
    # A trace with no reading (only a header, or nothing) is not worth a row.
    if b'"t_s"' not in body:
        return None
    return data
