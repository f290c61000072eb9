"""Prompt sources behind one call, :func:`load_requests`.

Dataset strings:

- ``alpaca``: the bundled 1,000-record Alpaca sample (works offline);
- ``alpaca:PATH`` or a bare ``.json``/``.parquet`` path: Alpaca records from a file (e.g. the full
  ``alpaca_data.json``); ``.jsonl`` works too;
- ``hf:ID`` (``hf:ID@SPLIT``), or ``tatsu-lab/alpaca`` itself: a Hugging Face ``datasets`` data set with
  Alpaca columns (or a ``prompt`` column), downloaded by ``datasets`` where the hub is reachable;
  a folder written by ``Dataset.save_to_disk`` is read with ``load_from_disk``;
- ``prompts:PATH`` or a bare ``.jsonl`` path whose records carry ``prompt``: custom prompts, one
  ``{"prompt": ...}`` object a line;
- ``synthetic:DIST:...``: random-token prompts (see :mod:`joulebench.workloads.synthetic`).
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from joulebench.errors import DatasetError, JoulebenchWarning, require
from joulebench.workloads import alpaca, files, synthetic, tokens
from joulebench.workloads.spec import Request

DEFAULT_DATASET = "alpaca"

# A loaded source: (source_id, prompt) pairs, in dataset order.
Prompts = list[tuple[str, str]]


def load_requests(
    dataset: str,
    n: int,
    *,
    seed: int,
    tokenizer: Any = None,
    chat_template: bool = False,
) -> list[Request]:
    """``n`` requests from ``dataset``, chosen deterministically by ``seed``.

    Records are drawn without replacement; when ``n`` exceeds the data set's size they are drawn with
    replacement instead (a :class:`JoulebenchWarning` says so). ``tokenizer`` (an object, or a folder or
    hub ID to load one from) fills in ``prompt_tokens``; ``chat_template`` wraps each prompt as a user
    turn in the model's chat template, as an Instruct model expects.
    """
    if n < 1:
        raise DatasetError(f"number of requests must be >= 1, got {n}")
    tok = tokens.as_tokenizer(tokenizer) if tokenizer is not None else None
    if chat_template and tok is None:
        raise DatasetError("the chat template needs the model's tokenizer")
    if dataset.startswith("synthetic:"):
        if tok is None:
            raise DatasetError(f"{dataset}: synthetic prompts need the model's tokenizer")
        distribution = synthetic.parse_distribution(dataset.removeprefix("synthetic:"))
        texts = synthetic.synthetic_prompts(tok, n, distribution, seed)
        chosen = [(f"synthetic {i}", t) for i, t in enumerate(texts)]
    else:
        chosen = select(load_prompts(dataset), n, seed=seed, dataset=dataset)
    texts = [text for _, text in chosen]
    if chat_template:
        texts = tokens.render_chat(tok, texts)
    counts: list[int | None] = [None] * len(texts)
    if tok is not None:
        counts = list(tokens.count_tokens(tok, texts))
    return [
        Request(index=i, prompt=text, prompt_tokens=count, source_id=source_id)
        for i, ((source_id, _), text, count) in enumerate(zip(chosen, texts, counts, strict=True))
    ]


def select(prompts: Prompts, n: int, *, seed: int, dataset: str = "dataset") -> Prompts:
    """``n`` prompts drawn with a private ``random.Random(seed)``: without replacement where the data set
    is large enough, with replacement (and a warning) where it is not."""
    rng = random.Random(seed)
    if n <= len(prompts):
        return [prompts[i] for i in rng.sample(range(len(prompts)), n)]
    warnings.warn(
        f"{dataset} has {len(prompts)} prompts, fewer than the {n} requested: sampling with replacement",
        JoulebenchWarning,
        stacklevel=3,
    )
    return [prompts[i] for i in rng.choices(range(len(prompts)), k=n)]


def load_prompts(dataset: str) -> Prompts:
    """Every prompt of a (non-synthetic) dataset, validated, as ``(source_id, prompt)`` pairs."""
    if dataset == "alpaca":
        return _alpaca_file(alpaca.BUNDLED_SAMPLE)
    if dataset.startswith("alpaca:"):
        return _alpaca_file(Path(dataset.removeprefix("alpaca:")).expanduser())
    if dataset.startswith("prompts:"):
        return _prompts_file(Path(dataset.removeprefix("prompts:")).expanduser())
    if dataset.startswith("hf:") or dataset == alpaca.HF_DATASET_ID:
        return _hf_dataset(dataset.removeprefix("hf:"))
    path = Path(dataset).expanduser()
    if path.is_dir():
        return _hf_dataset(str(path))
    if path.suffix.lower() in files.SUFFIXES:
        return _file(path)
    raise DatasetError(
        f"unknown dataset {dataset!r}: use alpaca, alpaca:PATH, prompts:PATH, hf:ID, synthetic:DIST:... "
        "or a .json/.jsonl/.parquet file"
    )


def _file(path: Path) -> Prompts:
    records = files.read_records(path)
    first = records[0][1]
    if isinstance(first, Mapping) and "prompt" in first and "instruction" not in first:
        return _prompts(records)
    return _alpaca(records)


def _alpaca_file(path: Path) -> Prompts:
    return _alpaca(files.read_records(path))


def _prompts_file(path: Path) -> Prompts:
    return _prompts(files.read_records(path))


def _alpaca(records: list[tuple[str, Any]]) -> Prompts:
    return [(str(i), alpaca.prompt_from_record(r, where)) for i, (where, r) in enumerate(records)]


def _prompts(records: list[tuple[str, Any]]) -> Prompts:
    out: Prompts = []
    for i, (where, record) in enumerate(records):
        if not isinstance(record, Mapping):
            raise DatasetError(f"{where}: expected an object with 'prompt', got {type(record).__name__}")
        prompt = record.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise DatasetError(f"{where}: 'prompt' is missing or not a non-empty string")
        out.append((str(record.get("id", i)), prompt))
    return out


def _hf_dataset(ref: str) -> Prompts:
    """A ``datasets`` data set: a hub ID (downloaded and cached by ``datasets``), a data folder, or a
    ``save_to_disk`` folder."""
    ds_lib = require("datasets", extra="datasets")
    name, _, split = ref.partition("@")
    split = split or "train"
    path = Path(name).expanduser()
    try:
        if (path / "dataset_info.json").is_file() or (path / "state.json").is_file():
            data = ds_lib.load_from_disk(str(path))
            data = data[split] if isinstance(data, ds_lib.DatasetDict) else data
        else:
            data = ds_lib.load_dataset(name, split=split)
    except (FileNotFoundError, ValueError, KeyError, ConnectionError, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DatasetError(f"cannot load data set {name!r} (split {split!r}): {reason}") from exc
    return records_from_hf(data, name)


def records_from_hf(data: Any, name: str) -> Prompts:
    """Prompts of a ``datasets.Dataset`` with Alpaca columns or a ``prompt`` column."""
    columns = set(data.column_names)
    rows = [(f"{name} row {i}", row) for i, row in enumerate(data)]
    if not rows:
        raise DatasetError(f"{name}: no records")
    if "instruction" in columns:
        return _alpaca(rows)
    if "prompt" in columns:
        return _prompts(rows)
    raise DatasetError(
        f"{name}: expected Alpaca columns (instruction, input) or a prompt column, got {sorted(columns)}"
    )
