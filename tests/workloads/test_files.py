"""Each dataset source on small files, well-formed and malformed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from joulebench.errors import DatasetError
from joulebench.workloads.alpaca import format_prompt
from joulebench.workloads.datasets import load_prompts

RECORDS = [
    {"instruction": "Name a color.", "input": "", "output": "Red"},
    {"instruction": "Add the numbers.", "input": "2, 3", "output": "5"},
]
EXPECTED = [("0", format_prompt("Name a color.")), ("1", format_prompt("Add the numbers.", "2, 3"))]


def test_alpaca_json(tmp_path: Path) -> None:
    path = tmp_path / "alpaca_data.json"
    path.write_text(json.dumps(RECORDS, indent=4))
    assert load_prompts(str(path)) == EXPECTED
    assert load_prompts(f"alpaca:{path}") == EXPECTED


def test_alpaca_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "alpaca.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in RECORDS) + "\n\n")
    assert load_prompts(str(path)) == EXPECTED


def test_alpaca_parquet(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "train.parquet"
    pq.write_table(pa.Table.from_pylist(RECORDS), path)
    assert load_prompts(str(path)) == EXPECTED


def test_custom_prompts_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    path.write_text('{"prompt": "Hello there"}\n{"prompt": "Why is the sky blue?", "id": "q2"}\n')
    assert load_prompts(str(path)) == [("0", "Hello there"), ("q2", "Why is the sky blue?")]
    assert load_prompts(f"prompts:{path}") == [("0", "Hello there"), ("q2", "Why is the sky blue?")]


def test_invalid_json_line_is_reported_with_its_number(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    path.write_text('{"prompt": "ok"}\n\n{"prompt": "broken"\n')
    with pytest.raises(DatasetError, match=r"mine.jsonl line 3: invalid JSON"):
        load_prompts(f"prompts:{path}")


def test_missing_prompt_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    path.write_text('{"prompt": "ok"}\n{"text": "no prompt key"}\n')
    with pytest.raises(DatasetError, match=r"mine.jsonl line 2: 'prompt' is missing"):
        load_prompts(f"prompts:{path}")


def test_invalid_json_array_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "alpaca.json"
    path.write_text('[\n  {"instruction": "a"},\n  {"instruction": }\n]')
    with pytest.raises(DatasetError, match=r"alpaca.json line 3: invalid JSON"):
        load_prompts(str(path))


def test_json_that_is_not_an_array(tmp_path: Path) -> None:
    path = tmp_path / "alpaca.json"
    path.write_text('{"instruction": "a"}')
    with pytest.raises(DatasetError, match="expected a JSON array"):
        load_prompts(str(path))


def test_parquet_row_is_named(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "train.parquet"
    pq.write_table(pa.Table.from_pylist([*RECORDS, {"instruction": "", "input": "", "output": ""}]), path)
    with pytest.raises(DatasetError, match=r"train.parquet row 2: 'instruction' is missing"):
        load_prompts(str(path))


def test_corrupt_parquet(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    path = tmp_path / "train.parquet"
    path.write_bytes(b"PAR1 not really")
    with pytest.raises(DatasetError, match="not a readable Parquet file"):
        load_prompts(str(path))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("alpaca:{tmp}/missing.json", "dataset file not found"),
        ("{tmp}/empty.jsonl", "no records"),
        ("{tmp}/data.csv", "unknown dataset"),
        ("nonsense", "unknown dataset 'nonsense'"),
        ("alpaca:{tmp}/data.txt", "unsupported dataset file type '.txt'"),
    ],
)
def test_bad_dataset_specs(spec: str, message: str, tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("\n")
    (tmp_path / "data.txt").write_text("x")
    with pytest.raises(DatasetError, match=message):
        load_prompts(spec.format(tmp=tmp_path))


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"prompt": "caf\xe9"}\n')
    with pytest.raises(DatasetError, match="not UTF-8"):
        load_prompts(str(path))


def test_jsonl_strings_may_hold_unicode_line_separators(tmp_path: Path) -> None:
    # JSON allows U+2028/U+2029/U+0085 unescaped in strings; only "\n" ends a JSON Lines record
    records = [{"instruction": "Split\u2028here\u0085and\u2029there.", "input": ""}, RECORDS[1]]
    path = tmp_path / "alpaca.jsonl"
    path.write_text("\r\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf-8")
    assert load_prompts(str(path)) == [("0", format_prompt(records[0]["instruction"])), EXPECTED[1]]


def test_jsonl_line_numbers_count_newlines_only(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    good = json.dumps({"instruction": "a\u2028b"}, ensure_ascii=False)
    path.write_text(f"{good}\n{{broken\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"bad\.jsonl line 2: invalid JSON"):
        load_prompts(str(path))
