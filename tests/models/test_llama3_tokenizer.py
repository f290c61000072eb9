"""The converted Llama 3 tokenizer against Meta's own definition of it (tiktoken + llama-models)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from joulebench.models.llama3_tokenizer import (
    LLAMA3_PATTERN,
    NUM_BASE_TOKENS,
    SPECIAL_TOKENS,
    tokenizer_model_path,
    write_llama3_tokenizer,
)
from joulebench.workloads.datasets import load_prompts

tiktoken = pytest.importorskip("tiktoken")
pytest.importorskip("transformers")
pytest.importorskip("llama_models")


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("tok")
    write_llama3_tokenizer(out)
    return AutoTokenizer.from_pretrained(str(out))


@pytest.fixture(scope="module")
def encoding() -> Any:
    from tiktoken.load import load_tiktoken_bpe

    ranks = load_tiktoken_bpe(str(tokenizer_model_path()))
    specials = {t: len(ranks) + i for i, t in enumerate(SPECIAL_TOKENS)}
    return tiktoken.Encoding("llama3", pat_str=LLAMA3_PATTERN, mergeable_ranks=ranks, special_tokens=specials)


def test_special_tokens_are_metas() -> None:
    from llama_models.llama3.tokenizer import Tokenizer

    meta = Tokenizer(tokenizer_model_path())
    assert meta.special_tokens == {t: NUM_BASE_TOKENS + i for i, t in enumerate(SPECIAL_TOKENS)}
    assert meta.pat_str == LLAMA3_PATTERN
    assert meta.n_words == 128256


def test_alpaca_prompts_count_exactly_as_tiktoken(converted: Any, encoding: Any) -> None:
    prompts = [p for _, p in load_prompts("alpaca")]
    ours = converted(prompts, add_special_tokens=False)["input_ids"]
    theirs = encoding.encode_batch(prompts)
    assert ours == theirs
    # with default settings the tokenizer adds exactly the BOS, like Meta's encode(bos=True)
    assert converted(prompts[0])["input_ids"] == [128000, *theirs[0]]


def test_awkward_text_matches_tiktoken(converted: Any, encoding: Any) -> None:
    texts = [
        "  leading spaces",
        "tabs\tand\nnewlines\r\n\n",
        "数字 12345 émojis 🎉🎉",
        "don't I'LL we've",
        "",
    ]
    for text in texts:
        assert converted(text, add_special_tokens=False)["input_ids"] == encoding.encode(text)
        assert converted.decode(encoding.encode(text)) == text


def test_special_ids_and_chat_template(converted: Any) -> None:
    assert len(converted) == 128256
    assert (converted.bos_token_id, converted.eos_token_id) == (128000, 128009)
    assert converted.convert_tokens_to_ids(["<|start_header_id|>", "<|eom_id|>", "<|python_tag|>"]) == [
        128006,
        128008,
        128010,
    ]
    text = converted.apply_chat_template(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert text == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nBe brief.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_files_as_in_the_hub_checkpoint(tmp_path: Path) -> None:
    write_llama3_tokenizer(tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert (config["bos_token"], config["eos_token"], config["model_max_length"]) == (
        "<|begin_of_text|>",
        "<|eot_id|>",
        131072,
    )
    assert len(config["added_tokens_decoder"]) == 256
    assert config["added_tokens_decoder"]["128009"]["content"] == "<|eot_id|>"
    assert "{{- bos_token }}" in config["chat_template"]
    assert (
        json.loads((tmp_path / "special_tokens_map.json").read_text())["eos_token"]["content"] == "<|eot_id|>"
    )
