from __future__ import annotations

import os

import pytest

from joulebench.sweep.gpus import CUDA_VISIBLE_DEVICES, pinned, visible_gpu_ids


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
    monkeypatch.setattr("joulebench.sweep.gpus._nvml_count", lambda: 4)  # the NVML seam: 4 GPUs present
    with pinned(1) as ids:
        assert ids == ["0"] and os.environ[CUDA_VISIBLE_DEVICES] == "0"
    assert CUDA_VISIBLE_DEVICES not in os.environ
