"""Trace files: a measurement's readings and stage windows, to keep, share and re-analyse.

Format (docs/trace-format.md): JSONL or CSV by extension (``.jsonl``, ``.csv``, optionally ``.gz``).
Reading rows have ``t_s, source, component, device, power_w, energy_j`` (monotonic seconds, watts,
unwrapped cumulative joules). Everything else (header, stages, idle window) is a JSON object with a
``type`` key: a line of its own in JSONL, a ``# {...}`` comment line in CSV.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import json
import math
import os
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO, Any, cast

from joulebench.errors import UsageError
from joulebench.measurement.records import Component, Reading, SourceStatus
from joulebench.measurement.series import SourceMeta

FORMAT = "joulebench-trace"
#: 2: counter reads include the last read before each change, and resets are marked (``counter_reset``)
VERSION = 2
COLUMNS = ("t_s", "source", "component", "device", "power_w", "energy_j", "counter_reset")
SUFFIXES = (".jsonl", ".jsonl.gz", ".csv", ".csv.gz")


@dataclass
class Trace:
    """Everything a trace holds."""

    sources: list[SourceMeta] = field(default_factory=list)
    statuses: list[SourceStatus] = field(default_factory=list)
    readings: list[Reading] = field(default_factory=list)
    stages: list[tuple[str, float, float]] = field(default_factory=list)
    #: stages still open when the measurement stopped (closed then, and flagged ``unfinished``)
    unfinished: set[tuple[str, float, float]] = field(default_factory=set)
    idle: tuple[float, float] | None = None
    idle_power_w: dict[tuple[Component, str], float] = field(default_factory=dict)
    start_s: float | None = None
    end_s: float | None = None
    version: int = VERSION


def trace_kind(path: str | os.PathLike[str]) -> tuple[str, bool]:
    """``("jsonl" | "csv", gzipped)`` from the file name; :class:`UsageError` for anything else."""
    name = str(path).lower()
    gz = name.endswith(".gz")
    base = name[:-3] if gz else name
    for kind in ("jsonl", "csv"):
        if base.endswith("." + kind):
            return kind, gz
    raise UsageError(f"trace file {path} must end in one of {', '.join(SUFFIXES)}")


@contextmanager
def _open(path: Path, mode: str, gz: bool) -> Iterator[IO[str]]:
    if gz:
        with gzip.open(path, mode + "t", encoding="utf-8", newline="") as zipped:
            yield cast(IO[str], zipped)
    else:
        with open(path, mode, encoding="utf-8", newline="") as fh:
            yield fh


def _status_dict(s: SourceStatus) -> dict[str, Any]:
    d = asdict(s)
    d["components"] = [c.value for c in s.components]
    d["devices"] = list(s.devices)
    return d


def _meta_records(trace: Trace) -> list[dict[str, Any]]:
    header = {
        "type": "header",
        "format": FORMAT,
        "version": VERSION,
        "start_s": trace.start_s,
        "end_s": trace.end_s,
        "sources": [asdict(m) for m in trace.sources],
        "statuses": [_status_dict(s) for s in trace.statuses],
    }
    out: list[dict[str, Any]] = [header]
    if trace.idle is not None:
        out.append(
            {
                "type": "idle",
                "start_s": trace.idle[0],
                "end_s": trace.idle[1],
                "power_w": [
                    {"component": c.value, "device": d, "power_w": w}
                    for (c, d), w in trace.idle_power_w.items()
                ],
            }
        )
    for n, a, b in trace.stages:
        rec: dict[str, Any] = {"type": "stage", "name": n, "start_s": a, "end_s": b}
        if (n, a, b) in trace.unfinished:
            rec["unfinished"] = True
        out.append(rec)
    return out


def _reading_dict(r: Reading) -> dict[str, Any]:
    d: dict[str, Any] = {"t_s": r.t_s, "source": r.source, "component": r.component.value, "device": r.device}
    if r.power_w is not None:
        d["power_w"] = r.power_w
    if r.energy_j is not None:
        d["energy_j"] = r.energy_j
    if r.counter_reset:
        d["counter_reset"] = True
    return d


def write_trace(path: str | os.PathLike[str], trace: Trace) -> Path:
    """Write ``trace`` to ``path`` (format from the extension). Written to a temporary file first, so a
    crash never leaves half a trace under the final name."""
    path = Path(path)
    kind, gz = trace_kind(path)
    tmp = path.with_name(path.name + ".partial")
    try:
        _write(tmp, kind, gz, trace)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    return path


def _write(tmp: Path, kind: str, gz: bool, trace: Trace) -> None:
    with _open(tmp, "w", gz) as fh:
        if kind == "jsonl":
            for rec in _meta_records(trace):
                fh.write(json.dumps(rec) + "\n")
            for r in trace.readings:
                fh.write(json.dumps(_reading_dict(r)) + "\n")
        else:
            for rec in _meta_records(trace):
                fh.write("# " + json.dumps(rec) + "\n")
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(COLUMNS)
            for r in trace.readings:
                writer.writerow(
                    [
                        repr(r.t_s),
                        r.source,
                        r.component.value,
                        r.device,
                        "" if r.power_w is None else repr(r.power_w),
                        "" if r.energy_j is None else repr(r.energy_j),
                        "1" if r.counter_reset else "",
                    ]
                )


def _float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    return number


def _number(value: Any) -> float:
    number = _float(value)
    if number is None:
        raise ValueError("a number is missing")
    return number


#: ``other`` (like a ``device: "all"`` row) is computed from readings, never stored as a reading
_DERIVED = (Component.OTHER,)


def _reading(d: dict[str, Any]) -> Reading:
    power, energy = _float(d.get("power_w")), _float(d.get("energy_j"))
    if power is None and energy is None:
        raise ValueError("a reading needs power_w or energy_j")
    component = Component(d["component"])
    if component in _DERIVED:
        raise ValueError(f"component {component.value!r} is derived from readings, never a reading itself")
    device = str(d["device"])
    if device == "all":
        raise ValueError("device 'all' is the sum of devices, never a reading itself")
    reset = d.get("counter_reset")
    if reset not in (None, "", "0", "1", True, False):
        raise ValueError(f"counter_reset must be true or false, not {reset!r}")
    return Reading(
        t_s=_number(d["t_s"]),
        source=str(d["source"]),
        component=component,
        device=device,
        power_w=power,
        energy_j=energy,
        counter_reset=reset in ("1", True),
    )


def _source_meta(m: dict[str, Any]) -> SourceMeta:
    return SourceMeta(
        name=str(m["name"]),
        interval_s=_number(m.get("interval_s", 0.0)),
        counter_period_s=_float(m.get("counter_period_s")),
        power_interval_s=_float(m.get("power_interval_s")),
        estimated=bool(m.get("estimated", False)),
        max_power_w=_float(m.get("max_power_w")),
        resolution_j=_float(m.get("resolution_j")),
        power_resolution_w=_float(m.get("power_resolution_w")),
        period_measured=m.get("period_measured") if isinstance(m.get("period_measured"), bool) else None,
    )


def _apply_meta(trace: Trace, rec: dict[str, Any]) -> None:
    kind = rec.get("type")
    if kind == "header":
        if rec.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} header")
        if int(rec.get("version", 0)) > VERSION:
            raise ValueError(
                f"trace version {rec['version']} is newer than this joulebench reads ({VERSION})"
            )
        trace.version = int(rec.get("version", VERSION))
        trace.start_s, trace.end_s = _float(rec.get("start_s")), _float(rec.get("end_s"))
        trace.sources = [_source_meta(m) for m in rec.get("sources", [])]
        trace.statuses = [
            SourceStatus(
                name=s["name"],
                available=bool(s["available"]),
                reason=str(s["reason"]),
                components=tuple(Component(c) for c in s.get("components", [])),
                devices=tuple(s.get("devices", [])),
                estimated=bool(s.get("estimated", False)),
            )
            for s in rec.get("statuses", [])
        ]
    elif kind == "stage":
        stage = (str(rec["name"]), _number(rec["start_s"]), _number(rec["end_s"]))
        trace.stages.append(stage)
        if rec.get("unfinished") is True:
            trace.unfinished.add(stage)
    elif kind == "idle":
        trace.idle = (_number(rec["start_s"]), _number(rec["end_s"]))
        trace.idle_power_w = {
            (Component(p["component"]), str(p["device"])): _number(p["power_w"])
            for p in rec.get("power_w", [])
        }
    # unknown record types are skipped: newer writers may add some


def _parse_lines(lines: Iterable[str], kind: str, trace: Trace) -> None:
    header: list[str] | None = None
    for lineno, line in enumerate(lines, 1):
        stripped = line.strip()
        if not stripped:
            continue
        try:
            if kind == "jsonl":
                rec = json.loads(stripped)
                if not isinstance(rec, dict):
                    raise ValueError("not a JSON object")
                if "type" in rec:
                    _apply_meta(trace, rec)
                else:
                    trace.readings.append(_reading(rec))
            elif stripped.startswith("#"):
                _apply_meta(trace, json.loads(stripped[1:]))
            elif header is None:
                header = next(csv.reader([stripped]))
                missing = [c for c in ("t_s", "source", "component", "device") if c not in header]
                if missing:
                    raise ValueError(f"CSV header lacks {', '.join(missing)}")
            else:
                row = next(csv.reader([stripped]))
                trace.readings.append(_reading(dict(zip(header, row, strict=False))))
        except (ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"line {lineno}: {exc}") from exc


def read_trace(path: str | os.PathLike[str]) -> Trace:
    """Read a trace written by :func:`write_trace` (or by hand, following the documented format)."""
    path = Path(path)
    kind, gz = trace_kind(path)
    trace = Trace()
    try:
        with _open(path, "r", gz) as fh:
            _parse_lines(fh, kind, trace)
    except UsageError as exc:
        raise UsageError(f"trace {path}: {exc}") from exc
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read trace {path}: {exc}") from exc
    if not trace.readings and not trace.stages:
        raise UsageError(f"trace {path} holds no readings")
    return _finish(trace)


def parse_trace_lines(lines: Iterable[str]) -> Trace:
    """A trace from its JSONL lines (as the results database stores them); :class:`UsageError` when
    they are not one."""
    trace = Trace()
    _parse_lines(lines, "jsonl", trace)
    return _finish(trace)


def _finish(trace: Trace) -> Trace:
    trace.readings.sort(key=lambda r: r.t_s)
    if trace.version < 2:
        trace.readings = _version1_reads(trace)
        trace.sources = [_version1_bounds(m) for m in trace.sources]
    return trace


def _version1_bounds(meta: SourceMeta) -> SourceMeta:
    """Version 1 stated no maximum power or resolution: a known source's own defaults stand in."""
    from joulebench.measurement import nvml, rapl

    known = {
        nvml.NAME: (nvml.DEFAULT_MAX_POWER_W, nvml.NvmlSource.resolution_j),
        rapl.NAME: (rapl.MAX_ZONE_POWER_W, rapl.RESOLUTION_J),
    }
    if meta.name not in known or meta.max_power_w is not None:
        return meta
    max_power, resolution = known[meta.name]
    return replace(meta, max_power_w=max_power, resolution_j=resolution)


def _version1_reads(trace: Trace) -> list[Reading]:
    """Version 1 kept a counter's change points only. The read before each change, which says when the
    counter still held its old value, was the previous scheduled read: one source interval earlier (or
    the previous change, if that is later). It is put back so the counter rule sees what it needs."""
    intervals = {m.name: m.interval_s for m in trace.sources}
    last: dict[tuple[str, Component, str], Reading] = {}
    out: list[Reading] = []
    for r in trace.readings:
        key = (r.source, r.component, r.device)
        prev = last.get(key) if r.energy_j is not None else None
        if prev is not None and prev.energy_j is not None and r.energy_j != prev.energy_j:
            before = r.t_s - intervals.get(r.source, 0.0)
            if before > prev.t_s:
                out.append(Reading(before, r.source, r.component, r.device, energy_j=prev.energy_j))
        if r.energy_j is not None:
            last[key] = r
        out.append(r)
    out.sort(key=lambda r: r.t_s)
    return out
