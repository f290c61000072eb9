"""The microbenchmarks on a real torch device (this machine's CPU): whole calls counted, the timed span
holding only finished work."""

from __future__ import annotations

import time

import pytest

from joulebench.errors import UsageError

pytest.importorskip("torch")


def test_the_copy_counts_read_and_write_of_every_call() -> None:
    from joulebench.roofline.kernels import copy_kernel

    kernel = copy_kernel("cpu", 4 * 2**20)
    before = time.monotonic()
    work = kernel.run(0.2)
    after = time.monotonic()
    assert work.kernel == "copy" and work.unit == "byte"
    calls = work.units / (2 * 4 * 2**20)
    assert calls == int(calls) and calls >= 2  # the untimed call is not counted
    assert before < work.begin_s < work.end_s <= after and work.end_s - work.begin_s >= 0.2


def test_the_gemm_counts_two_flops_per_multiply_add() -> None:
    from joulebench.roofline.kernels import gemm_kernel

    work = gemm_kernel("cpu", 64, "float32").run(0.1)
    assert work.unit == "flop" and work.dtype == "float32"
    calls = work.units / (2 * 64**3)
    assert calls == int(calls) and calls >= 1
    with pytest.raises(UsageError, match="not a torch dtype"):
        gemm_kernel("cpu", 8, "bfloat17")
