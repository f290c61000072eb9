"""Secrets never reach a results database or its report: what users type (engine options, a server's
command line and environment) and what a run inherits are redacted at the store's door."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from joulebench.store.redact import REDACTED, redact, scrub, secret_name


@pytest.mark.parametrize(
    "name", ["HF_TOKEN", "VLLM_API_KEY", "TORCH_APITOKEN", "api_key", "apiKey", "AWS_SECRET_ACCESS_KEY",
             "password", "OPENAI_API_KEY", "DB_PASSWD", "GITHUB_ACCESSTOKEN", "authorization"],
)  # fmt: skip
def test_secret_names(name: str) -> None:
    assert secret_name(name)


@pytest.mark.parametrize(
    "name", ["TOKENIZERS_PARALLELISM", "max_tokens", "PYTORCH_CUDA_ALLOC_CONF", "tokenizer", "top_k",
             "HF_HUB_OFFLINE", "CUDA_VISIBLE_DEVICES", "max_num_batched_tokens"],
)  # fmt: skip
def test_names_that_are_not_secrets(name: str) -> None:
    assert not secret_name(name)


@pytest.mark.parametrize(
    ("text", "kept", "gone"),
    [
        ("vllm serve m --api-key sk-abc123456789 --port 8000", "--port 8000", "sk-abc123456789"),
        ("trtllm-serve m --hf-token=hf_abcdefghijkl --tp_size 2", "--tp_size 2", "hf_abcdefghijkl"),
        ("env HF_TOKEN=abcdef vllm serve m", "vllm serve m", "abcdef"),
        ("curl -H 'Authorization: Bearer abc.def.ghi' x", "curl", "abc.def.ghi"),
        ("--password 'two words' --x 1", "--x 1", "two words"),
        ("a key sk-proj-AAAAAAAAAAAA in a message", "a key", "sk-proj-AAAAAAAAAAAA"),
    ],
)
def test_secret_shapes_in_text_are_replaced_and_the_rest_kept(text: str, kept: str, gone: str) -> None:
    out = scrub(text)
    assert gone not in out and REDACTED in out and kept in out


@pytest.mark.parametrize(
    "text",
    [
        "vllm serve m --max-num-batched-tokens 8192 --tokenizer /models/tok --max-model-len 2176",
        "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True",
    ],
)
def test_text_without_secrets_is_unchanged(text: str) -> None:
    assert scrub(text) == text


def test_a_record_keeps_its_metrics_and_loses_its_secrets() -> None:
    config = {
        "engine_options": {"api_key": "k1", "max_concurrency": 8, "server_env": {"HF_TOKEN": "k2", "A": "b"}},
        "resolved": {"engine_config": {"options": {"api_key": "k1", "return_token_ids": True}}},
        "server_cmd": "vllm serve m --api-key k3",
    }
    details = {
        "metrics": {"j_per_token.gpu": 0.1, "first_token": 1.5},
        "sweep_key": "abc",
        "first_token": "x",
    }
    out = redact(config)
    assert out["engine_options"] == {
        "api_key": REDACTED,
        "max_concurrency": 8,
        "server_env": {"HF_TOKEN": REDACTED, "A": "b"},
    }
    assert out["resolved"]["engine_config"]["options"] == {"api_key": REDACTED, "return_token_ids": True}
    assert out["server_cmd"] == f"vllm serve m --api-key {REDACTED}"
    assert redact(details) == details  # names outside what users fill are never judged by their words
    assert config["engine_options"]["api_key"] == "k1"  # the caller's record is left as it was


def test_planted_secrets_reach_neither_the_database_nor_the_report(tmp_path: Path) -> None:
    """A run with a key as an engine option, another in its server's command line, a token in the server's
    environment and one inherited: the run fails (no server), and still wrote its configuration."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TORCH_APITOKEN": "PLANTED-ENV-1"}
    env["JOULEBENCH_POWERCAP_ROOT"] = str(tmp_path / "none")
    db = tmp_path / "r.db"
    run = [
        sys.executable, "-m", "joulebench", "run", "--engine", "openai", "--model", str(tmp_path / "model"),
        "--engine-opt", "api_key=sk-PLANTEDKEY00002",
        "--server-cmd", f"{sys.executable} -c 'raise SystemExit(3)' --api-key PLANTED-CMD-3",
        "--endpoint", "http://127.0.0.1:9/v1",
        "--engine-opt", 'server_env={"HF_TOKEN": "PLANTED-HF-4"}',
        "--db", str(db), "--setup-repeats", "1", "--repeats", "1", "--workload", "smoke", "--idle-s", "0",
    ]  # fmt: skip
    proc = subprocess.run(run, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode != 0  # the server never came up
    assert db.is_file()
    report = tmp_path / "report"
    rep = subprocess.run(
        [sys.executable, "-m", "joulebench", "report", "--db", str(db), "--out", str(report)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert rep.returncode == 0, rep.stderr
    stored = [p for p in (*tmp_path.glob("r.db*"), *report.iterdir()) if p.is_file()]
    assert any(p.name == "report.html" for p in stored)
    for path in stored:
        data = path.read_bytes()
        assert b"PLANTED" not in data, path.name
    assert b"<redacted>" in db.read_bytes()
