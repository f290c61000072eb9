"""Synthetic prompts: random token IDs of the model's vocabulary, decoded with its tokenizer, with prompt
lengths drawn from a fixed, uniform, normal or lognormal distribution.

Spec strings (lengths in tokens, special tokens not included):
``fixed:N``, ``uniform:LOW:HIGH`` (inclusive), ``normal:MEAN:STD``, ``lognormal:MEDIAN:SIGMA``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from joulebench.errors import DatasetError

DISTRIBUTIONS = {"fixed": 1, "uniform": 2, "normal": 2, "lognormal": 2}
MAX_LENGTH_TOKENS = 1_000_000


@dataclass(frozen=True)
class LengthDistribution:
    kind: str
    params: tuple[float, ...]

    def sample(self, rng: random.Random) -> int:
        p = self.params
        if self.kind == "fixed":
            value = p[0]
        elif self.kind == "uniform":
            value = rng.randint(int(p[0]), int(p[1]))
        elif self.kind == "normal":
            value = rng.gauss(p[0], p[1])
        else:
            value = p[0] * math.exp(p[1] * rng.gauss(0.0, 1.0))
        return max(1, min(MAX_LENGTH_TOKENS, round(value)))


def parse_distribution(spec: str) -> LengthDistribution:
    """``"uniform:64:256"`` -> a :class:`LengthDistribution`; bad specs raise :class:`DatasetError`."""
    kind, *raw = spec.split(":")
    if kind not in DISTRIBUTIONS:
        known = ", ".join(DISTRIBUTIONS)
        raise DatasetError(f"synthetic:{spec}: unknown length distribution {kind!r} ({known})")
    if len(raw) != DISTRIBUTIONS[kind]:
        count = DISTRIBUTIONS[kind]
        raise DatasetError(f"synthetic:{spec}: {kind} takes {count} number(s), e.g. {_example(kind)}")
    try:
        params = tuple(float(x) for x in raw)
    except ValueError as exc:
        raise DatasetError(f"synthetic:{spec}: not a number ({exc})") from exc
    if any(not math.isfinite(x) or x < 0 for x in params) or params[0] < 1:
        raise DatasetError(f"synthetic:{spec}: lengths must be >= 1 and parameters finite and non-negative")
    if kind == "uniform" and params[1] < params[0]:
        raise DatasetError(f"synthetic:{spec}: uniform needs LOW <= HIGH")
    if kind in ("fixed", "uniform") and any(x != int(x) for x in params):
        raise DatasetError(f"synthetic:{spec}: {kind} lengths must be whole numbers")
    return LengthDistribution(kind, params)


def _example(kind: str) -> str:
    return {"fixed": "fixed:128", "uniform": "uniform:64:256", "normal": "normal:128:32"}.get(
        kind, "lognormal:128:0.5"
    )


def _plain_token_ids(tokenizer: Any) -> list[int]:
    # Special and added tokens (BOS, reserved slots, chat markers) would change how a prompt is processed.
    excluded = set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", {}))
    return [i for i in range(len(tokenizer)) if i not in excluded]


def synthetic_prompts(tokenizer: Any, n: int, distribution: LengthDistribution, seed: int) -> list[str]:
    """``n`` prompts of random tokens; each re-encodes to its drawn length (or within a token of it where
    the tokenizer's merges make an exact length impossible)."""
    rng = random.Random(seed)
    vocab = _plain_token_ids(tokenizer)
    prompts: list[str] = []
    for _ in range(n):
        target = distribution.sample(rng)
        ids = [rng.choice(vocab) for _ in range(target)]
        text = tokenizer.decode(ids)
        # Decoded random tokens can merge or split when re-encoded: top up or trim, a few rounds.
        for _ in range(4):
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            if len(ids) == target:
                break
            ids = ids[:target] + [rng.choice(vocab) for _ in range(target - len(ids))]
            text = tokenizer.decode(ids)
        prompts.append(text)
    return prompts
