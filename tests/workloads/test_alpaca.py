from __future__ import annotations

import json
from pathlib import Path

import pytest

from joulebench.errors import DatasetError
from joulebench.workloads import alpaca
from joulebench.workloads.datasets import load_prompts


def test_templates_match_stanford_alpaca() -> None:
    with_input = alpaca.format_prompt("Translate to French.", "Good morning")
    assert with_input == (
        "Below is an instruction that describes a task, paired with an input that provides further context. "
        "Write a response that appropriately completes the request.\n\n"
        "### Instruction:\nTranslate to French.\n\n### Input:\nGood morning\n\n### Response:"
    )
    without = alpaca.format_prompt("Name a color.")
    assert without == (
        "Below is an instruction that describes a task. "
        "Write a response that appropriately completes the request.\n\n"
        "### Instruction:\nName a color.\n\n### Response:"
    )
    assert alpaca.format_prompt("Name a color.", "") == without


def test_bundled_sample_is_the_first_thousand_records_with_attribution() -> None:
    records = json.loads(alpaca.BUNDLED_SAMPLE.read_text())
    assert len(records) == 1000
    assert records[0]["instruction"] == "Are the two sentences below grammatically correct? Output yes or no."
    assert sum(1 for r in records if r["input"]) == 391
    folder = alpaca.BUNDLED_SAMPLE.parent
    attribution = (folder / "ATTRIBUTION.md").read_text()
    assert "Stanford Alpaca (Taori et al., 2023)" in attribution
    assert "CC BY-NC 4.0" in attribution
    assert "tatsu-lab/stanford_alpaca" in attribution
    assert "CC BY-NC 4.0" in (folder / "LICENSE").read_text()


def test_bundled_sample_prompts_use_both_templates() -> None:
    prompts = load_prompts("alpaca")
    assert len(prompts) == 1000
    assert prompts[0] == (
        "0",
        alpaca.format_prompt(
            "Are the two sentences below grammatically correct? Output yes or no.",
            "Sentence 1: I am going to the store.\nSentence 2: I goes to the store.",
        ),
    )
    assert sum("### Input:" in p for _, p in prompts) == 391


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"input": "x"}, "record 1: 'instruction' is missing"),
        ({"instruction": "   "}, "record 1: 'instruction' is missing"),
        ({"instruction": "Do it.", "input": 3}, "record 1: 'input' must be a string"),
        (["not", "an", "object"], "record 1: expected an object"),
    ],
)
def test_malformed_records_are_named(record: object, message: str, tmp_path: Path) -> None:
    path = tmp_path / "alpaca.json"
    path.write_text(json.dumps([{"instruction": "Fine.", "input": ""}, record]))
    with pytest.raises(DatasetError, match=message):
        load_prompts(str(path))


def test_null_input_counts_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text(json.dumps([{"instruction": "Name a color.", "input": None, "output": "Red"}]))
    assert load_prompts(f"alpaca:{path}") == [("0", alpaca.format_prompt("Name a color."))]
