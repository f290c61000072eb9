"""The Hugging Face ``datasets`` source, exercised with local data sets (no hub here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from joulebench.errors import DatasetError
from joulebench.workloads.alpaca import format_prompt
from joulebench.workloads.datasets import load_prompts, records_from_hf

datasets = pytest.importorskip("datasets")

ROWS = [
    # tatsu-lab/alpaca's columns, including the pre-rendered "text" column it carries
    {"instruction": "Name a color.", "input": "", "output": "Red", "text": "..."},
    {"instruction": "Add the numbers.", "input": "2, 3", "output": "5", "text": "..."},
]


def test_dataset_object_with_alpaca_columns() -> None:
    data = datasets.Dataset.from_list(ROWS)
    assert records_from_hf(data, "tatsu-lab/alpaca") == [
        ("0", format_prompt("Name a color.")),
        ("1", format_prompt("Add the numbers.", "2, 3")),
    ]


def test_dataset_object_with_prompt_column() -> None:
    data = datasets.Dataset.from_list([{"prompt": "Hi"}, {"prompt": "Bye"}])
    assert records_from_hf(data, "mine") == [("0", "Hi"), ("1", "Bye")]


def test_dataset_without_usable_columns() -> None:
    data = datasets.Dataset.from_list([{"question": "Hi"}])
    with pytest.raises(DatasetError, match="expected Alpaca columns"):
        records_from_hf(data, "mine")


def test_malformed_row_is_named() -> None:
    data = datasets.Dataset.from_list([*ROWS, {"instruction": "", "input": "", "output": "", "text": ""}])
    with pytest.raises(DatasetError, match="tatsu-lab/alpaca row 2: 'instruction' is missing"):
        records_from_hf(data, "tatsu-lab/alpaca")


def test_load_dataset_path_through_hf_prefix(tmp_path: Path) -> None:
    """``hf:`` goes through datasets.load_dataset, which reads a local data folder as it reads a hub repo."""
    folder = tmp_path / "alpaca-repo"
    folder.mkdir()
    (folder / "train.jsonl").write_text("\n".join(json.dumps(r) for r in ROWS))
    assert load_prompts(f"hf:{folder}") == load_prompts(f"hf:{folder}@train")
    assert [p for _, p in load_prompts(f"hf:{folder}")] == [
        format_prompt("Name a color."),
        format_prompt("Add the numbers.", "2, 3"),
    ]


def test_save_to_disk_folder(tmp_path: Path) -> None:
    folder = tmp_path / "saved"
    datasets.Dataset.from_list(ROWS).save_to_disk(str(folder))
    assert len(load_prompts(str(folder))) == 2
    assert len(load_prompts(f"hf:{folder}")) == 2


def test_unknown_split(tmp_path: Path) -> None:
    folder = tmp_path / "repo"
    folder.mkdir()
    (folder / "train.jsonl").write_text(json.dumps(ROWS[0]))
    with pytest.raises(DatasetError, match=r"cannot load data set .*split 'test'"):
        load_prompts(f"hf:{folder}@test")
