"""`joulebench run` end to end on real engines (transformers on the tiny Llama; vLLM CPU, slow)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from joulebench.store.db import ResultsDB

SETUP_STAGES = {"import", "engine_init", "model_load", "first_token", "setup"}


def _joulebench(
    *args: str, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "joulebench", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def _check_run(db_path: Path, batch: int, tokens: int, repeats: int) -> dict[str, object]:
    with ResultsDB(db_path) as db:
        (run,) = db.runs()
        trials = db.trials(run["id"])
        setup = [t for t in trials if t["kind"] == "setup"]
        gen = [t for t in trials if t["kind"] == "generation"]
        assert [t["status"] for t in setup] == ["ok"]
        assert [t["status"] for t in gen] == ["ok"] * repeats
        assert setup[0]["cache_state"] in ("warm", "cold", "partial")
        stages = {r["stage"] for r in db.stage_energy(setup[0]["id"])}
        assert stages >= SETUP_STAGES
        setup_rows = {r["stage"]: r for r in db.stage_energy(setup[0]["id"])}
        assert setup_rows["setup"]["start_s"] <= setup_rows["import"]["start_s"]
        assert setup_rows["model_load"]["end_s"] <= setup_rows["first_token"]["end_s"]
        assert setup_rows["setup"]["end_s"] == pytest.approx(setup_rows["first_token"]["end_s"])
        # One warm-up batch per engine start, a trial of its own just before the first repeat
        (warm,) = [t for t in trials if t["kind"] == "warmup"]
        warm_rows = db.stage_energy(warm["id"])  # a row per component measured or estimated
        (warm_window,) = {(r["stage"], r["start_s"], r["end_s"]) for r in warm_rows}
        warm_window = warm_rows[0]
        first = {r["stage"]: r for r in db.stage_energy(gen[0]["id"])}
        assert warm["repeat_index"] == 0 and warm_window["stage"] == "warmup" and "warmup" not in first
        assert warm_window["end_s"] <= first["generate"]["start_s"]
        assert warm["output_tokens"] == warm["details"]["warmup_output_tokens"] == batch * tokens
        for t in gen:
            assert t["output_tokens"] == batch * tokens  # fixed mode, counted from token IDs
            assert t["n_requests"] == batch
            assert "generate" in {r["stage"] for r in db.stage_energy(t["id"])}
            reqs = db.requests(t["id"])
            assert [r["output_tokens"] for r in reqs] == [tokens] * batch
            assert all(r["prompt_tokens"] and r["prompt_tokens"] > 0 for r in reqs)
            assert t["details"]["metrics"]["tokens_per_s"] > 0
        assert run["status"] == "ok" and run["engine_version"]
        assert run["environment"]["hostname"] and run["environment"]["python"]
        return run


def test_run_transformers_through_the_cli(tiny_llama: Path, tmp_path: Path) -> None:
    db = tmp_path / "results.db"
    proc = _joulebench(
        "run", "--engine", "transformers", "--model", str(tiny_llama), "--workload", "smoke",
        "--batch-size", "2", "--output-tokens", "8", "--length-mode", "fixed", "--repeats", "2",
        "--setup-repeats", "1", "--device", "cpu", "--idle-s", "0", "--timeout-s", "300",
        "--db", str(db), "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["status"] == "ok"
    assert summary["generation"]["ok"] == 2 and summary["setup"]["ok"] == 1
    assert summary["generation"]["metrics"]["output_tokens"]["mean"] == 16
    assert summary["setup"]["stages"]["model_load"]["duration_s"]["n"] == 1
    (warmup,) = summary["generation"]["warmups"]  # one engine start, one warm-up
    assert (warmup["before_repeat"], warmup["output_tokens"]) == (0, 16) and warmup["duration_s"] > 0
    run = _check_run(db, batch=2, tokens=8, repeats=2)
    sources = run["environment"]["energy_sources"]  # type: ignore[index]
    if not any(s["available"] and not s["estimated"] for s in sources):
        # Nothing measured on this machine: CPU and DRAM estimated by default, and labelled so in every row
        # and in what the totals hold, never as a measured total
        with ResultsDB(db) as store:
            rows = [r for t in store.trials(run["id"]) for r in store.stage_energy(t["id"])]  # type: ignore[arg-type]
        assert rows and all(r["estimated"] and r["component"] in ("cpu", "dram") for r in rows)
        assert summary["totals_hold"] == {"total_incl_estimated": "CPU (estimated) + DRAM (estimated)"}
        assert "j_per_token.total" not in summary["generation"]["metrics"]
        assert summary["generation"]["metrics"]["j_per_token.total_incl_estimated"]["mean"] > 0
        assert summary["estimates"] and summary["estimates"][0].startswith("estimated: CPU = utilisation")

    from rich.console import Console

    from joulebench.runner.display import render_summary

    out = io.StringIO()
    render_summary(summary, Console(file=out, width=140))
    text = out.getvalue()
    assert "Setup (1 of 1 trials ok" in text and "model_load" in text
    assert "tokens/s" in text and "2 of 2 repeats ok" in text
    assert "warm-up before repeat 1: " in text and "16 tokens" in text


def test_repeats_0_measures_the_setup_only(tiny_llama: Path, tmp_path: Path) -> None:
    db = tmp_path / "results.db"
    proc = _joulebench(
        "run", "--model", str(tiny_llama), "--repeats", "0", "--setup-repeats", "2", "--device", "cpu",
        "--idle-s", "0", "--db", str(db), "--json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["status"] == "ok" and summary["setup"]["ok"] == 2
    with ResultsDB(db) as store:
        (run,) = store.runs()
        assert [(t["kind"], t["status"]) for t in store.trials(run["id"])] == [("setup", "ok")] * 2
        assert run["engine_version"]  # from the setup trials: no engine worker ever started


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--engine", "nope"], "unknown engine 'nope'"),
        (["--model", "/definitely/not/here"], "/definitely/not/here"),
        (["--repeats", "-1"], "--repeats must be >= 0"),
        (["--repeats", "0", "--setup-repeats", "0"], "nothing to measure"),
        (["--repeats", "0", "--unmonitored-repeats", "2"], "needs measured repeats"),
        (["--length-mode", "sometimes"], "--length-mode must be fixed or natural"),
        (["--workload", "no-such-workload"], "unknown workload"),
        (["--engine-opt", "novalue"], "expected KEY=VALUE"),
        (["--engine-env", "novalue"], "--engine-env takes KEY=VALUE"),
        (["--engine-env", "HF_TOKEN=hf_x"], "looks like a secret"),
        (["--idle-s", "nan"], "--idle-s must be"),
        (["--idle-s", "inf"], "--idle-s must be"),
        (["--timeout-s", "nan"], "--timeout-s must be"),
        (
            ["--engine", "openai", "--endpoint", "http://127.0.0.1:9", "--request-rate", "nan"],
            "--request-rate",
        ),
        (["--request-rate", "4"], "--max-concurrency and --request-rate are for --engine openai"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    db = tmp_path / "r.db"
    proc = _joulebench("run", "--db", str(db), *args, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert not db.exists()  # checked before anything was created


def test_unknown_engine_option_stops_the_run_with_exit_2(tiny_llama: Path, tmp_path: Path) -> None:
    # Checked before a run exists (it was found in the worker, after a run row and a failed setup trial)
    proc = _joulebench(
        "run", "--model", str(tiny_llama), "--engine-opt", "flux_capacitor=1", "--setup-repeats", "1",
        "--repeats", "1", "--device", "cpu", "--idle-s", "0", "--db", str(tmp_path / "r.db"), timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown transformers option(s) flux_capacitor" in lines[0]
    assert proc.stdout == ""
    assert not (tmp_path / "r.db").exists()


@pytest.mark.slow
def test_run_vllm_cpu_through_the_cli(tiny_llama: Path, tmp_path: Path) -> None:
    pytest.importorskip("vllm")
    db = tmp_path / "results.db"
    proc = _joulebench(
        "run", "--engine", "vllm", "--model", str(tiny_llama), "--batch-size", "2", "--output-tokens", "8",
        "--length-mode", "fixed", "--repeats", "2", "--setup-repeats", "1", "--device", "cpu",
        "--dtype", "bfloat16", "--idle-s", "0", "--timeout-s", "600", "--db", str(db), "--json",
        env={"VLLM_CPU_KVCACHE_SPACE": "1"},
        timeout=1500,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = _check_run(db, batch=2, tokens=8, repeats=2)
    summary = json.loads(proc.stdout)
    assert summary["engine"] == "vllm" and run["engine"] == "vllm"
    # vLLM reports per-request first-token and finish times: the steady window exists or says why not.
    gen = summary["generation"]
    assert "steady.tokens_per_s" in gen["metrics"] or gen["steady_unavailable"]


@pytest.mark.slow
def test_run_openai_with_a_server_command(tiny_llama: Path, tmp_path: Path) -> None:
    pytest.importorskip("vllm")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = (
        f"{sys.executable} -m vllm.entrypoints.openai.api_server --model {tiny_llama} --port {port}"
        " --max-model-len 512 --dtype bfloat16"
    )
    db = tmp_path / "results.db"
    proc = _joulebench(
        "run", "--engine", "openai", "--model", str(tiny_llama), "--server-cmd", server,
        "--endpoint", f"http://127.0.0.1:{port}/v1", "--batch-size", "2", "--output-tokens", "8",
        "--length-mode", "fixed", "--repeats", "2", "--setup-repeats", "1", "--max-concurrency", "2",
        "--idle-s", "0", "--timeout-s", "900", "--db", str(db), "--json",
        env={"VLLM_CPU_KVCACHE_SPACE": "1"},
        timeout=2400,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["status"] == "ok" and summary["engine"] == "openai"
    with ResultsDB(db) as store:
        (run,) = store.runs()
        trials = store.trials(run["id"])
        (setup,) = [t for t in trials if t["kind"] == "setup"]
        assert {"import", "first_token", "setup"} <= {r["stage"] for r in store.stage_energy(setup["id"])}
        for t in (t for t in trials if t["kind"] == "generation"):
            assert t["status"] == "ok" and t["output_tokens"] == 16
            reqs = store.requests(t["id"])
            assert all(r["ttft_s"] is not None and r["itl_s"] for r in reqs)  # streamed


def test_a_failed_run_says_why_on_stderr(tiny_llama: Path, tmp_path: Path) -> None:
    """Exit 1 came with nothing on stderr: the reason was in the summary table on stdout only."""
    db = tmp_path / "r.db"
    proc = _joulebench(
        "run", "--model", str(tiny_llama), "--batch-size", "1", "--output-tokens", "2", "--repeats", "1",
        "--setup-repeats", "0", "--device", "cpu", "--idle-s", "0", "--db", str(db),
        env={"JOULEBENCH_WORKER_FAULT": "repeat-0:raise"},
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("joulebench: error: ")]
    assert line.startswith("joulebench: error: run 1 failed: generation 1: ")
    assert "injected fault at repeat-0" in line and "; logs: " in line
