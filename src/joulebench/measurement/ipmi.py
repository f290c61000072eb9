"""Whole-node input power through IPMI DCMI (``ipmitool dcmi power reading``).

The BMC answers about once a second and the command itself takes tens to hundreds of milliseconds, so
this source runs in its own sampler thread at 1 Hz and its power timeline is integrated. Vendors print
the reading slightly differently (padding, tabs, ``key : value`` in newer ipmitool, seconds or
milliseconds for the sampling period, ``activated`` or ``deactivated`` state); :func:`parse_dcmi` reads
them all and keeps the average, minimum and maximum as well as the instantaneous value.

The binary is ``$JOULEBENCH_IPMITOOL`` or ``ipmitool`` on ``PATH``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

from joulebench.measurement import fixes
from joulebench.measurement.records import Component, DeviceInfo, Reading, SourceStatus
from joulebench.measurement.source import PowerSource

NAME = "ipmi"
BINARY_ENV = "JOULEBENCH_IPMITOOL"
COMMAND = ("dcmi", "power", "reading")
TIMEOUT_S = 10.0

_NUMBER = r"(\d+(?:\.\d+)?)"
_FIELDS = {
    "instant_w": re.compile(rf"instantaneous power reading\s*:\s*{_NUMBER}\s*watts", re.I),
    "minimum_w": re.compile(rf"minimum during sampling period\s*:\s*{_NUMBER}\s*watts", re.I),
    "maximum_w": re.compile(rf"maximum during sampling period\s*:\s*{_NUMBER}\s*watts", re.I),
    "average_w": re.compile(rf"average power reading over sample period\s*:\s*{_NUMBER}\s*watts", re.I),
}
_PERIOD = re.compile(r"sampling period\s*:\s*(\d+)\s*(milliseconds|seconds)", re.I)
_STATE = re.compile(r"power reading state is\s*:?\s*(\w+)", re.I)
_STAMP = re.compile(r"ipmi timestamp\s*:\s*(.+)", re.I)


class IpmiError(Exception):
    """ipmitool failed or printed something that is not a DCMI power reading."""


@dataclass(frozen=True)
class DcmiReading:
    """One parsed ``ipmitool dcmi power reading``."""

    instant_w: float
    average_w: float | None
    minimum_w: float | None
    maximum_w: float | None
    sampling_period_s: float | None
    state: str | None  # "activated" | "deactivated" | None when not printed
    ipmi_timestamp: str | None

    @property
    def activated(self) -> bool:
        return self.state is None or self.state.lower() == "activated"


def parse_dcmi(text: str) -> DcmiReading:
    """Parse ipmitool's DCMI power reading; :class:`IpmiError` when there is none in ``text``."""
    values: dict[str, float | None] = {}
    for key, pattern in _FIELDS.items():
        m = pattern.search(text)
        values[key] = float(m.group(1)) if m else None
    instant = values["instant_w"]
    if instant is None:
        first = next((line.strip() for line in text.splitlines() if line.strip()), "no output")
        raise IpmiError(first)
    period = _PERIOD.search(text)
    period_s = None
    if period:
        period_s = float(period.group(1)) / (1000.0 if period.group(2).lower() == "milliseconds" else 1.0)
    state = _STATE.search(text)
    stamp = _STAMP.search(text)
    return DcmiReading(
        instant_w=instant,
        average_w=values["average_w"],
        minimum_w=values["minimum_w"],
        maximum_w=values["maximum_w"],
        sampling_period_s=period_s,
        state=state.group(1).lower() if state else None,
        ipmi_timestamp=stamp.group(1).strip() if stamp else None,
    )


def ipmitool_path() -> str | None:
    """The ipmitool to run: ``$JOULEBENCH_IPMITOOL`` or ``ipmitool`` on ``PATH``."""
    configured = os.environ.get(BINARY_ENV)
    if configured:
        return configured if os.access(configured, os.X_OK) else shutil.which(configured)
    return shutil.which("ipmitool")


class IpmiSource(PowerSource):
    """Node input power from the BMC, about 1 Hz, in its own thread."""

    name = NAME
    blocking = True
    counter_period_s = None
    power_resolution_w = 1.0  # DCMI reports whole watts

    def __init__(
        self,
        binary: str | None = None,
        *,
        interval_s: float = 1.0,
        timeout_s: float = TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.binary = binary
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._clock = clock
        self.last: DcmiReading | None = None
        self._status: SourceStatus | None = None

    def _run(self) -> DcmiReading:
        assert self.binary is not None
        try:
            proc = subprocess.run(
                [self.binary, *COMMAND], capture_output=True, text=True, timeout=self.timeout_s, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise IpmiError(f"ipmitool did not answer within {self.timeout_s:g} s") from exc
        except OSError as exc:
            raise IpmiError(f"cannot run {self.binary}: {exc}") from exc
        if proc.returncode != 0:
            text = (
                proc.stderr.strip() or proc.stdout.strip() or f"exit code {proc.returncode}"
            ).splitlines()[0]
            raise IpmiError(text)
        return parse_dcmi(proc.stdout)

    def probe(self) -> SourceStatus:
        if self._status is None:
            self._status = self._probe()
        return self._status

    def _probe(self) -> SourceStatus:
        if self.binary is None:
            self.binary = ipmitool_path()
        configured = os.environ.get(BINARY_ENV)
        if self.binary is None and configured:
            found = os.path.exists(configured)
            why = "is not executable (chmod +x it)" if found else "is neither a file nor a command on PATH"
            return SourceStatus(NAME, False, f"{BINARY_ENV}={configured} {why}")
        if self.binary is None:
            return SourceStatus(
                NAME, False, f"ipmitool not found on PATH (or set {BINARY_ENV})", fix=fixes.ipmi_no_tool()
            )
        try:
            reading = self._run()
        except IpmiError as exc:
            fix = fixes.ipmi_device() if "/dev/ipmi" in str(exc) else None
            return SourceStatus(NAME, False, f"ipmitool dcmi power reading failed: {exc}", fix=fix)
        if not reading.activated and reading.instant_w <= 0:
            return SourceStatus(
                NAME,
                False,
                "the BMC's DCMI power reading is deactivated (0 W reported)",
                fix=fixes.ipmi_no_power(),
            )
        self.last = reading
        state = "" if reading.activated else ", BMC statistics deactivated"
        return SourceStatus(
            NAME,
            True,
            f"DCMI power reading {reading.instant_w:g} W{state}",
            components=(Component.NODE,),
            devices=("node",),
        )

    def read(self) -> list[Reading]:
        before = self._clock()
        reading = self._run()
        # the command is slow: the BMC sampled somewhere inside it, so stamp the middle
        t = (before + self._clock()) / 2
        self.last = reading
        return [Reading(t, NAME, Component.NODE, "node", power_w=reading.instant_w)]

    def device_info(self) -> list[DeviceInfo]:
        r = self.last
        return [
            DeviceInfo(
                source=NAME,
                component=Component.NODE,
                device="node",
                name="BMC (IPMI DCMI)",
                attributes={
                    "binary": self.binary,
                    "average_w": r.average_w if r else None,
                    "minimum_w": r.minimum_w if r else None,
                    "maximum_w": r.maximum_w if r else None,
                    "sampling_period_s": r.sampling_period_s if r else None,
                    "state": r.state if r else None,
                },
            )
        ]
