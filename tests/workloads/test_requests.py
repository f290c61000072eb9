"""load_requests: deterministic selection, token counts and chat rendering with a real tokenizer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from joulebench.errors import DatasetError, JoulebenchWarning
from joulebench.workloads.datasets import load_prompts, load_requests
from joulebench.workloads.stats import prompt_length_stats


def test_selection_is_seeded_and_without_replacement() -> None:
    a = load_requests("alpaca", 64, seed=3)
    assert a == load_requests("alpaca", 64, seed=3)
    assert [r.source_id for r in a] != [r.source_id for r in load_requests("alpaca", 64, seed=4)]
    assert [r.index for r in a] == list(range(64))
    assert len({r.source_id for r in a}) == 64
    prompts = dict(load_prompts("alpaca"))
    assert all(prompts[r.source_id] == r.prompt for r in a)
    assert all(r.prompt_tokens is None for r in a)


def test_batch_larger_than_dataset_samples_with_replacement(tmp_path: Path) -> None:
    path = tmp_path / "three.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"p{i}"}) + "\n" for i in range(3)))
    with pytest.warns(JoulebenchWarning, match="has 3 prompts, fewer than the 10 requested: sampling with"):
        requests = load_requests(str(path), 10, seed=0)
    assert len(requests) == 10
    assert {r.prompt for r in requests} <= {"p0", "p1", "p2"}
    assert len({r.prompt for r in requests}) < 10


def test_token_counts_use_the_models_tokenizer(llama3_tokenizer: Any) -> None:
    requests = load_requests("alpaca", 16, seed=0, tokenizer=llama3_tokenizer)
    for r in requests:
        ids = llama3_tokenizer(r.prompt)["input_ids"]
        assert ids[0] == 128000  # BOS counted, as the engine will see it
        assert r.prompt_tokens == len(ids)
    stats = prompt_length_stats(requests)
    assert stats["count"] == 16
    assert stats["min_tokens"] <= stats["p50_tokens"] <= stats["p90_tokens"] <= stats["max_tokens"]


def test_tokenizer_given_as_a_folder(llama3_tokenizer_dir: Path, llama3_tokenizer: Any) -> None:
    by_path = load_requests("alpaca", 4, seed=1, tokenizer=str(llama3_tokenizer_dir))
    assert by_path == load_requests("alpaca", 4, seed=1, tokenizer=llama3_tokenizer)


def test_chat_template_encodes_to_the_templates_token_ids(llama3_tokenizer: Any) -> None:
    plain = load_requests("alpaca", 4, seed=2)
    chat = load_requests("alpaca", 4, seed=2, tokenizer=llama3_tokenizer, chat_template=True)
    for p, c in zip(plain, chat, strict=True):
        expected = llama3_tokenizer.apply_chat_template(
            [{"role": "user", "content": p.prompt}], tokenize=True, add_generation_prompt=True
        )["input_ids"]
        # the text an engine encodes with default settings gives exactly one BOS and the template's IDs
        assert not c.prompt.startswith("<|begin_of_text|>")
        assert llama3_tokenizer(c.prompt)["input_ids"] == expected
        assert c.prompt_tokens == len(expected)
        assert c.prompt.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_chat_template_needs_a_tokenizer() -> None:
    with pytest.raises(DatasetError, match="chat template needs the model's tokenizer"):
        load_requests("alpaca", 2, seed=0, chat_template=True)


@pytest.mark.parametrize("spec", ["fixed:32", "uniform:8:40", "normal:24:6", "lognormal:20:0.4"])
def test_synthetic_prompts_have_the_drawn_lengths(spec: str, llama3_tokenizer: Any) -> None:
    requests = load_requests(f"synthetic:{spec}", 12, seed=0, tokenizer=llama3_tokenizer)
    lengths = [r.prompt_tokens - 1 for r in requests if r.prompt_tokens is not None]  # minus BOS
    assert len(lengths) == 12
    if spec == "fixed:32":
        assert lengths == [32] * 12
    if spec == "uniform:8:40":
        assert all(8 <= n <= 40 for n in lengths) and len(set(lengths)) > 3
    assert requests == load_requests(f"synthetic:{spec}", 12, seed=0, tokenizer=llama3_tokenizer)
    special = set(llama3_tokenizer.all_special_ids) | set(llama3_tokenizer.added_tokens_decoder)
    for r in requests:
        assert not special & set(llama3_tokenizer(r.prompt, add_special_tokens=False)["input_ids"])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("synthetic:zipf:3", "unknown length distribution 'zipf'"),
        ("synthetic:uniform:8", "uniform takes 2 number"),
        ("synthetic:uniform:40:8", "LOW <= HIGH"),
        ("synthetic:fixed:abc", "not a number"),
        ("synthetic:fixed:0", "lengths must be >= 1"),
        ("synthetic:fixed:2.5", "whole numbers"),
    ],
)
def test_bad_synthetic_specs(spec: str, message: str, llama3_tokenizer: Any) -> None:
    with pytest.raises(DatasetError, match=message):
        load_requests(spec, 2, seed=0, tokenizer=llama3_tokenizer)


def test_synthetic_needs_a_tokenizer() -> None:
    with pytest.raises(DatasetError, match="synthetic prompts need the model's tokenizer"):
        load_requests("synthetic:fixed:8", 2, seed=0)


def test_bad_request_count() -> None:
    with pytest.raises(DatasetError, match="must be >= 1"):
        load_requests("alpaca", 0, seed=0)
