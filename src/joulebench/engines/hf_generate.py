"""Batched generation through a Hugging Face model's ``generate``, shared by the transformers and DeepSpeed
adapters (DeepSpeed wraps the same model and generates through it).

Per-request times come from a stopping-criteria hook that ``generate`` calls once per step, right after the
step's tokens are appended: every sequence of the batch shares the step times, a sequence's first token is
step 0 and its finish is the step of its last counted token. Token counts come from the generated IDs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from joulebench.workloads.spec import Request, Response, SamplingSpec


class StepClock:
    """A stopping criterion that never stops: it records ``time.monotonic()`` at each generation step.

    On CUDA it waits for the step's kernels first, so a step's time is when its token exists, not when it
    was queued (``generate`` synchronises every step anyway to test for finished sequences).
    """

    def __init__(self) -> None:
        self.times_s: list[float] = []

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        if input_ids.is_cuda:
            torch.cuda.synchronize(input_ids.device)
        self.times_s.append(time.monotonic())
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


@dataclass(frozen=True)
class CountedOutput:
    """One sequence's generated IDs cut where the request ended."""

    output_tokens: int
    finish_reason: str  # "stop" (an end-of-sequence token) or "length"


def count_output(generated_ids: Sequence[int], eos_ids: frozenset[int], stop_at_eos: bool) -> CountedOutput:
    """Count a sequence's generated tokens: up to and including its first EOS when it stops there (natural
    mode), so the padding ``generate`` appends after a finished sequence is never counted."""
    if stop_at_eos:
        for i, token in enumerate(generated_ids):
            if token in eos_ids:
                return CountedOutput(i + 1, "stop")
    return CountedOutput(len(generated_ids), "length")


def eos_token_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    """The model's end-of-sequence IDs (Llama 3 instruct models have several)."""
    eos = getattr(model.generation_config, "eos_token_id", None)
    if eos is None:
        eos = tokenizer.eos_token_id
    if eos is None:
        return frozenset()
    return frozenset([eos] if isinstance(eos, int) else eos)


def prepare_tokenizer(tokenizer: Any) -> Any:
    """Left padding, so that every sequence of a batch generates from the same position."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def generation_kwargs(sampling: SamplingSpec, static_cache: bool) -> dict[str, Any]:
    """``generate`` arguments for a :class:`SamplingSpec`.

    Fixed mode sets ``min_new_tokens = max_new_tokens``: the EOS logit is suppressed until the last step,
    so every sequence has exactly ``max_output_tokens`` tokens.

    Sampling is temperature and top-p only, as in the other engines: ``top_k=0`` turns off the top-k 50
    that ``generate`` otherwise adds by default whenever it samples.
    """
    n = sampling.max_output_tokens
    kwargs: dict[str, Any] = {"max_new_tokens": n}
    if sampling.temperature > 0:
        kwargs.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p, top_k=0)
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None)
    if sampling.ignore_eos:
        kwargs["min_new_tokens"] = n
    if static_cache:
        kwargs["cache_implementation"] = "static"
    return kwargs


def generate_batch(
    model: Any,
    tokenizer: Any,
    requests: Sequence[Request],
    sampling: SamplingSpec,
    *,
    device: Any,
    static_cache: bool = False,
    generate: Any = None,
) -> list[Response]:
    """Run ``requests`` as one left-padded batch and return one :class:`Response` per request, in order.

    ``generate`` defaults to ``model.generate``; DeepSpeed passes its engine's.
    """
    import torch

    if not requests:
        return []
    batch = tokenizer([r.prompt for r in requests], return_tensors="pt", padding=True)
    batch = {k: v.to(device) for k, v in batch.items()}
    prompt_lens = batch["attention_mask"].sum(dim=1).tolist()
    width = batch["input_ids"].shape[1]
    eos_ids = eos_token_ids(model, tokenizer)
    if sampling.seed is not None:
        torch.manual_seed(sampling.seed)

    clock = StepClock()
    run = generate or model.generate
    submit_s = time.monotonic()
    with torch.inference_mode():
        sequences = run(
            **batch,
            **generation_kwargs(sampling, static_cache),
            pad_token_id=tokenizer.pad_token_id,
            stopping_criteria=[clock],
        )
    generated = sequences[:, width:].tolist()
    responses = []
    for request, ids, prompt_len in zip(requests, generated, prompt_lens, strict=True):
        counted = count_output(ids, eos_ids, stop_at_eos=not sampling.ignore_eos)
        n = counted.output_tokens
        times = clock.times_s
        responses.append(
            Response(
                index=request.index,
                output_tokens=n,
                prompt_tokens=int(prompt_len),
                finish_reason=counted.finish_reason,
                submit_s=submit_s,
                first_token_s=times[0] if n and times else None,
                finish_s=times[n - 1] if n and len(times) >= n else None,
                token_times_s=tuple(times[:n]),
                text=tokenizer.decode(ids[:n], skip_special_tokens=True),
            )
        )
    return responses
