"""GPU power and energy through NVML (package ``nvidia-ml-py``, imported as ``pynvml``).

* Window energy comes from each GPU's cumulative energy counter
  (``nvmlDeviceGetTotalEnergyConsumption``, millijoules; it updates about every 100 ms), read at the
  source interval: one read costs ~4 ms on an H100, too much for the fast path.
* The power timeline (for peaks and a live display) comes from the field values
  ``NVML_FI_DEV_POWER_INSTANT`` or ``NVML_FI_DEV_POWER_AVERAGE`` (``nvmlDeviceGetFieldValues``, milliwatts),
  falling back to ``nvmlDeviceGetPowerUsage`` (a 1 s trailing average on H100). A power read costs a few
  microseconds, so it is polled up to every 20 ms.
* A GPU without the counter (pre-Volta) integrates its power timeline, and every window says so.
* The counter counts since the driver loaded and never wraps: a fall is a reset (a driver reload), which
  is flagged and never gives negative energy.

The adapter talks to any object that has pynvml's function and constant names: the real module, or
:class:`joulebench.measurement.nvml_fake.FakeNvml`.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from joulebench.measurement import fixes
from joulebench.measurement.counter import Unwrapper
from joulebench.measurement.records import Component, DeviceInfo, Reading, SourceStatus
from joulebench.measurement.source import PowerSource

NAME = "nvml"
#: the nominal update period of the energy counter (each machine's is measured at start)
COUNTER_PERIOD_S = 0.1
#: where the power limit cannot be read: above any single GPU's board power today
DEFAULT_MAX_POWER_W = 2000.0


@dataclass(frozen=True)
class VisibleGpu:
    """A GPU the measured program can see: its CUDA index (``gpu0`` = ``cuda:0``) and NVML identity."""

    cuda_index: int
    nvml_index: int
    uuid: str

    @property
    def device(self) -> str:
        return f"gpu{self.cuda_index}"


def parse_visible_devices(value: str | None, uuids: list[str]) -> list[int]:
    """NVML indices of the GPUs that ``CUDA_VISIBLE_DEVICES`` leaves visible, in CUDA order.

    Entries are indices or (prefixes of) UUIDs such as ``GPU-8f3c``. Like CUDA, the list stops at the
    first entry that matches no GPU (or matches more than one), and ``""`` hides every GPU.
    """
    if value is None:
        return list(range(len(uuids)))
    out: list[int] = []
    for raw in value.split(","):
        entry = raw.strip()
        if not entry:
            break
        if entry.lstrip("-").isdigit():
            idx = int(entry)
            if not 0 <= idx < len(uuids) or idx in out:
                break
            out.append(idx)
            continue
        key = entry if entry.startswith(("GPU-", "MIG-")) else f"GPU-{entry}"
        matches = [i for i, u in enumerate(uuids) if u.startswith(key)]
        if len(matches) != 1 or matches[0] in out:
            break
        out.append(matches[0])
    return out


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NvmlSource(PowerSource):
    """Every visible NVIDIA GPU (``CUDA_VISIBLE_DEVICES`` honoured, matched by UUID)."""

    name = NAME
    counter_period_s = COUNTER_PERIOD_S
    resolution_j = 1e-3  # the counter counts millijoules

    def __init__(
        self,
        nvml: Any | None = None,
        *,
        interval_s: float = 0.1,
        power_interval_s: float = 0.02,
        gpu_indices: list[int] | None = None,
        visible_devices: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._nvml = nvml
        self.interval_s = interval_s
        self.power_interval_s = power_interval_s
        self._gpu_indices = gpu_indices
        self._visible = (
            visible_devices if visible_devices is not None else os.environ.get("CUDA_VISIBLE_DEVICES")
        )
        self._clock = clock
        self._gpus: list[VisibleGpu] = []
        self._handles: list[Any] = []
        self._has_counter: list[bool] = []
        self._counters: list[Unwrapper] = []
        self._power_mode: list[str] = []  # "instant" | "average" | "usage" | "none"
        self._initialised = False
        self._status: SourceStatus | None = None

    # -- probing -------------------------------------------------------------------------------------

    def _lib(self) -> Any:
        if self._nvml is None:
            import pynvml  # a base dependency (nvidia-ml-py); imported here to keep startup cheap

            self._nvml = pynvml
        return self._nvml

    def probe(self) -> SourceStatus:
        if self._status is not None:
            return self._status
        self._status = self._probe()
        return self._status

    def _probe(self) -> SourceStatus:
        try:
            nv = self._lib()
        except ImportError:
            return SourceStatus(
                NAME, False, "pynvml is not installed: pip install nvidia-ml-py", fix=fixes.nvml_no_library()
            )
        try:
            nv.nvmlInit()
        except Exception as exc:  # NVMLError: no driver, no library
            return SourceStatus(
                NAME,
                False,
                f"NVML cannot start ({exc}): no NVIDIA driver or GPU here",
                fix=fixes.nvml_no_driver(),
            )
        self._initialised = True
        try:
            count = nv.nvmlDeviceGetCount()
            all_handles = [nv.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            uuids = [_text(nv.nvmlDeviceGetUUID(h)) for h in all_handles]
        except Exception as exc:
            return SourceStatus(NAME, False, f"NVML cannot list GPUs: {exc}")
        order = parse_visible_devices(self._visible, uuids)
        visible = [VisibleGpu(cuda, nvml_index, uuids[nvml_index]) for cuda, nvml_index in enumerate(order)]
        if self._gpu_indices is not None:
            wanted = set(self._gpu_indices)
            missing = sorted(wanted - {g.cuda_index for g in visible})
            if missing:
                return SourceStatus(
                    NAME, False, f"no visible GPU with index {missing} ({len(visible)} visible)"
                )
            visible = [g for g in visible if g.cuda_index in wanted]
        if not visible:
            return SourceStatus(
                NAME, False, f"no visible GPU ({count} present, CUDA_VISIBLE_DEVICES hides all)"
            )
        self._gpus = visible
        self._handles = [all_handles[g.nvml_index] for g in visible]
        self._has_counter = [self._counter_works(h) for h in self._handles]
        self._power_mode = [self._pick_power_mode(h) for h in self._handles]
        limits_mw = [self._safe(nv.nvmlDeviceGetEnforcedPowerLimit, h) for h in self._handles]
        # twice the enforced limit: boards overshoot it for milliseconds, never for a counter period
        known = [2 * mw / 1000.0 for mw in limits_mw if isinstance(mw, (int, float)) and mw > 0]
        self.max_power_w = max(known) if len(known) == len(limits_mw) else DEFAULT_MAX_POWER_W
        self._counters = [Unwrapper(1e-3, None, self.max_power_w) for _ in self._handles]
        readable = zip(visible, self._has_counter, self._power_mode, strict=True)
        unusable = [g.device for g, has_counter, mode in readable if not has_counter and mode == "none"]
        if unusable:
            return SourceStatus(
                NAME, False, f"{', '.join(unusable)}: neither energy counter nor power readable"
            )
        n_counter = sum(self._has_counter)
        how = (
            "energy counter"
            if n_counter == len(visible)
            else f"energy counter on {n_counter}, power integrated on {len(visible) - n_counter}"
        )
        return SourceStatus(
            NAME,
            True,
            f"{len(visible)} GPU{'s' if len(visible) > 1 else ''}, {how}, power via {self._power_mode[0]}",
            components=(Component.GPU,),
            devices=tuple(g.device for g in visible),
        )

    def _counter_works(self, handle: Any) -> bool:
        try:
            self._lib().nvmlDeviceGetTotalEnergyConsumption(handle)
        except Exception:
            return False
        return True

    def _field_power_mw(self, handle: Any, field_id: int) -> float | None:
        nv = self._lib()
        values = nv.nvmlDeviceGetFieldValues(handle, [field_id])
        v = values[0]
        if v.nvmlReturn != nv.NVML_SUCCESS:
            return None
        return float(v.value.uiVal)

    def _pick_power_mode(self, handle: Any) -> str:
        nv = self._lib()
        for mode, field in (
            ("instant", "NVML_FI_DEV_POWER_INSTANT"),
            ("average", "NVML_FI_DEV_POWER_AVERAGE"),
        ):
            try:
                if self._field_power_mw(handle, getattr(nv, field)) is not None:
                    return mode
            except Exception:
                continue  # an old driver without the field (or without nvmlDeviceGetFieldValues)
        try:
            nv.nvmlDeviceGetPowerUsage(handle)
        except Exception:
            return "none"
        return "usage"

    # -- reading -------------------------------------------------------------------------------------

    def _power_w(self, i: int) -> float | None:
        nv = self._lib()
        handle, mode = self._handles[i], self._power_mode[i]
        if mode == "instant":
            mw = self._field_power_mw(handle, nv.NVML_FI_DEV_POWER_INSTANT)
        elif mode == "average":
            mw = self._field_power_mw(handle, nv.NVML_FI_DEV_POWER_AVERAGE)
        elif mode == "usage":
            mw = float(nv.nvmlDeviceGetPowerUsage(handle))
        else:
            return None
        return None if mw is None else mw / 1000.0

    def read(self) -> list[Reading]:
        nv = self._lib()
        out: list[Reading] = []
        for i, gpu in enumerate(self._gpus):
            if self._has_counter[i]:
                before = self._clock()
                mj = nv.nvmlDeviceGetTotalEnergyConsumption(self._handles[i])
                t = (before + self._clock()) / 2  # a read takes milliseconds: stamp its middle
                energy_j, reset = self._counters[i].update(mj, t, self.counter_period_s)
                out.append(
                    Reading(t, NAME, Component.GPU, gpu.device, energy_j=energy_j, counter_reset=reset)
                )
            # a GPU without the counter is integrated from read_power()'s timeline (power_interval_s),
            # the sampling period its windows are flagged against
        return out

    def read_power(self) -> list[Reading]:
        out: list[Reading] = []
        for i, gpu in enumerate(self._gpus):
            power = self._power_w(i)
            if power is not None:
                out.append(Reading(self._clock(), NAME, Component.GPU, gpu.device, power_w=power))
        return out

    def utilization_pct(self) -> dict[str, float]:
        nv = self._lib()
        out: dict[str, float] = {}
        for gpu, handle in zip(self._gpus, self._handles, strict=True):
            util = self._safe(nv.nvmlDeviceGetUtilizationRates, handle)
            if util is not None:
                out[gpu.device] = float(util.gpu)
        return out

    def memory_mib(self) -> dict[str, tuple[int, int]]:
        nv = self._lib()
        out: dict[str, tuple[int, int]] = {}
        for gpu, handle in zip(self._gpus, self._handles, strict=True):
            memory = self._safe(nv.nvmlDeviceGetMemoryInfo, handle)
            if memory is not None:
                out[gpu.device] = (memory.used >> 20, memory.total >> 20)
        return out

    def device_info(self) -> list[DeviceInfo]:
        nv = self._lib()
        out: list[DeviceInfo] = []
        driver = self._safe(nv.nvmlSystemGetDriverVersion)
        memory = self.memory_mib()
        for i, gpu in enumerate(self._gpus):
            h = self._handles[i]
            limit_mw = self._safe(nv.nvmlDeviceGetEnforcedPowerLimit, h)
            out.append(
                DeviceInfo(
                    source=NAME,
                    component=Component.GPU,
                    device=gpu.device,
                    name=_text(self._safe(nv.nvmlDeviceGetName, h) or "unknown GPU"),
                    attributes={
                        "uuid": gpu.uuid,
                        "nvml_index": gpu.nvml_index,
                        "driver": _text(driver) if driver is not None else None,
                        "power_limit_w": limit_mw / 1000.0 if limit_mw is not None else None,
                        "sm_clock_mhz": self._safe(nv.nvmlDeviceGetClockInfo, h, nv.NVML_CLOCK_SM),
                        "temperature_c": self._safe(nv.nvmlDeviceGetTemperature, h, nv.NVML_TEMPERATURE_GPU),
                        # at a run's start: other processes' memory (and a sweep's engine kept warm for it)
                        "memory_used_mib": memory[gpu.device][0] if gpu.device in memory else None,
                        "energy_counter": self._has_counter[i],
                        "power_field": self._power_mode[i],
                    },
                )
            )
        return out

    @staticmethod
    def _safe(fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception:
            return None

    def close(self) -> None:
        if self._initialised:
            self._initialised = False
            with contextlib.suppress(Exception):
                self._lib().nvmlShutdown()
