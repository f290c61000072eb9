"""The Alpaca instruction data set: record validation and the two official Stanford Alpaca templates."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from joulebench.errors import DatasetError

HF_DATASET_ID = "tatsu-lab/alpaca"
BUNDLED_SAMPLE = Path(__file__).parent / "data" / "alpaca_sample.json"

# Verbatim from the Stanford Alpaca training code (train.py, PROMPT_DICT).
PROMPT_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:"
)
PROMPT_NO_INPUT = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:"
)


def format_prompt(instruction: str, input: str = "") -> str:
    """The Alpaca prompt for one record: the template with ``### Input:`` only when ``input`` is non-empty."""
    if input:
        return PROMPT_WITH_INPUT.format(instruction=instruction, input=input)
    return PROMPT_NO_INPUT.format(instruction=instruction)


def prompt_from_record(record: Any, where: str) -> str:
    """Validate one Alpaca record and return its prompt; ``where`` names it in the error ("line 7")."""
    if not isinstance(record, Mapping):
        raise DatasetError(f"{where}: expected an object with 'instruction', got {type(record).__name__}")
    instruction = record.get("instruction")
    if not isinstance(instruction, str) or not instruction.strip():
        raise DatasetError(f"{where}: 'instruction' is missing or not a non-empty string")
    extra = record.get("input", "")
    if extra is None:
        extra = ""
    if not isinstance(extra, str):
        raise DatasetError(f"{where}: 'input' must be a string, got {type(extra).__name__}")
    return format_prompt(instruction, extra)


def prompts_from_records(records: Iterable[tuple[str, Any]]) -> list[tuple[str, str]]:
    """``(where, record)`` pairs -> ``(where, prompt)`` pairs; the first malformed record raises."""
    return [(where, prompt_from_record(record, where)) for where, record in records]
