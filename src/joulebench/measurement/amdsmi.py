"""AMD GPU power and energy through ROCm's ``amdsmi`` Python package (the ``[amd]`` extra).

* Window energy comes from each GPU's energy accumulator (``amdsmi_get_energy_count``). Its value is a
  count, worth ``counter_resolution`` microjoules each (15.3 µJ on MI200 and MI300): code that takes the
  count for joules or microjoules is off by that factor. ROCm releases before 6.1 named the count ``power``.
  The accumulator counts since the driver loaded and does not wrap; on some ROCm releases it steps
  backwards (amdsmi issue 115): a fall is a reset, flagged, and never gives negative energy. Its update
  period is measured at start (nominal 1 ms).
* The power timeline comes from ``amdsmi_get_power_info``, in watts: ``current_socket_power`` (MI300,
  instantaneous) where the GPU reports it, else ``average_socket_power`` (MI200), else ``socket_power``
  (amdsmi 6.4 and later); a field the GPU does not report reads "N/A".
* A die that reads 0 W is flagged and left out, never counted as 0 J: an MI250's second die (GCD) reports
  0 W, its package's power being reported by the first; some MI325X setups read near 0 W through rocm-smi.
  A GPU whose energy accumulator is not supported integrates its power timeline, and its windows say so.
* The GPUs measured are those the program sees, as ROCm picks them: ``ROCR_VISIBLE_DEVICES`` selects from
  every GPU, then ``HIP_VISIBLE_DEVICES`` (or ``CUDA_VISIBLE_DEVICES``, which HIP also reads) selects from
  those, by index or by ``GPU-<serial>``. Indices follow amdsmi's order (PCI bus order).

The adapter talks to any object with ``amdsmi``'s names: the real module, or
:class:`joulebench.measurement.amdsmi_fake.FakeAmdSmi`. Nothing here has run on an AMD GPU yet
(docs/measurement.md says so).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from joulebench.measurement import fixes
from joulebench.measurement.counter import Unwrapper
from joulebench.measurement.nvml import parse_visible_devices
from joulebench.measurement.records import Component, DeviceInfo, Reading, SourceStatus
from joulebench.measurement.source import PowerSource

NAME = "amdsmi"
#: the nominal update period of the energy accumulator (each machine's is measured at start)
COUNTER_PERIOD_S = 0.001
#: where the power cap cannot be read: above any single GPU's board power today
DEFAULT_MAX_POWER_W = 2000.0
#: the power fields, in the order they are preferred
POWER_KEYS = ("current_socket_power", "average_socket_power", "socket_power")
#: ROCm's variables that choose the visible GPUs, in the order ROCm applies them
VISIBLE_VARIABLES = ("ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES")


@dataclass(frozen=True)
class AmdGpu:
    """A GPU as amdsmi lists it, and where the program sees it (``gpu0`` = the first HIP device)."""

    hip_index: int
    amdsmi_index: int
    uuid: str
    bdf: str
    serial_id: str  # GPU-<serial>, as ROCR_VISIBLE_DEVICES names a GPU

    @property
    def device(self) -> str:
        return f"gpu{self.hip_index}"


def visible_order(serial_ids: list[str], environ: Mapping[str, str]) -> list[int]:
    """amdsmi indices of the GPUs the program sees, in its order."""
    order = list(range(len(serial_ids)))
    hip = environ.get("HIP_VISIBLE_DEVICES", environ.get("CUDA_VISIBLE_DEVICES"))
    for value in (environ.get("ROCR_VISIBLE_DEVICES"), hip):
        if value is None:
            continue
        picked = parse_visible_devices(value, [serial_ids[i] for i in order])
        order = [order[k] for k in picked]
    return order


def visible_count(smi: Any | None = None, environ: Mapping[str, str] | None = None) -> int:
    """How many AMD GPUs a program started now would see (0 without amdsmi, ROCm or a GPU). ``smi``: the
    amdsmi module or an object with its names (default: amdsmi itself)."""
    try:
        lib = smi if smi is not None else _import_amdsmi()
    except (ImportError, NoLibrary):
        return 0
    try:
        lib.amdsmi_init(lib.AmdSmiInitFlags.INIT_AMD_GPUS)
    except Exception:  # AmdSmiLibraryException: no amdgpu driver
        return 0
    try:
        handles = list(lib.amdsmi_get_processor_handles())
        serials = [_serial_id(lib.amdsmi_get_gpu_asic_info(h).get("asic_serial")) for h in handles]
        return len(visible_order(serials, os.environ if environ is None else environ))
    except Exception:  # a GPU that cannot be listed is none to plan for
        return 0
    finally:
        lib.amdsmi_shut_down()


class NoLibrary(Exception):
    """The amdsmi package is installed but ROCm's library under it is not."""


def _import_amdsmi() -> Any:
    """``import amdsmi``. Without ROCm's ``libamd_smi.so`` the package prints a line to stdout and fails
    with a ``KeyError`` at import: the line is kept off the terminal and the failure said in words."""
    import io
    from contextlib import redirect_stdout

    with redirect_stdout(io.StringIO()):
        try:
            import amdsmi  # the [amd] extra, or ROCm's own copy
        except ImportError:
            raise
        except Exception as exc:  # KeyError('libamd_smi.so'), OSError: no ROCm library to load
            raise NoLibrary(
                f"amdsmi is installed but cannot load ROCm's libamd_smi.so ({type(exc).__name__}: {exc})"
            ) from None
    return amdsmi


def _number(value: Any) -> float | None:
    """amdsmi answers "N/A" where a GPU does not report a value."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _serial_id(serial: Any) -> str:
    text = str(serial or "").lower().removeprefix("0x")
    return f"GPU-{text.zfill(16)}" if text else ""


class AmdSmiSource(PowerSource):
    """Every visible AMD GPU."""

    name = NAME
    counter_period_s = COUNTER_PERIOD_S
    power_resolution_w = 1.0  # amdsmi reports whole watts

    def __init__(
        self,
        amdsmi: Any | None = None,
        *,
        interval_s: float = 0.1,
        power_interval_s: float = 0.02,
        gpu_indices: list[int] | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._amdsmi = amdsmi
        self.interval_s = interval_s
        self.power_interval_s = power_interval_s
        self._gpu_indices = gpu_indices
        self._environ = os.environ if environ is None else environ
        self._clock = clock
        self._gpus: list[AmdGpu] = []  # the measured ones
        self._zero: list[AmdGpu] = []  # visible, reading 0 W: left out
        self._handles: list[Any] = []  # of the measured ones
        self._visible_handles: dict[str, Any] = {}  # by device, zero-reading dies too
        self._has_counter: list[bool] = []
        self._counters: list[Unwrapper] = []
        self._power_key: list[str | None] = []
        self._initialised = False
        self._status: SourceStatus | None = None

    # -- probing -------------------------------------------------------------------------------------

    def _lib(self) -> Any:
        if self._amdsmi is None:
            self._amdsmi = _import_amdsmi()
        return self._amdsmi

    def probe(self) -> SourceStatus:
        if self._status is None:
            self._status = self._probe()
        return self._status

    def _probe(self) -> SourceStatus:
        try:
            smi = self._lib()
        except ImportError:
            return SourceStatus(NAME, False, "amdsmi is not installed", fix=fixes.amdsmi_no_library())
        except NoLibrary as exc:
            return SourceStatus(NAME, False, str(exc), fix=fixes.amd_no_driver())
        try:
            smi.amdsmi_init(smi.AmdSmiInitFlags.INIT_AMD_GPUS)
        except Exception as exc:  # AmdSmiLibraryException: no amdgpu driver, no GPU
            return SourceStatus(
                NAME, False, f"amdsmi cannot start ({exc}): no AMD GPU driver here", fix=fixes.amd_no_driver()
            )
        self._initialised = True
        try:
            handles = list(smi.amdsmi_get_processor_handles())
            uuids = [str(smi.amdsmi_get_gpu_device_uuid(h)) for h in handles]
            bdfs = [str(self._safe(smi.amdsmi_get_gpu_device_bdf, h) or "") for h in handles]
            serials = [
                _serial_id((self._safe(smi.amdsmi_get_gpu_asic_info, h) or {}).get("asic_serial"))
                for h in handles
            ]
        except Exception as exc:
            return SourceStatus(NAME, False, f"amdsmi cannot list GPUs: {exc}")
        if not handles:
            return SourceStatus(NAME, False, "amdsmi lists no AMD GPU", fix=fixes.amd_no_driver())
        order = visible_order(serials, self._environ)
        visible = [AmdGpu(hip, i, uuids[i], bdfs[i], serials[i]) for hip, i in enumerate(order)]
        if self._gpu_indices is not None:
            wanted = set(self._gpu_indices)
            missing = sorted(wanted - {g.hip_index for g in visible})
            if missing:
                return SourceStatus(
                    NAME, False, f"no visible GPU with index {missing} ({len(visible)} visible)"
                )
            visible = [g for g in visible if g.hip_index in wanted]
        if not visible:
            return SourceStatus(
                NAME,
                False,
                f"no visible GPU ({len(handles)} present, the *_VISIBLE_DEVICES variables hide all)",
            )
        for gpu in visible:
            handle = handles[gpu.amdsmi_index]
            self._visible_handles[gpu.device] = handle
            key = self._pick_power_key(handle)
            counter = self._counter(handle)
            # 0 W is no reading (an MI250's second die, a misreporting board); nor is, with no power
            # field, an accumulator at 0: it counts from the driver's load
            if (key is not None and self._power_w(handle, key) == 0.0) or (
                key is None and counter is not None and counter[0] == 0
            ):
                self._zero.append(gpu)
                continue
            self._gpus.append(gpu)
            self._handles.append(handle)
            self._power_key.append(key)
            self._has_counter.append(counter is not None)
        zero = ", ".join(g.device for g in self._zero)
        if not self._gpus:
            return SourceStatus(NAME, False, f"{zero}: read 0 W, which is no measurement")
        unusable = [
            g.device
            for g, c, k in zip(self._gpus, self._has_counter, self._power_key, strict=True)
            if not c and k is None
        ]
        if unusable:
            return SourceStatus(
                NAME, False, f"{', '.join(unusable)}: neither energy counter nor power readable"
            )
        caps = [self._cap_w(h) for h in self._handles]
        # twice the cap: boards overshoot it for milliseconds, never for a counter period
        self.max_power_w = 2 * max(c for c in caps if c) if all(caps) else DEFAULT_MAX_POWER_W
        scales = [self._scale_j(h) for h in self._handles]
        self.resolution_j = max((s for s in scales if s), default=None)
        self._counters = [Unwrapper(s or 0.0, None, self.max_power_w) for s in scales]
        n = sum(self._has_counter)
        how = (
            "energy counter"
            if n == len(self._gpus)
            else f"energy counter on {n}, power integrated on {len(self._gpus) - n}"
        )
        field = next((k for k in self._power_key if k), "none")
        reason = f"{len(self._gpus)} AMD GPU{'s' if len(self._gpus) > 1 else ''}, {how}, power via {field}"
        if zero:
            reason += (
                f"; {zero} read 0 W and are left out (an MI250's second die reports its package on the first)"
            )
        return SourceStatus(
            NAME, True, reason, components=(Component.GPU,), devices=tuple(g.device for g in self._gpus)
        )

    def _counter(self, handle: Any) -> tuple[int, float] | None:
        """``(raw count, microjoules per count)``, or ``None`` where the GPU has no accumulator."""
        try:
            count = self._lib().amdsmi_get_energy_count(handle)
        except Exception:
            return None
        raw = count.get("energy_accumulator", count.get("power"))
        resolution = _number(count.get("counter_resolution"))
        if _number(raw) is None or not resolution:
            return None
        return int(raw), resolution

    def _scale_j(self, handle: Any) -> float | None:
        counter = self._counter(handle)
        return None if counter is None else counter[1] * 1e-6

    def _pick_power_key(self, handle: Any) -> str | None:
        info = self._safe(self._lib().amdsmi_get_power_info, handle) or {}
        return next((k for k in POWER_KEYS if _number(info.get(k)) is not None), None)

    def _power_w(self, handle: Any, key: str) -> float | None:
        return _number(self._lib().amdsmi_get_power_info(handle).get(key))

    def _cap_w(self, handle: Any) -> float | None:
        cap = _number((self._safe(self._lib().amdsmi_get_power_cap_info, handle) or {}).get("power_cap"))
        return cap / 1e6 if cap else None  # microwatts

    # -- reading -------------------------------------------------------------------------------------

    def read(self) -> list[Reading]:
        out: list[Reading] = []
        for i, gpu in enumerate(self._gpus):
            if not self._has_counter[i]:
                continue  # integrated from read_power()'s timeline, and flagged so
            before = self._clock()
            counter = self._counter(self._handles[i])
            t = (before + self._clock()) / 2
            if counter is None:
                continue
            energy_j, reset = self._counters[i].update(counter[0], t, self.counter_period_s or 0.0)
            out.append(Reading(t, NAME, Component.GPU, gpu.device, energy_j=energy_j, counter_reset=reset))
        return out

    def read_power(self) -> list[Reading]:
        out: list[Reading] = []
        for gpu, handle, key in zip(self._gpus, self._handles, self._power_key, strict=True):
            if key is None:
                continue
            power = self._power_w(handle, key)
            if power is not None:
                out.append(Reading(self._clock(), NAME, Component.GPU, gpu.device, power_w=power))
        return out

    def utilization_pct(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for gpu, handle in zip(self._gpus, self._handles, strict=True):
            pct = _number((self._safe(self._lib().amdsmi_get_gpu_activity, handle) or {}).get("gfx_activity"))
            if pct is not None:
                out[gpu.device] = pct
        return out

    def memory_mib(self) -> dict[str, tuple[int, int]]:
        smi = self._lib()
        out: dict[str, tuple[int, int]] = {}
        for gpu, handle in zip(self._gpus, self._handles, strict=True):
            used = self._safe(smi.amdsmi_get_gpu_memory_usage, handle, smi.AmdSmiMemoryType.VRAM)
            total = self._safe(smi.amdsmi_get_gpu_memory_total, handle, smi.AmdSmiMemoryType.VRAM)
            if isinstance(used, int) and isinstance(total, int):
                out[gpu.device] = (used >> 20, total >> 20)
        return out

    def device_info(self) -> list[DeviceInfo]:
        smi = self._lib()
        memory = self.memory_mib()
        out: list[DeviceInfo] = []
        measured = {g.device: i for i, g in enumerate(self._gpus)}
        for gpu in sorted([*self._gpus, *self._zero], key=lambda g: g.hip_index):
            i = measured.get(gpu.device)
            handle = self._visible_handles[gpu.device]
            asic = self._safe(smi.amdsmi_get_gpu_asic_info, handle) or {}
            driver = self._safe(smi.amdsmi_get_gpu_driver_info, handle) or {}
            scale = self._counters[i].scale_j if i is not None and self._counters else None
            out.append(
                DeviceInfo(
                    source=NAME,
                    component=Component.GPU,
                    device=gpu.device,
                    name=str(asic.get("market_name") or "AMD GPU"),
                    attributes={
                        "uuid": gpu.uuid,
                        "pci_bdf": gpu.bdf,
                        "serial_id": gpu.serial_id,
                        "amdsmi_index": gpu.amdsmi_index,
                        "driver": driver.get("driver_version"),
                        "power_cap_w": self._cap_w(handle),
                        "memory_used_mib": memory[gpu.device][0] if gpu.device in memory else None,
                        "energy_counter": bool(self._has_counter[i]) if i is not None else False,
                        "counter_resolution_uj": scale * 1e6 if scale else None,
                        "power_field": self._power_key[i] if i is not None else None,
                        # a die that read 0 W is not measured (never 0 J): on an MI250 its package's
                        # power is reported by the other die
                        "reads_zero": i is None,
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
                self._lib().amdsmi_shut_down()
