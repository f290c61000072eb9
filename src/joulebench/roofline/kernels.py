"""The two microbenchmarks of `joulebench roofline`: a streaming copy (memory bandwidth) and a dense GEMM
(arithmetic rate), each run for a set time on one torch device and counted exactly.

A copy of ``n`` bytes reads ``n`` and writes ``n``: it moves ``2 n`` bytes. A GEMM of two ``n x n`` matrices
does ``2 n^3`` FLOPs. Work is queued in growing bursts and the device synchronised after each, so the
timed span holds only finished work and the host's overhead is amortised over many calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from joulebench.errors import UsageError, require

MAX_BURST = 256


@dataclass(frozen=True)
class Work:
    """What one timed run of a kernel did, on the monotonic clock the monitor uses."""

    kernel: str  # copy | gemm
    unit: str  # byte | flop
    units: float
    begin_s: float
    end_s: float
    dtype: str

    @property
    def rate_per_s(self) -> float:
        return self.units / (self.end_s - self.begin_s)


class TorchKernel:
    """One kernel on one torch device (``cuda:0``, ``cpu``)."""

    def __init__(
        self, kernel: str, unit: str, dtype: str, device: str, call: Callable[[], Any], per_call: float
    ):
        self.kernel, self.unit, self.dtype = kernel, unit, dtype
        self._device = device
        self._call = call
        self._per_call = per_call
        self._torch = require("torch", extra="hf")

    def _sync(self) -> None:
        if self._device.startswith("cuda"):
            self._torch.cuda.synchronize(self._device)

    def run(self, seconds: float) -> Work:
        """Run for at least ``seconds`` (whole bursts), after one untimed call."""
        self._call()
        self._sync()
        calls, burst = 0, 1
        begin = time.monotonic()
        while True:
            for _ in range(burst):
                self._call()
            self._sync()
            calls += burst
            end = time.monotonic()
            if end - begin >= seconds:
                return Work(self.kernel, self.unit, calls * self._per_call, begin, end, self.dtype)
            burst = min(burst * 2, MAX_BURST)


def copy_kernel(device: str, size_bytes: int) -> TorchKernel:
    """``dst.copy_(src)`` of ``size_bytes`` (float32 elements, so no dtype conversion is timed)."""
    torch = require("torch", extra="hf")
    n = size_bytes // 4
    if n < 1:
        raise UsageError(f"--copy-mib gives {size_bytes} bytes: too few to copy")
    src = torch.ones(n, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    return TorchKernel("copy", "byte", "float32", device, lambda: dst.copy_(src), 2.0 * 4 * n)


def gemm_kernel(device: str, n: int, dtype: str) -> TorchKernel:
    """``out = a @ b`` of ``n x n`` matrices in ``dtype`` (bfloat16: what the engines run in)."""
    torch = require("torch", extra="hf")
    if not hasattr(torch, dtype) or not isinstance(getattr(torch, dtype), torch.dtype):
        raise UsageError(f"--gemm-dtype {dtype!r} is not a torch dtype")
    kind = getattr(torch, dtype)
    a = torch.randn(n, n, device=device).to(kind)
    b = torch.randn(n, n, device=device).to(kind)
    out = torch.empty(n, n, device=device, dtype=kind)
    return TorchKernel("gemm", "flop", dtype, device, lambda: torch.matmul(a, b, out=out), 2.0 * n**3)
