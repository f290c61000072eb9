"""A fake NVML at the pynvml seam, for machines without an NVIDIA GPU (and for tests).

It has pynvml's function names, constants, return types and errors, and models what matters for energy:

* the energy counter (``nvmlDeviceGetTotalEnergyConsumption``, integer millijoules) updates only every
  ``counter_period_s`` (100 ms, as on real GPUs): reads between updates repeat the last value;
* ``nvmlDeviceGetFieldValues`` returns pynvml's own ``c_nvmlFieldValue_t`` array, with a per-entry
  ``nvmlReturn`` (``NVML_ERROR_NOT_SUPPORTED`` for fields an old GPU lacks) and milliwatts in ``uiVal``;
* ``nvmlDeviceGetPowerUsage`` is a 1 s trailing average in milliwatts (its meaning on H100);
* ``nvmlDeviceGetUtilizationRates`` returns pynvml's ``c_nvmlUtilization_t`` (percent of the last sample
  period in which a kernel ran, a schedule like power) and raises ``NVMLError_NotSupported`` where a GPU
  does not report it (MIG); ``nvmlDeviceGetMemoryInfo`` returns ``c_nvmlMemory_t`` in bytes;
* old GPUs raise ``NVMLError_NotSupported`` for the counter; a machine without a driver raises from
  ``nvmlInit``; every call before ``nvmlInit`` raises ``NVMLError_Uninitialized``.

Power is a schedule of ``(seconds after the fake's start, watts)`` steps, so tests know exact energies::

    fake = FakeNvml([FakeGpu(power_w=[(0.0, 100.0), (1.0, 300.0)])], clock=clock)
    NvmlSource(fake, clock=clock)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pynvml

from joulebench.measurement.schedule import Schedule as PowerSchedule
from joulebench.measurement.schedule import integral, steps_of, value_at


@dataclass
class FakeGpu:
    """One simulated GPU. ``power_w`` is constant or a step schedule ``[(t_from_s, watts), ...]``."""

    power_w: PowerSchedule = 70.0
    name: str = "NVIDIA H100 80GB HBM3"
    uuid: str = ""
    energy_counter: bool = True  # False: a pre-Volta GPU (NVML_ERROR_NOT_SUPPORTED)
    power_fields: bool = True  # False: NVML_FI_DEV_POWER_* answer NVML_ERROR_NOT_SUPPORTED
    power_limit_w: float = 700.0
    sm_clock_mhz: int = 1980
    temperature_c: int = 35
    counter_start_mj: int = 123_456_789  # the counter counts since the driver loaded, not from 0
    driver_reload_at_s: float | None = None  # the driver reloads here: the counter starts again from 0
    utilization_pct: PowerSchedule = 0.0  # percent, a schedule like power_w
    utilization_supported: bool = True  # False: NVML_ERROR_NOT_SUPPORTED (a MIG-partitioned GPU)
    memory_total_mib: int = 81_559
    memory_used_mib: int = 0
    steps: list[tuple[float, float]] = field(init=False)
    utilization_steps: list[tuple[float, float]] = field(init=False)

    def __post_init__(self) -> None:
        self.steps = steps_of(self.power_w)
        self.utilization_steps = steps_of(self.utilization_pct)

    def power_at(self, t_rel: float) -> float:
        return value_at(self.steps, t_rel)

    def utilization_at(self, t_rel: float) -> float:
        return value_at(self.utilization_steps, t_rel)

    def energy_between(self, a_rel: float, b_rel: float) -> float:
        """Exact joules between two instants (seconds after the fake's start)."""
        return integral(self.steps, a_rel, b_rel)


@dataclass(frozen=True)
class _Handle:
    index: int


class FakeNvml:
    """An object with pynvml's names, backed by :class:`FakeGpu` models and a clock."""

    def __init__(
        self,
        gpus: Sequence[FakeGpu] = (),
        *,
        clock: Callable[[], float] = time.monotonic,
        counter_period_s: float = 0.1,
        driver_version: str = "550.54.15",
        init_error: int | None = None,
    ) -> None:
        self.gpus = list(gpus)
        for i, gpu in enumerate(self.gpus):
            if not gpu.uuid:
                gpu.uuid = f"GPU-{i:08x}-1111-2222-3333-{i:012x}"
        self._clock = clock
        self.start_s = clock()
        self.counter_period_s = counter_period_s
        self.driver_version = driver_version
        self.init_error = init_error
        self._initialised = 0
        self.calls: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        # constants, struct types and NVMLError subclasses are pynvml's own
        if name.startswith(("NVML_", "NVMLError", "c_nvml")):
            return getattr(pynvml, name)
        raise AttributeError(name)

    # -- internals ------------------------------------------------------------------------------------

    def _enter(self, fn: str) -> None:
        self.calls[fn] = self.calls.get(fn, 0) + 1
        if not self._initialised:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_UNINITIALIZED)

    def _gpu(self, handle: _Handle) -> FakeGpu:
        if not isinstance(handle, _Handle) or not 0 <= handle.index < len(self.gpus):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return self.gpus[handle.index]

    def _now_rel(self) -> float:
        return self._clock() - self.start_s

    def counter_mj(self, gpu: FakeGpu, t_rel: float) -> int:
        """The counter as NVML shows it at ``t_rel``: the energy up to the last 100 ms update, since the
        driver loaded (or reloaded)."""
        updated = int(t_rel / self.counter_period_s + 1e-9) * self.counter_period_s
        reload = gpu.driver_reload_at_s
        if reload is not None and updated >= reload:
            return round(gpu.energy_between(reload, updated) * 1000.0)
        return gpu.counter_start_mj + round(gpu.energy_between(0.0, updated) * 1000.0)

    # -- pynvml API ----------------------------------------------------------------------------------

    def nvmlInit(self) -> None:
        self.calls["nvmlInit"] = self.calls.get("nvmlInit", 0) + 1
        if self.init_error is not None:
            raise pynvml.NVMLError(self.init_error)
        self._initialised += 1

    def nvmlShutdown(self) -> None:
        self._enter("nvmlShutdown")
        self._initialised -= 1

    def nvmlSystemGetDriverVersion(self) -> str:
        self._enter("nvmlSystemGetDriverVersion")
        return self.driver_version

    def nvmlDeviceGetCount(self) -> int:
        self._enter("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> _Handle:
        self._enter("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < len(self.gpus):
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return _Handle(index)

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> _Handle:
        self._enter("nvmlDeviceGetHandleByUUID")
        for i, gpu in enumerate(self.gpus):
            if gpu.uuid == uuid:
                return _Handle(i)
        raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_FOUND)

    def nvmlDeviceGetUUID(self, handle: _Handle) -> str:
        self._enter("nvmlDeviceGetUUID")
        return self._gpu(handle).uuid

    def nvmlDeviceGetName(self, handle: _Handle) -> str:
        self._enter("nvmlDeviceGetName")
        return self._gpu(handle).name

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: _Handle) -> int:
        self._enter("nvmlDeviceGetTotalEnergyConsumption")
        gpu = self._gpu(handle)
        if not gpu.energy_counter:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return self.counter_mj(gpu, self._now_rel())

    def _trailing_average_w(self, gpu: FakeGpu, t_rel: float, window_s: float = 1.0) -> float:
        a = max(0.0, t_rel - window_s)
        if t_rel <= a:
            return gpu.power_at(t_rel)
        return gpu.energy_between(a, t_rel) / (t_rel - a)

    def nvmlDeviceGetFieldValues(self, handle: _Handle, fieldIds: Sequence[Any]) -> Any:
        self._enter("nvmlDeviceGetFieldValues")
        gpu = self._gpu(handle)
        values = (pynvml.c_nvmlFieldValue_t * len(fieldIds))()
        t_rel = self._now_rel()
        for i, fid in enumerate(fieldIds):
            field_id, scope = fid if isinstance(fid, tuple) else (fid, 0)
            v = values[i]
            v.fieldId, v.scopeId = field_id, scope
            v.timestamp = int(time.time() * 1e6)
            v.valueType = pynvml.NVML_VALUE_TYPE_UNSIGNED_INT
            if field_id == pynvml.NVML_FI_DEV_POWER_INSTANT and gpu.power_fields:
                v.nvmlReturn, v.value.uiVal = pynvml.NVML_SUCCESS, round(gpu.power_at(t_rel) * 1000)
            elif field_id == pynvml.NVML_FI_DEV_POWER_AVERAGE and gpu.power_fields:
                v.nvmlReturn = pynvml.NVML_SUCCESS
                v.value.uiVal = round(self._trailing_average_w(gpu, t_rel) * 1000)
            else:
                v.nvmlReturn = pynvml.NVML_ERROR_NOT_SUPPORTED
        return values

    def nvmlDeviceGetPowerUsage(self, handle: _Handle) -> int:
        self._enter("nvmlDeviceGetPowerUsage")
        gpu = self._gpu(handle)
        return round(self._trailing_average_w(gpu, self._now_rel()) * 1000)

    def nvmlDeviceGetUtilizationRates(self, handle: _Handle) -> Any:
        self._enter("nvmlDeviceGetUtilizationRates")
        gpu = self._gpu(handle)
        if not gpu.utilization_supported:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        util = pynvml.c_nvmlUtilization_t()
        util.gpu = round(gpu.utilization_at(self._now_rel()))  # util.memory is not modelled: never read
        return util

    def nvmlDeviceGetMemoryInfo(self, handle: _Handle) -> Any:
        self._enter("nvmlDeviceGetMemoryInfo")
        gpu = self._gpu(handle)
        memory = pynvml.c_nvmlMemory_t()
        memory.total, memory.used = gpu.memory_total_mib << 20, gpu.memory_used_mib << 20
        memory.free = memory.total - memory.used
        return memory

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: _Handle) -> int:
        self._enter("nvmlDeviceGetEnforcedPowerLimit")
        return round(self._gpu(handle).power_limit_w * 1000)

    def nvmlDeviceGetClockInfo(self, handle: _Handle, type: int) -> int:
        self._enter("nvmlDeviceGetClockInfo")
        gpu = self._gpu(handle)
        if type != pynvml.NVML_CLOCK_SM:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)
        return gpu.sm_clock_mhz

    def nvmlDeviceGetTemperature(self, handle: _Handle, sensor: int) -> int:
        self._enter("nvmlDeviceGetTemperature")
        if sensor != pynvml.NVML_TEMPERATURE_GPU:
            raise pynvml.NVMLError(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return self._gpu(handle).temperature_c


class ManualClock:
    """A clock that moves only when told: deterministic tests of timing-dependent sources."""

    def __init__(self, start_s: float = 1000.0) -> None:
        self.now_s = start_s

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> float:
        self.now_s += seconds
        return self.now_s
