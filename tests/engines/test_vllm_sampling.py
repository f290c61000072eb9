"""The vLLM adapter's sampling settings (no engine start)."""

from __future__ import annotations

import pytest

from joulebench.engines.vllm import sampling_params_kwargs
from joulebench.workloads.spec import SamplingSpec


def test_fixed_mode_passes_temperature_top_p_and_ignore_eos() -> None:
    kwargs = sampling_params_kwargs(SamplingSpec(max_output_tokens=500, seed=3))
    assert kwargs == {"n": 1, "temperature": 0.8, "top_p": 0.95, "max_tokens": 500, "ignore_eos": True}


def test_natural_mode_stops_at_eos() -> None:
    kwargs = sampling_params_kwargs(SamplingSpec(max_output_tokens=32, length_mode="natural"))
    assert kwargs["ignore_eos"] is False and kwargs["max_tokens"] == 32


def test_no_per_request_seed() -> None:
    # A per-request seed moves vLLM's sampler off its batched top-p kernel: the run is seeded by LLM(seed=)
    sampling = SamplingSpec(max_output_tokens=8, seed=0)
    assert "seed" not in sampling_params_kwargs(sampling)
    vllm = pytest.importorskip("vllm")
    assert vllm.SamplingParams(**sampling_params_kwargs(sampling)).seed is None
