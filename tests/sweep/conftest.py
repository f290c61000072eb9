from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from joulebench.store.db import ResultsDB


@dataclass(frozen=True)
class Cli:
    rc: int
    out: str
    err: str


def joulebench(*args: str, env: dict[str, str] | None = None, timeout_s: float = 600) -> Cli:
    """The real command line, in a fresh process, as a user runs it."""
    proc = subprocess.run(
        [sys.executable, "-m", "joulebench", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={**os.environ, **(env or {})},
    )
    return Cli(proc.returncode, proc.stdout, proc.stderr)


def write_plan(folder: Path, filename: str = "plan.yaml", **plan: Any) -> Path:
    path = folder / filename
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


def cells_in(db_path: Path) -> dict[str, list[dict[str, Any]]]:
    """Per sweep key, its runs oldest first, each with its trials and their requests' token counts."""
    out: dict[str, list[dict[str, Any]]] = {}
    with ResultsDB(db_path) as db:
        for run in db.runs():
            trials = [
                {
                    "kind": t["kind"],
                    "repeat_index": t["repeat_index"],
                    "status": t["status"],
                    "prompt_tokens": t["prompt_tokens"],
                    "output_tokens": t["output_tokens"],
                    "request_tokens": [r["output_tokens"] for r in db.requests(t["id"])],
                    "details": t["details"],
                }
                for t in db.trials(run["id"])
            ]
            out.setdefault(run["sweep_key"], []).append({**run, "trials": trials})
    return out


WORKLOADS = [
    {"name": "smoke", "batch_size": 2, "output_tokens": 4, "length_mode": "fixed"},
    {"name": "smoke", "batch_size": 3, "output_tokens": 6, "length_mode": "fixed"},
]
SHAPES = {(2, 4), (3, 6)}  # (batch_size, output_tokens) of WORKLOADS


def cpu_plan(folder: Path, model: Path, **changes: Any) -> Path:
    plan: dict[str, Any] = {
        "name": "cpu-tiny",
        "repeats": 2,
        "setup_repeats": 1,
        "device": "cpu",
        "defaults": {"idle_s": 0},
        "engines": ["transformers"],
        "models": [str(model)],
        "workloads": WORKLOADS,
    }
    return write_plan(folder, **{**plan, **changes})


@pytest.fixture(scope="session")
def local_sweep(tmp_path_factory: pytest.TempPathFactory, tiny_llama: Path) -> Iterator[dict[str, Any]]:
    """The sweep run once, in this process, with a spy on the runner's multi-workload entry point."""
    from joulebench.cli.main import main
    from joulebench.runner import run

    folder = tmp_path_factory.mktemp("local-sweep")
    plan = cpu_plan(folder, tiny_llama)
    db = folder / "results.db"
    calls: list[list[Any]] = []
    real = run.execute_many

    def spy(configs: Any, db: Any, **kw: Any) -> Any:
        calls.append(list(configs))
        return real(configs, db, **kw)

    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out):
        mp.setattr(run, "execute_many", spy)
        with pytest.raises(SystemExit) as exit_:
            main(["sweep", str(plan), "--db", str(db)])
    yield {"plan": plan, "db": db, "rc": exit_.value.code, "out": out.getvalue(), "calls": calls}
