"""Telling a device's out-of-memory error from other engine errors, as torch and CUDA word them."""

from __future__ import annotations

import torch

from joulebench.errors import is_out_of_memory


def test_torch_out_of_memory_error_is_out_of_memory() -> None:
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.31 GiB."))


def test_a_cuda_runtime_error_that_says_out_of_memory_is_out_of_memory() -> None:
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory\nCUDA kernel errors might be ..."))


def test_an_error_caused_by_out_of_memory_is_out_of_memory() -> None:
    try:
        try:
            raise torch.OutOfMemoryError("CUDA out of memory.")
        except torch.OutOfMemoryError as inner:
            raise RuntimeError("generate failed") from inner
    except RuntimeError as outer:
        assert is_out_of_memory(outer)


def test_other_errors_are_not() -> None:
    assert not is_out_of_memory(RuntimeError("Expected all tensors to be on the same device"))
    assert not is_out_of_memory(ValueError("memory_fraction must be in (0, 1]"))
