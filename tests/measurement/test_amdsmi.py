"""The AMD (amdsmi) adapter against the amdsmi-seam fake, whose names and keys are checked here against the
real package's own sources: the accumulator's resolution, a counter that steps backwards, a die that reads
0 W, slow and fast updates, the visible-device variables."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from joulebench.measurement.accounting import compute_window
from joulebench.measurement.amdsmi import AmdSmiSource, visible_order
from joulebench.measurement.amdsmi_fake import (
    AmdSmiInitFlags,
    AmdSmiLibraryException,
    AmdSmiParameterException,
    FakeAmdGpu,
    FakeAmdSmi,
)
from joulebench.measurement.nvml_fake import ManualClock
from joulebench.measurement.records import Method
from joulebench.measurement.series import ReadingLog

SERIALS = ["GPU-5a17000000000000", "GPU-5a17000000000001", "GPU-5a17000000000002"]


def _drive(
    source: AmdSmiSource, clock: ManualClock, seconds: float, step_s: float = 0.02, counter_every: int = 5
) -> ReadingLog:
    """What the sampler does, on the fake's clock: power every ``step_s``, the counter every
    ``counter_every`` steps."""
    log = ReadingLog()
    for meta in source.source_metas():
        log.add_source(meta)
    t_end = clock() + seconds
    k = 0
    while clock() < t_end - 1e-9:
        if k % counter_every == 0:
            log.add(source.read())
        log.add(source.read_power())
        clock.advance(step_s)
        k += 1
    log.add(source.read())
    return log


def _window(log: ReadingLog, fake: FakeAmdSmi, a: float, b: float, device: str = "gpu0") -> object:
    t0 = fake.start_s
    return next(c for c in compute_window(log, "w", t0 + a, t0 + b).components if c.device == device)


@pytest.mark.parametrize(
    ("period_s", "step_s", "counter_every"),
    [
        (0.001, 0.02, 5),  # the counter updates 100 times between two reads
        (0.05, 0.02, 1),  # reads faster than it updates: most reads repeat the last value
        (0.25, 0.02, 1),  # a slow counter: it holds for 12 reads
    ],
)
def test_window_energy_is_the_accumulator_times_its_resolution(
    period_s: float, step_s: float, counter_every: int
) -> None:
    """250 W then 600 W: the window's energy is the model's, within the stated bound, whatever the update
    period; counts taken as joules or microjoules would be off by 15.3 x 10^6 or 15.3."""
    clock = ManualClock()
    gpu = FakeAmdGpu(power_w=[(0.0, 250.0), (1.3, 600.0)], power_key="current_socket_power")
    fake = FakeAmdSmi([gpu], clock=clock, counter_period_s=period_s)
    src = AmdSmiSource(fake, clock=clock, environ={})
    status = src.probe()
    assert status.available and status.devices == ("gpu0",), status.reason
    assert src.resolution_j == pytest.approx(15.3e-6)
    log = _drive(src, clock, 3.0, step_s, counter_every)
    row = _window(log, fake, 0.5, 2.5)
    expected = gpu.energy_between(0.5, 2.5)  # 200 + 720 = 920 J
    assert expected == pytest.approx(920.0)
    assert row.method is Method.COUNTER  # type: ignore[attr-defined]
    assert abs(row.energy_j - expected) <= row.uncertainty_j  # type: ignore[attr-defined]
    # the bound is of the order of one update period at the higher power, not more
    assert row.uncertainty_j <= 2 * 600.0 * (period_s + step_s * counter_every) + 1.0  # type: ignore[attr-defined]
    assert row.peak_power_w == pytest.approx(600.0)  # type: ignore[attr-defined]


def test_a_counter_that_steps_backwards_is_a_reset_never_negative_energy() -> None:
    """amdsmi issue 115: the accumulator fell on some ROCm releases. The fall is flagged; the window over
    it counts only what the counter gained (nothing is invented for the fall, no energy is negative)."""
    clock = ManualClock()
    gpu = FakeAmdGpu(power_w=300.0, backwards_at_s=1.0, backwards_counts=10_000_000)  # 153 J backwards
    fake = FakeAmdSmi([gpu], clock=clock, counter_period_s=0.01)
    src = AmdSmiSource(fake, clock=clock, environ={})
    assert src.probe().available
    log = _drive(src, clock, 2.0, 0.02, 1)
    row = _window(log, fake, 0.5, 1.5)
    assert "counter-reset" in row.flags  # type: ignore[attr-defined]
    assert 0.0 < row.energy_j <= gpu.energy_between(0.5, 1.5) + row.uncertainty_j  # type: ignore[attr-defined]
    clean = _window(log, fake, 1.2, 1.9)
    assert "counter-reset" not in clean.flags  # type: ignore[attr-defined]
    assert abs(clean.energy_j - 210.0) <= clean.uncertainty_j  # type: ignore[attr-defined]


def test_a_die_that_reads_zero_is_flagged_and_left_out_not_counted_as_zero() -> None:
    """An MI250 is two dies; the second reads 0 W (its package's power is on the first). It is named,
    recorded as reading zero, and has no energy rows, so no window says 0 J for it."""
    clock = ManualClock()
    dies = [
        FakeAmdGpu(power_w=420.0, market_name="AMD Instinct MI250X", power_key="average_socket_power"),
        FakeAmdGpu(reads_zero=True, market_name="AMD Instinct MI250X", power_key="average_socket_power"),
    ]
    fake = FakeAmdSmi(dies, clock=clock)
    src = AmdSmiSource(fake, clock=clock, environ={})
    status = src.probe()
    assert status.available and status.devices == ("gpu0",)
    assert "gpu1 read 0 W and are left out" in status.reason
    log = _drive(src, clock, 1.0)
    devices = {c.device for c in compute_window(log, "w", fake.start_s, fake.start_s + 1.0).components}
    assert devices - {"all"} == {"gpu0"}
    info = {d.device: d for d in src.device_info()}
    assert info["gpu1"].attributes["reads_zero"] is True and info["gpu0"].attributes["reads_zero"] is False
    assert info["gpu1"].name == "AMD Instinct MI250X"
    assert info["gpu0"].attributes["power_field"] == "average_socket_power"

    only_zero = AmdSmiSource(FakeAmdSmi([FakeAmdGpu(reads_zero=True)], clock=clock), clock=clock, environ={})
    assert not only_zero.probe().available and "read 0 W" in only_zero.probe().reason


def test_legacy_key_no_counter_and_no_driver() -> None:
    clock = ManualClock()
    legacy = FakeAmdSmi([FakeAmdGpu(power_w=200.0)], clock=clock, legacy_key=True, counter_period_s=0.01)
    src = AmdSmiSource(legacy, clock=clock, environ={})
    assert src.probe().available  # ROCm before 6.1 called the count "power"
    log = _drive(src, clock, 2.0, 0.02, 1)
    row = _window(log, legacy, 0.5, 1.5)
    assert abs(row.energy_j - 200.0) <= row.uncertainty_j  # type: ignore[attr-defined]

    no_counter = FakeAmdSmi([FakeAmdGpu(power_w=180.0, energy_counter=False)], clock=clock)
    src = AmdSmiSource(no_counter, clock=clock, environ={})
    status = src.probe()
    assert status.available and "power integrated on 1" in status.reason
    row = _window(_drive(src, clock, 2.0), no_counter, 0.5, 1.5)
    assert row.method is Method.INTEGRATED and "integrated-no-counter" in row.flags  # type: ignore[attr-defined]
    assert row.energy_j == pytest.approx(180.0, rel=0.03)  # type: ignore[attr-defined]

    gone = AmdSmiSource(FakeAmdSmi([FakeAmdGpu()], driver_loaded=False), environ={})
    status = gone.probe()
    assert not status.available and "no AMD GPU driver" in status.reason and status.fix is not None


def test_visible_devices_follow_rocm_order_of_selection() -> None:
    # ROCR_VISIBLE_DEVICES selects from every GPU, then HIP_VISIBLE_DEVICES from those
    assert visible_order(SERIALS, {}) == [0, 1, 2]
    assert visible_order(SERIALS, {"ROCR_VISIBLE_DEVICES": "2,0"}) == [2, 0]
    assert visible_order(SERIALS, {"ROCR_VISIBLE_DEVICES": "2,0", "HIP_VISIBLE_DEVICES": "1"}) == [0]
    assert visible_order(SERIALS, {"CUDA_VISIBLE_DEVICES": "1"}) == [1]  # HIP reads it too
    assert visible_order(SERIALS, {"HIP_VISIBLE_DEVICES": "2", "CUDA_VISIBLE_DEVICES": "1"}) == [2]
    assert visible_order(SERIALS, {"ROCR_VISIBLE_DEVICES": "GPU-5a17000000000001"}) == [1]
    assert visible_order(SERIALS, {"HIP_VISIBLE_DEVICES": ""}) == []

    clock = ManualClock()
    fake = FakeAmdSmi([FakeAmdGpu(power_w=100.0 + 10 * i) for i in range(3)], clock=clock)
    src = AmdSmiSource(fake, clock=clock, environ={"ROCR_VISIBLE_DEVICES": "2,1"})
    assert src.probe().devices == ("gpu0", "gpu1")
    info = src.device_info()
    assert [d.attributes["amdsmi_index"] for d in info] == [2, 1]
    assert [d.attributes["serial_id"] for d in info] == [SERIALS[2], SERIALS[1]]
    assert {r.device: r.power_w for r in src.read_power()} == {"gpu0": 120.0, "gpu1": 110.0}
    assert info[0].attributes["power_cap_w"] == pytest.approx(750.0)
    assert src.max_power_w == pytest.approx(1500.0)
    hidden = AmdSmiSource(fake, clock=clock, environ={"HIP_VISIBLE_DEVICES": ""})
    assert not hidden.probe().available


def test_the_fake_refuses_what_amdsmi_refuses() -> None:
    fake = FakeAmdSmi([FakeAmdGpu()])
    with pytest.raises(AmdSmiLibraryException) as before_init:
        fake.amdsmi_get_processor_handles()
    assert before_init.value.get_error_code() == 32  # AMDSMI_STATUS_NOT_INIT
    with pytest.raises(AmdSmiParameterException):
        fake.amdsmi_init(2)  # a plain int: amdsmi wants its enum
    fake.amdsmi_init(AmdSmiInitFlags.INIT_AMD_GPUS)
    with pytest.raises(AmdSmiParameterException):
        fake.amdsmi_get_energy_count("card0")


# -- the fake against the real package ----------------------------------------------------------------

#: per amdsmi function the adapter calls: its parameters and the keys it answers with
CALLED = {
    "amdsmi_init": (["flag"], []),
    "amdsmi_shut_down": ([], []),
    "amdsmi_get_processor_handles": ([], []),
    "amdsmi_get_gpu_device_uuid": (["processor_handle"], []),
    "amdsmi_get_gpu_device_bdf": (["processor_handle"], []),
    "amdsmi_get_gpu_asic_info": (["processor_handle"], ["market_name", "asic_serial"]),
    "amdsmi_get_gpu_driver_info": (["processor_handle"], ["driver_version"]),
    "amdsmi_get_energy_count": (
        ["processor_handle"],
        ["energy_accumulator", "counter_resolution", "timestamp"],
    ),
    "amdsmi_get_power_info": (
        ["processor_handle"],
        ["current_socket_power", "average_socket_power", "socket_power"],
    ),
    "amdsmi_get_power_cap_info": (["processor_handle"], ["power_cap"]),
    "amdsmi_get_gpu_activity": (["processor_handle"], ["gfx_activity"]),
    "amdsmi_get_gpu_memory_usage": (["processor_handle", "mem_type"], []),
    "amdsmi_get_gpu_memory_total": (["processor_handle", "mem_type"], []),
}


@pytest.fixture(scope="module")
def real_amdsmi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder holding the real ``amdsmi`` package: installed, or unpacked from the wheel that
    ``JOULEBENCH_AMDSMI_WHEEL`` names (CI keeps it uninstalled: without ROCm an installed amdsmi breaks
    ``import ray``)."""
    wheel = os.environ.get("JOULEBENCH_AMDSMI_WHEEL")
    if wheel and Path(wheel).is_file():
        folder = tmp_path_factory.mktemp("amdsmi-wheel")
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(folder)
        return folder
    spec = importlib.util.find_spec("amdsmi")  # finds the package without importing it (no ROCm here)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("amdsmi is neither installed nor named by JOULEBENCH_AMDSMI_WHEEL; the fake is unchecked")
    return Path(next(iter(spec.submodule_search_locations))).parent


def test_the_fake_has_the_real_packages_names_parameters_and_keys(real_amdsmi: Path) -> None:
    source = (real_amdsmi / "amdsmi" / "amdsmi_interface.py").read_text()
    functions = {node.name: node for node in ast.parse(source).body if isinstance(node, ast.FunctionDef)}
    for name, (params, keys) in CALLED.items():
        assert name in functions, f"amdsmi has no {name}"
        real = functions[name]
        assert [a.arg for a in real.args.args] == params, name
        body = ast.get_source_segment(source, real) or ""
        for key in keys:
            assert f'"{key}"' in body or f"'{key}'" in body, (name, key)
        fake_params = list(FakeAmdSmi.__dict__[name].__code__.co_varnames[1 : len(params) + 1])
        assert fake_params == params, (name, fake_params)


def test_the_real_package_without_rocm_is_one_clear_reason(real_amdsmi: Path) -> None:
    """Without ROCm's library, amdsmi prints to stdout and raises KeyError at import; joulebench says so in
    one line and prints nothing of it."""
    probe = (
        "import json\n"
        "from joulebench.measurement.amdsmi import AmdSmiSource\n"
        "s = AmdSmiSource().probe()\n"
        "print(json.dumps([s.available, s.reason]))\n"
    )
    path = os.pathsep.join([str(real_amdsmi), os.environ.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": path, "ROCM_PATH": str(real_amdsmi / "no-rocm")},
    )
    assert proc.returncode == 0, proc.stderr
    available, reason = json.loads(proc.stdout)
    assert (available, proc.stdout.count("\n")) == (False, 1), proc.stdout
    assert "cannot load ROCm's libamd_smi.so" in reason
