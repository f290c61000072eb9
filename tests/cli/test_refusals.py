"""Bad input found by an audit, each refused in one line with exit code 2 and nothing written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def _joulebench(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {
        **os.environ,
        "CUDA_VISIBLE_DEVICES": "",
        "JOULEBENCH_POWERCAP_ROOT": str(tmp_path / "none"),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-m", "joulebench", *args], capture_output=True, text=True, env=full, timeout=120
    )


def _one_line(proc: subprocess.CompletedProcess[str], words: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert words in lines[0], lines[0]


@pytest.mark.parametrize("flag", ["--output", "--trace"])
def test_measure_never_overwrites_a_file_it_did_not_create(tmp_path: Path, flag: str) -> None:
    mine = tmp_path / ("mine.jsonl" if flag == "--trace" else "mine.txt")
    mine.write_text("keep\n")
    proc = _joulebench(["measure", flag, str(mine), "--", sys.executable, "-c", "pass"], tmp_path)
    _one_line(proc, "exists")
    assert mine.read_text() == "keep\n"


@pytest.mark.parametrize("flag", ["--interval-ms", "--gpu-power-interval-ms"])
def test_an_interval_that_would_spin_a_core_is_refused(tmp_path: Path, flag: str) -> None:
    _one_line(_joulebench(["measure", flag, "0.0001", "--", "true"], tmp_path), "at least 1 ms")


def test_a_negative_seed_is_refused(tmp_path: Path) -> None:
    proc = _joulebench(["model", "create", "llama-3.2-1b", str(tmp_path / "m"), "--seed", "-1"], tmp_path)
    _one_line(proc, "--seed")
    assert not (tmp_path / "m").exists()


def test_a_cache_that_is_a_file_is_named(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.write_text("not a folder")
    db = tmp_path / "r.db"
    proc = _joulebench(["run", "--db", str(db), "--repeats", "1", "--setup-repeats", "0"], tmp_path,
                       JOULEBENCH_CACHE=str(cache))  # fmt: skip
    _one_line(proc, "JOULEBENCH_CACHE")
    assert not db.exists()


@pytest.mark.parametrize(
    ("name", "why"), [("ipmitool", "is not executable"), ("nothing-here", "neither a file nor a command")]
)
def test_an_ipmitool_that_cannot_run_says_why(tmp_path: Path, name: str, why: str) -> None:
    tool = tmp_path / name
    if name == "ipmitool":
        tool.write_text("#!/bin/sh\n")  # set, present, but not executable
    proc = _joulebench(["sources"], tmp_path, JOULEBENCH_IPMITOOL=str(tool))
    line = next(line for line in proc.stdout.splitlines() if line.strip().startswith("ipmi"))
    assert why in line and "not found on PATH" not in line, line


def test_a_model_whose_config_names_an_unknown_dtype_is_one_line(tiny_llama: Path, tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(tiny_llama, model)
    config = json.loads((model / "config.json").read_text())
    config["torch_dtype"] = config["dtype"] = "bogus"
    (model / "config.json").write_text(json.dumps(config))
    db = tmp_path / "r.db"
    args = ["run", "--model", str(model), "--db", str(db), "--repeats", "1", "--setup-repeats", "0"]
    proc = _joulebench(args, tmp_path)
    _one_line(proc, "bogus")
    assert not db.exists()


@pytest.mark.parametrize("name", ["deep.json", "deep.jsonl"])
def test_a_dataset_nested_too_deeply_is_one_line(tmp_path: Path, name: str) -> None:
    nested = "[" * 100_000 + "]" * 100_000
    dataset = tmp_path / name
    dataset.write_text(nested if name.endswith(".json") else '{"instruction": ' + nested + "}\n")
    db = tmp_path / "r.db"
    proc = _joulebench(["run", "--dataset", str(dataset), "--db", str(db), "--repeats", "1"], tmp_path)
    _one_line(proc, "nested too deeply")
    assert not db.exists()


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--batch-size", "1000000000000"), ("--output-tokens", "1000000000000"), ("--repeats", "1000000")],
)
def test_sizes_beyond_any_machine_are_refused_before_anything_is_allocated(
    tmp_path: Path, flag: str, value: str
) -> None:
    db = tmp_path / "r.db"
    proc = _joulebench(["run", flag, value, "--db", str(db), "--setup-repeats", "0"], tmp_path)
    _one_line(proc, f"{flag} must be at most")
    assert not db.exists()


def test_more_tokens_than_the_models_context_is_refused_before_anything_runs(tmp_path: Path) -> None:
    """SmolLM2-135M has 8,192 positions: 9,000 output tokens would be truncated or refused by an engine
    after its start; here it is one line, with no database, no log folder and no engine started."""
    db = tmp_path / "r.db"
    proc = _joulebench(["run", "--output-tokens", "9000", "--db", str(db)], tmp_path)
    _one_line(proc, "9000 output tokens need")
    assert "the model has 8192 (its config.json)" in proc.stderr
    assert not db.exists() and not (tmp_path / "joulebench-logs").exists()


def test_context_length_is_read_from_the_models_config(tmp_path: Path) -> None:
    import json

    from joulebench.runner.prepare import context_length

    folder = tmp_path / "m"
    folder.mkdir()
    assert context_length(str(folder)) is None  # no config.json: the engine decides
    (folder / "config.json").write_text(json.dumps({"n_positions": 1024}))  # GPT-2's key
    assert context_length(str(folder)) == 1024
    (folder / "config.json").write_text(json.dumps({"max_position_embeddings": 131072, "n_positions": 1}))
    assert context_length(str(folder)) == 131072
    assert context_length(None) is None


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--engine-opt", "bogus=1"], "unknown transformers option(s) bogus"),
        (["--engine", "openai", "--endpoint", "ftp://host/v1"], "endpoint must be an http(s) URL"),
        (["--engine", "openai", "--engine-opt", "colour=red"], "unknown openai engine option(s) colour"),
    ],
)
def test_engine_options_and_endpoint_are_checked_before_a_run_exists(
    tmp_path: Path, args: list[str], words: str
) -> None:
    """They were checked in the engine's worker, after a run row and a setup trial had been written."""
    db = tmp_path / "r.db"
    proc = _joulebench(["run", *args, "--db", str(db)], tmp_path)
    _one_line(proc, words)
    assert not db.exists()


def test_weights_larger_than_the_machine_are_refused_before_a_preset_is_written(tmp_path: Path) -> None:
    """The 70B preset on this machine: its 141 GB of weights were being written out, then loaded."""
    from joulebench.runner.environment import memory_bytes
    from joulebench.runner.fits import weights_bytes

    need = weights_bytes("llama-3.1-70b")
    assert need is not None and need > 140e9
    if (memory_bytes() or 0) >= need:
        pytest.skip("this machine holds 141 GB")
    db, cache = tmp_path / "r.db", tmp_path / "cache"
    proc = _joulebench(
        ["run", "--model", "llama-3.1-70b", "--device", "cpu", "--db", str(db)], tmp_path,
        JOULEBENCH_CACHE=str(cache),
    )  # fmt: skip
    _one_line(proc, "llama-3.1-70b: its weights alone are 141.1 GB, more than this machine's")
    assert "a machine with more memory" in proc.stderr
    assert not db.exists() and not (cache / "models" / "llama-3.1-70b").exists()


def test_a_model_in_two_formats_counts_its_weights_once(tmp_path: Path) -> None:
    """A hub folder that ships safetensors beside .bin: the engine loads one, so one is what must fit."""
    from joulebench.runner.fits import weights_bytes

    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"\0" * 1000)
    (folder / "pytorch_model.bin").write_bytes(b"\0" * 1200)
    (folder / "config.json").write_text("{}")
    assert weights_bytes(str(folder)) == 1000


def test_a_vllm_logging_config_it_could_not_load_is_one_line(tiny_llama: Path, tmp_path: Path) -> None:
    pytest.importorskip("vllm")
    broken = tmp_path / "logging.json"
    broken.write_text("{not json")
    db = tmp_path / "r.db"
    args = ["run", "--engine", "vllm", "--model", str(tiny_llama), "--device", "cpu", "--db", str(db),
            "--repeats", "1", "--setup-repeats", "0"]  # fmt: skip
    proc = _joulebench(args, tmp_path, VLLM_LOGGING_CONFIG_PATH=str(broken))
    _one_line(proc, f"VLLM_LOGGING_CONFIG_PATH={broken}: not a JSON logging config")
    assert not db.exists()
