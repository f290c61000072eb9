"""What the runner hands an engine: requests, sampling settings, and what the engine hands back."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Literal

LengthMode = Literal["fixed", "natural"]

DEFAULT_TEMPERATURE = 0.8
DEFAULT_TOP_P = 0.95


@dataclass(frozen=True)
class SamplingSpec:
    """Sampling settings common to every engine (the paper: temperature 0.8, top-p 0.95)."""

    max_output_tokens: int
    temperature: float = DEFAULT_TEMPERATURE
    top_p: float = DEFAULT_TOP_P
    length_mode: LengthMode = "fixed"  # fixed: ignore EOS, always max_output_tokens; natural: stop at EOS
    seed: int | None = 0

    @property
    def ignore_eos(self) -> bool:
        return self.length_mode == "fixed"


@dataclass(frozen=True)
class Request:
    """One prompt. ``prompt_tokens`` is counted with the model's own tokenizer when known."""

    index: int
    prompt: str
    prompt_tokens: int | None = None
    source_id: str | None = None  # dataset record index or id, for tracing a prompt back


@dataclass(frozen=True)
class Response:
    """One finished request as the engine reports it.

    ``output_tokens`` is the number of token IDs the engine generated (never estimated from words).
    Times are ``time.monotonic()`` seconds; ``None`` where the engine does not expose them.
    """

    index: int
    output_tokens: int
    prompt_tokens: int | None = None
    finish_reason: str | None = None  # "length", "stop", "error"
    first_token_s: float | None = None
    finish_s: float | None = None
    submit_s: float | None = None
    token_times_s: tuple[float, ...] = ()  # arrival time of every output token, when streamed
    error: str | None = None
    text: str | None = field(default=None, compare=False, repr=False)

    @property
    def ttft_s(self) -> float | None:
        if self.first_token_s is None or self.submit_s is None:
            return None
        return self.first_token_s - self.submit_s

    @property
    def tpot_s(self) -> float | None:
        """Time per output token after the first (the decode rate of this request)."""
        if self.first_token_s is None or self.finish_s is None or self.output_tokens < 2:
            return None
        return (self.finish_s - self.first_token_s) / (self.output_tokens - 1)

    @property
    def itl_s(self) -> tuple[float, ...]:
        """Inter-token latencies, from streamed token arrival times."""
        t = self.token_times_s
        return tuple(b - a for a, b in itertools.pairwise(t))
