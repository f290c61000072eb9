from __future__ import annotations

from pathlib import Path

from joulebench.engines.hf_generate import count_output, generation_kwargs
from joulebench.workloads.spec import SamplingSpec

EOS = frozenset({2, 7})


def test_natural_mode_counts_up_to_and_including_the_first_eos() -> None:
    # generate pads a finished sequence with pad == eos: nothing after the first EOS counts
    counted = count_output([5, 9, 7, 2, 2, 2], EOS, stop_at_eos=True)
    assert (counted.output_tokens, counted.finish_reason) == (3, "stop")


def test_natural_mode_without_eos_counts_every_token() -> None:
    counted = count_output([5, 9, 11], EOS, stop_at_eos=True)
    assert (counted.output_tokens, counted.finish_reason) == (3, "length")


def test_fixed_mode_counts_every_generated_token_even_an_eos() -> None:
    counted = count_output([5, 2, 9, 7], EOS, stop_at_eos=False)
    assert (counted.output_tokens, counted.finish_reason) == (4, "length")


def test_fixed_mode_forbids_eos_until_the_last_token() -> None:
    kwargs = generation_kwargs(SamplingSpec(max_output_tokens=12, length_mode="fixed"), static_cache=False)
    assert kwargs["min_new_tokens"] == kwargs["max_new_tokens"] == 12
    assert kwargs["do_sample"] is True
    assert (kwargs["temperature"], kwargs["top_p"]) == (0.8, 0.95)
    assert "cache_implementation" not in kwargs


def test_natural_mode_greedy_and_static_cache() -> None:
    spec = SamplingSpec(max_output_tokens=5, temperature=0.0, length_mode="natural")
    kwargs = generation_kwargs(spec, static_cache=True)
    assert "min_new_tokens" not in kwargs
    assert kwargs["do_sample"] is False
    assert kwargs["cache_implementation"] == "static"


def test_sampling_is_top_p_only_without_the_default_top_k() -> None:
    # generate() adds top-k 50 when sampling unless told otherwise; vLLM and the others sample top-p only
    kwargs = generation_kwargs(SamplingSpec(max_output_tokens=4), static_cache=False)
    assert kwargs["top_k"] == 0


def test_generate_builds_no_top_k_warper(tiny_llama: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.generation.logits_process import TopKLogitsWarper

    model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32).eval()
    config, _ = model._prepare_generation_config(
        None, **generation_kwargs(SamplingSpec(max_output_tokens=4), static_cache=False)
    )
    processors = model._get_logits_processor(
        generation_config=config,
        input_ids_seq_length=1,
        encoder_input_ids=torch.ones(1, 1, dtype=torch.long),
        prefix_allowed_tokens_fn=None,
        logits_processor=None,
    )
    assert not any(isinstance(p, TopKLogitsWarper) for p in processors)
