from __future__ import annotations

import os
from pathlib import Path

import pynvml
import pytest

from joulebench.measurement.nvml_fake import FakeGpu, FakeNvml
from joulebench.runner.cache_state import compile_cache_dirs
from joulebench.sweep.gpus import CUDA_VISIBLE_DEVICES, own_compile_caches, pinned, visible_gpu_ids


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ("0,1,2", ["0", "1", "2"]),
        ("2, 3", ["2", "3"]),
        ("", []),
        ("1,-1,2", ["1"]),  # CUDA stops at the first invalid entry
        ("GPU-8f3c", ["GPU-8f3c"]),
    ],
)
def test_visible_gpus_follow_cuda_visible_devices(
    monkeypatch: pytest.MonkeyPatch, env: str, expected: list[str]
) -> None:
    monkeypatch.setenv(CUDA_VISIBLE_DEVICES, env)
    assert visible_gpu_ids() == expected


def test_pinned_takes_the_first_gpus_and_restores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CUDA_VISIBLE_DEVICES, "2,3,5")
    with pinned(2) as ids:
        assert ids == ["2", "3"] and os.environ[CUDA_VISIBLE_DEVICES] == "2,3"
    assert os.environ[CUDA_VISIBLE_DEVICES] == "2,3,5"
    with pinned(0) as ids:  # a CPU cell sees no GPU
        assert ids == [] and os.environ[CUDA_VISIBLE_DEVICES] == ""
    assert os.environ[CUDA_VISIBLE_DEVICES] == "2,3,5"


def test_pinned_unsets_what_it_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CUDA_VISIBLE_DEVICES, raising=False)
    fake = FakeNvml([FakeGpu(), FakeGpu(), FakeGpu(), FakeGpu()])  # the NVML seam: 4 GPUs, no variable
    with pinned(1, nvml=fake) as ids:
        assert ids == ["0"] and os.environ[CUDA_VISIBLE_DEVICES] == "0"
    assert CUDA_VISIBLE_DEVICES not in os.environ


def test_no_driver_means_no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CUDA_VISIBLE_DEVICES, raising=False)
    no_driver = FakeNvml([FakeGpu()], init_error=pynvml.NVML_ERROR_DRIVER_NOT_LOADED)
    assert visible_gpu_ids(no_driver) == []


def test_a_pinned_cell_measures_only_its_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """The runner's NVML source reads CUDA_VISIBLE_DEVICES when it is made, inside the cell's pin."""
    from joulebench.measurement.nvml import NvmlSource

    fake = FakeNvml([FakeGpu(power_w=100.0), FakeGpu(power_w=200.0), FakeGpu(power_w=300.0)])
    monkeypatch.delenv(CUDA_VISIBLE_DEVICES, raising=False)
    with pinned(2, nvml=fake):
        two = NvmlSource(fake).probe()
    assert two.available and two.devices == ("gpu0", "gpu1")
    with pinned(0, nvml=fake):
        none = NvmlSource(fake).probe()
    assert not none.available and "hides all" in none.reason
    assert NvmlSource(fake).probe().devices == ("gpu0", "gpu1", "gpu2")  # unpinned again: every GPU


def test_a_gpu_set_gets_compile_caches_of_its_own(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Cells side by side on one host must not warm each other's caches: each GPU set has its own folders,
    for every variable the engine compiles through, and the environment is put back afterwards."""
    monkeypatch.setenv("JOULEBENCH_CACHE", str(tmp_path))
    monkeypatch.setenv("TRITON_CACHE_DIR", "/users/own/triton")
    monkeypatch.delenv("VLLM_CACHE_ROOT", raising=False)
    with own_compile_caches("vllm", ["2"]) as two, own_compile_caches("vllm", ["3"]) as three:
        pass
    assert set(two) == {"VLLM_CACHE_ROOT", "TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR"}
    assert all(Path(v).parent == tmp_path / "gpu-sets" / "gpu2" for v in two.values())
    assert set(two.values()).isdisjoint(three.values())
    assert os.environ["TRITON_CACHE_DIR"] == "/users/own/triton" and "VLLM_CACHE_ROOT" not in os.environ
    with own_compile_caches("vllm", ["0", "1"]) as pair:
        # what the engine's cold/warm probe sees inside the cell is the GPU set's folder
        assert compile_cache_dirs("vllm") == [Path(pair["VLLM_CACHE_ROOT"]) / "torch_compile_cache"]
    assert Path(pair["VLLM_CACHE_ROOT"]).parent.name == "gpu0-1"
    with own_compile_caches("vllm", []) as cpu:  # a CPU cell keeps the caches it is given
        assert cpu == {} and os.environ["TRITON_CACHE_DIR"] == "/users/own/triton"


def test_an_amd_host_is_planned_and_pinned_as_rocm_sees_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """No NVIDIA driver, four AMD GPUs of which ROCR_VISIBLE_DEVICES leaves two: the sweep plans for two,
    pins a one-GPU cell through CUDA_VISIBLE_DEVICES (HIP reads it where HIP_VISIBLE_DEVICES is unset), and
    the cell's amdsmi source then measures the GPU it was given, the fourth."""
    from joulebench.measurement.amdsmi import AmdSmiSource
    from joulebench.measurement.amdsmi_fake import FakeAmdGpu, FakeAmdSmi

    for var in (CUDA_VISIBLE_DEVICES, "HIP_VISIBLE_DEVICES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ROCR_VISIBLE_DEVICES", "3,1")
    no_nvidia = FakeNvml([FakeGpu()], init_error=pynvml.NVML_ERROR_DRIVER_NOT_LOADED)
    gpus = [FakeAmdGpu(asic_serial=f"0x{k:016x}", uuid=f"uuid-{k}") for k in range(4)]
    assert visible_gpu_ids(no_nvidia, FakeAmdSmi(gpus)) == ["0", "1"]
    with pinned(1, no_nvidia, FakeAmdSmi(gpus)) as ids:
        assert ids == ["0"] and os.environ[CUDA_VISIBLE_DEVICES] == "0"
        source = AmdSmiSource(FakeAmdSmi(gpus), environ=dict(os.environ))
        assert source.probe().available
        (info,) = source.device_info()
        assert info.attributes["uuid"] == "uuid-3"  # ROCR's first, then CUDA's first of those
    assert CUDA_VISIBLE_DEVICES not in os.environ


def test_hip_visible_devices_pins_an_amd_host_where_it_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ray sets HIP_VISIBLE_DEVICES for a task's AMD GPUs; ROCm reads it before CUDA_VISIBLE_DEVICES, so
    pinning narrows it. On an NVIDIA host the same variable means nothing: CUDA_VISIBLE_DEVICES pins."""
    monkeypatch.delenv(CUDA_VISIBLE_DEVICES, raising=False)
    monkeypatch.setenv("HIP_VISIBLE_DEVICES", "4,5")
    no_nvidia = FakeNvml([FakeGpu()], init_error=pynvml.NVML_ERROR_DRIVER_NOT_LOADED)
    with pinned(1, no_nvidia) as ids:
        assert ids == ["4"] and os.environ["HIP_VISIBLE_DEVICES"] == "4"
        assert CUDA_VISIBLE_DEVICES not in os.environ
    assert os.environ["HIP_VISIBLE_DEVICES"] == "4,5"
    nvidia = FakeNvml([FakeGpu(), FakeGpu()])
    with pinned(1, nvidia) as ids:
        assert ids == ["0"] and os.environ[CUDA_VISIBLE_DEVICES] == "0"
    assert os.environ["HIP_VISIBLE_DEVICES"] == "4,5"
