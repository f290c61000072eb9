"""The energy floor per output token of a decode: the least energy a card could spend on the bytes and
FLOPs every decode step must do (docs/roofline.md).

A step that moves ``B`` bytes and does ``F`` FLOPs takes at least ``max(B / bandwidth, F / rate)`` seconds,
during which the card draws at least its idle power, and costs at least ``B`` times the energy per byte and
``F`` times the energy per FLOP above idle, each measured by `joulebench roofline` on that card. The floor is
the sum over a request's decode steps (the context growing by one token a step) over the tokens they make.
"""

from __future__ import annotations

from dataclasses import dataclass

from joulebench.roofline.shape import DecoderShape


@dataclass(frozen=True)
class CardLimits:
    """What `joulebench roofline` measured on one card."""

    device_name: str
    bytes_per_s: float  # streaming copy, read + write
    flops_per_s: float  # dense GEMM in the engine's dtype
    idle_power_w: float
    j_per_byte: float  # above idle
    j_per_flop: float  # above idle
    j_per_byte_bound: float | None = None
    j_per_flop_bound: float | None = None


@dataclass(frozen=True)
class Floor:
    j_per_token: float
    bound_j_per_token: float | None  # from the bounds of the measured per-byte and per-FLOP energies
    memory_bound_steps: float  # the share of steps whose bytes take longer than their FLOPs


def decode_floor(
    shape: DecoderShape, limits: CardLimits, batch: int, prompt_tokens: float, output_tokens: int
) -> Floor | None:
    """The floor per output token of ``batch`` requests of ``prompt_tokens`` (mean) decoding
    ``output_tokens`` each; ``None`` when there is no decode step (one output token)."""
    steps = output_tokens - 1  # the first token comes out of the prefill
    if steps < 1 or batch < 1:
        return None
    energy = bound = 0.0
    memory_bound = 0
    for k in range(steps):
        context = round(prompt_tokens) + 1 + k
        moved, done = shape.step_bytes(batch, context), shape.step_flops(batch, context)
        memory_s, compute_s = moved / limits.bytes_per_s, done / limits.flops_per_s
        memory_bound += memory_s >= compute_s
        energy += limits.idle_power_w * max(memory_s, compute_s)
        energy += moved * limits.j_per_byte + done * limits.j_per_flop
        bound += moved * (limits.j_per_byte_bound or 0.0) + done * (limits.j_per_flop_bound or 0.0)
    known = limits.j_per_byte_bound is not None and limits.j_per_flop_bound is not None
    tokens = steps * batch
    return Floor(energy / tokens, bound / tokens if known else None, memory_bound / steps)
