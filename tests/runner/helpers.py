"""What the runner's end-to-end tests share: a small CPU run of the tiny real Llama, a dead-process check."""

from __future__ import annotations

import os
from pathlib import Path

from joulebench.runner.config import RunConfig


def cpu_config(model: Path, **over: object) -> RunConfig:
    """Two requests of 8 tokens on CPU, no setup trials, no idle baseline; ``over`` changes any setting."""
    base: dict[str, object] = dict(
        engine="transformers",
        model=str(model),
        workload="smoke",
        batch_size=2,
        output_tokens=8,
        length_mode="fixed",
        device="cpu",
        setup_repeats=0,
        idle_s=0.0,
        trial_timeout_s=300.0,
    )
    base.update(over)
    return RunConfig(**base)  # type: ignore[arg-type]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False
