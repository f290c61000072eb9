"""A fake ``amdsmi`` at the ROCm seam, for machines without an AMD GPU (and for tests).

It has the names of ROCm's ``amdsmi`` Python package that joulebench calls, their return shapes and units,
and its errors (``AmdSmiLibraryException`` with amdsmi's status codes before ``amdsmi_init`` and where a GPU
does not support a call, ``AmdSmiParameterException`` for an argument of the wrong type), and models what
matters for energy (``tests/measurement/test_amdsmi.py`` checks these names and keys against the sources
of the real package):

* ``amdsmi_get_energy_count`` returns ``{"energy_accumulator", "counter_resolution", "timestamp"}``: a raw
  count that is worth ``counter_resolution`` microjoules each (15.3 µJ on MI200/MI300), not joules and not
  microjoules; releases before ROCm 6.1 named the count ``power`` (``legacy_key``). The count updates
  only every ``counter_period_s`` (reads in between repeat it) and counts since the driver loaded;
* a counter that steps backwards (seen on some ROCm releases, amdsmi issue 115): ``backwards_at_s``;
* a die that reads 0: the second die (GCD) of an MI250 shows 0 W and a counter that never moves, its
  package's power being reported on the first (``reads_zero``);
* ``amdsmi_get_power_info`` in watts (integers): ``current_socket_power`` on MI300 (instant),
  ``average_socket_power`` on MI200, ``socket_power`` (amdsmi 6.4 and later); a field the GPU does not
  report reads ``"N/A"`` (``power_key`` names the one it does);
* ``amdsmi_get_power_cap_info`` in microwatts; ``amdsmi_get_gpu_activity`` in percent;
  ``amdsmi_get_gpu_memory_usage`` / ``_total`` in bytes.

Power is a step schedule (:mod:`joulebench.measurement.schedule`), so tests know exact energies.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from joulebench.measurement.schedule import Schedule, integral, steps_of, value_at

#: what the library reports as the accumulator's unit on MI200 and MI300, in microjoules
MI300_RESOLUTION_UJ = 15.3

# amdsmi's status codes for the errors modelled here
AMDSMI_STATUS_NOT_SUPPORTED = 2
AMDSMI_STATUS_INVAL = 1
AMDSMI_STATUS_NOT_INIT = 32
AMDSMI_STATUS_DRIVER_NOT_LOADED = 34


class AmdSmiException(Exception):
    """amdsmi's base exception."""


class AmdSmiLibraryException(AmdSmiException):
    """A failed library call, with amdsmi's status code."""

    def __init__(self, err_code: int) -> None:
        super().__init__(abs(err_code))
        self.err_code = abs(err_code)

    def __str__(self) -> str:
        info = STATUS_TEXT.get(self.err_code, "AMDSMI_STATUS_UNKNOWN_ERROR")
        return f"Error code:\n\t{self.err_code} | {info}"

    def get_error_code(self) -> int:
        return self.err_code


class AmdSmiParameterException(AmdSmiException):
    """An argument of the wrong type (checked before the library is called)."""

    def __init__(self, received: Any, expected: Any) -> None:
        super().__init__(None)
        self.err_code = None
        self.err_msg = f"Invalid parameter:\nActual type: {type(received)}\nExpected type: {expected}"

    def __str__(self) -> str:
        return self.err_msg


STATUS_TEXT = {
    AMDSMI_STATUS_INVAL: "AMDSMI_STATUS_INVAL - Invalid parameters",
    AMDSMI_STATUS_NOT_SUPPORTED: "AMDSMI_STATUS_NOT_SUPPORTED - Feature not supported",
    AMDSMI_STATUS_NOT_INIT: "AMDSMI_STATUS_NOT_INIT - Device not initialized",
    AMDSMI_STATUS_DRIVER_NOT_LOADED: "AMDSMI_STATUS_DRIVER_NOT_LOADED - Driver not loaded",
}


class AmdSmiInitFlags(enum.IntEnum):
    INIT_ALL_PROCESSORS = 0xFFFFFFFF
    INIT_AMD_CPUS = 1 << 0
    INIT_AMD_GPUS = 1 << 1


class AmdSmiMemoryType(enum.IntEnum):
    VRAM = 0
    VIS_VRAM = 1
    GTT = 2


@dataclass
class FakeAmdGpu:
    """One simulated AMD GPU (one die, as amdsmi lists them: an MI250 is two)."""

    power_w: Schedule = 140.0
    market_name: str = "AMD Instinct MI300X"
    asic_serial: str = ""
    uuid: str = ""
    bdf: str = ""
    power_key: str = "current_socket_power"  # MI300; "average_socket_power" on MI200
    power_cap_w: float = 750.0
    counter_start: int = 987_654_321  # raw counts since the driver loaded
    backwards_at_s: float | None = None  # the counter steps back by ``backwards_counts`` here
    backwards_counts: int = 5_000_000
    reads_zero: bool = False  # the second die of an MI250: 0 W, a counter that never moves
    energy_counter: bool = True  # False: amdsmi_get_energy_count is not supported
    activity_pct: Schedule = 0.0
    memory_total_mib: int = 196_592
    memory_used_mib: int = 0
    steps: list[tuple[float, float]] = field(init=False)
    activity_steps: list[tuple[float, float]] = field(init=False)

    def __post_init__(self) -> None:
        self.steps = steps_of(0.0 if self.reads_zero else self.power_w)
        self.activity_steps = steps_of(self.activity_pct)

    def power_at(self, t_rel: float) -> float:
        return value_at(self.steps, t_rel)

    def energy_between(self, a_rel: float, b_rel: float) -> float:
        """Exact joules between two instants (seconds after the fake's start)."""
        return integral(self.steps, a_rel, b_rel)


@dataclass(frozen=True)
class _Handle:
    index: int


class FakeAmdSmi:
    """An object with the ``amdsmi`` names joulebench uses, backed by :class:`FakeAmdGpu` models."""

    AmdSmiException = AmdSmiException
    AmdSmiLibraryException = AmdSmiLibraryException
    AmdSmiParameterException = AmdSmiParameterException
    AmdSmiInitFlags = AmdSmiInitFlags
    AmdSmiMemoryType = AmdSmiMemoryType

    def __init__(
        self,
        gpus: Sequence[FakeAmdGpu] = (),
        *,
        clock: Callable[[], float] = time.monotonic,
        counter_period_s: float = 0.001,
        resolution_uj: float = MI300_RESOLUTION_UJ,
        legacy_key: bool = False,
        driver_version: str = "6.8.5",
        driver_loaded: bool = True,
    ) -> None:
        self.gpus = list(gpus)
        for i, gpu in enumerate(self.gpus):
            gpu.asic_serial = gpu.asic_serial or f"0x{0x5A17_0000_0000_0000 + i:016X}"
            gpu.uuid = gpu.uuid or f"{0x5FFF74A1 + i:08x}-0000-1000-8000-{i:012x}"
            gpu.bdf = gpu.bdf or f"0000:{0x05 + 0x10 * i:02x}:00.0"
        self._clock = clock
        self.start_s = clock()
        self.counter_period_s = counter_period_s
        self.resolution_uj = resolution_uj
        self.legacy_key = legacy_key
        self.driver_version = driver_version
        self.driver_loaded = driver_loaded
        self._initialised = False

    # -- internals ------------------------------------------------------------------------------------

    def _gpu(self, handle: Any) -> FakeAmdGpu:
        if not isinstance(handle, _Handle):
            raise AmdSmiParameterException(handle, _Handle)
        if not self._initialised:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_INIT)
        if not 0 <= handle.index < len(self.gpus):
            raise AmdSmiLibraryException(AMDSMI_STATUS_INVAL)
        return self.gpus[handle.index]

    def _now_rel(self) -> float:
        return self._clock() - self.start_s

    def _updated_rel(self, t_rel: float) -> float:
        """The instant of the counter's last update before ``t_rel``."""
        return int(t_rel / self.counter_period_s + 1e-9) * self.counter_period_s

    def counts(self, gpu: FakeAmdGpu, t_rel: float) -> int:
        """The raw accumulator at ``t_rel``: counts since the driver loaded, to the last update."""
        if gpu.reads_zero:
            return 0
        updated = self._updated_rel(t_rel)
        raw = gpu.counter_start + round(gpu.energy_between(0.0, updated) / (self.resolution_uj * 1e-6))
        if gpu.backwards_at_s is not None and updated >= gpu.backwards_at_s:
            raw -= gpu.backwards_counts
        return raw

    # -- amdsmi API ----------------------------------------------------------------------------------

    def amdsmi_init(self, flag: Any = AmdSmiInitFlags.INIT_AMD_GPUS) -> None:
        if not isinstance(flag, AmdSmiInitFlags):
            raise AmdSmiParameterException(flag, AmdSmiInitFlags)
        if not self.driver_loaded:
            raise AmdSmiLibraryException(AMDSMI_STATUS_DRIVER_NOT_LOADED)
        self._initialised = True

    def amdsmi_shut_down(self) -> None:
        if not self._initialised:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_INIT)
        self._initialised = False

    def amdsmi_get_processor_handles(self) -> list[_Handle]:
        if not self._initialised:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_INIT)
        return [_Handle(i) for i in range(len(self.gpus))]

    def amdsmi_get_gpu_device_uuid(self, processor_handle: Any) -> str:
        return self._gpu(processor_handle).uuid

    def amdsmi_get_gpu_device_bdf(self, processor_handle: Any) -> str:
        return self._gpu(processor_handle).bdf

    def amdsmi_get_gpu_asic_info(self, processor_handle: Any) -> dict[str, Any]:
        gpu = self._gpu(processor_handle)
        return {
            "market_name": gpu.market_name,
            "vendor_id": "0x1002",
            "vendor_name": "Advanced Micro Devices Inc. [AMD/ATI]",
            "device_id": "0x74a1",
            "rev_id": "0x00",
            "asic_serial": gpu.asic_serial,
            "oam_id": processor_handle.index,
            "target_graphics_version": "gfx942",
        }

    def amdsmi_get_gpu_driver_info(self, processor_handle: Any) -> dict[str, str]:
        self._gpu(processor_handle)
        return {
            "driver_name": "amdgpu",
            "driver_version": self.driver_version,
            "driver_date": "2015/01/01 00:00",
        }

    def amdsmi_get_energy_count(self, processor_handle: Any) -> dict[str, Any]:
        gpu = self._gpu(processor_handle)
        if not gpu.energy_counter:
            raise AmdSmiLibraryException(AMDSMI_STATUS_NOT_SUPPORTED)
        t_rel = self._now_rel()
        key = "power" if self.legacy_key else "energy_accumulator"
        # the timestamp is the GPU's, in nanoseconds, of the counter's last update
        stamp_ns = int((self.start_s + self._updated_rel(t_rel)) * 1e9)
        return {key: self.counts(gpu, t_rel), "counter_resolution": self.resolution_uj, "timestamp": stamp_ns}

    def amdsmi_get_power_info(self, processor_handle: Any) -> dict[str, Any]:
        gpu = self._gpu(processor_handle)
        watts = round(gpu.power_at(self._now_rel()))
        info: dict[str, Any] = {
            "socket_power": "N/A",
            "current_socket_power": "N/A",
            "average_socket_power": "N/A",
            "gfx_voltage": 825,
            "soc_voltage": 750,
            "mem_voltage": 1100,
            "power_limit": round(gpu.power_cap_w),
        }
        info[gpu.power_key] = watts
        return info

    def amdsmi_get_power_cap_info(self, processor_handle: Any) -> dict[str, int]:
        gpu = self._gpu(processor_handle)
        cap_uw = round(gpu.power_cap_w * 1e6)
        return {
            "power_cap": cap_uw,
            "default_power_cap": cap_uw,
            "dpm_cap": 2100,
            "min_power_cap": 0,
            "max_power_cap": cap_uw,
        }

    def amdsmi_get_gpu_activity(self, processor_handle: Any) -> dict[str, int]:
        gpu = self._gpu(processor_handle)
        pct = round(value_at(gpu.activity_steps, self._now_rel()))
        return {"gfx_activity": pct, "umc_activity": pct, "mm_activity": 0}

    def amdsmi_get_gpu_memory_usage(self, processor_handle: Any, mem_type: Any) -> int:
        gpu = self._gpu(processor_handle)
        if not isinstance(mem_type, AmdSmiMemoryType):
            raise AmdSmiParameterException(mem_type, AmdSmiMemoryType)
        return gpu.memory_used_mib << 20

    def amdsmi_get_gpu_memory_total(self, processor_handle: Any, mem_type: Any) -> int:
        gpu = self._gpu(processor_handle)
        if not isinstance(mem_type, AmdSmiMemoryType):
            raise AmdSmiParameterException(mem_type, AmdSmiMemoryType)
        return gpu.memory_total_mib << 20
