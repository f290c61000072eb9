"""The Ray executor on a real two-node Ray cluster on this machine gives the same trials as the local one."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.sweep.conftest import cells_in, joulebench

pytest.importorskip(
    "ray", reason="ray is not installed (pip install 'joulebench[ray]'); the Ray executor is untested"
)
pytestmark = pytest.mark.slow  # starts a Ray cluster and real engine workers

# Ray's uv integration would re-launch workers under `uv run` when the driver runs under uv.
RAY_ENV = {"RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ray_cli() -> str:
    beside = Path(sys.executable).with_name("ray")
    found = str(beside) if beside.exists() else shutil.which("ray")
    if not found:
        pytest.skip("the ray command is not on PATH")
    return found


def _alive_nodes(address: str) -> int:
    probe = (
        f"import ray, logging; ray.init(address={address!r}, logging_level=logging.ERROR);"
        "print(sum(1 for n in ray.nodes() if n['Alive']))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env={**os.environ, **RAY_ENV},
        timeout=120,
    )
    return int(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 and proc.stdout.strip() else 0


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """`ray start --block` shuts its node down on SIGTERM; whatever is left of its group is killed."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A head and a worker node, one CPU each, each `ray start` process in a session of its own so that
    stopping them touches no other Ray on the machine."""
    ray = _ray_cli()
    port = _free_port()
    address = f"127.0.0.1:{port}"
    logs = tmp_path_factory.mktemp("ray-logs")
    env = {**os.environ, **RAY_ENV}
    common = ["--num-cpus=1", "--num-gpus=0", "--disable-usage-stats", "--block"]
    nodes: list[subprocess.Popen[bytes]] = []
    try:
        with open(logs / "head.log", "wb") as log:
            head = [ray, "start", "--head", f"--port={port}", "--include-dashboard=false", *common]
            nodes.append(
                subprocess.Popen(head, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
            )
        deadline = time.monotonic() + 120
        while _alive_nodes(address) < 1:
            assert time.monotonic() < deadline, (logs / "head.log").read_text()[-2000:]
            time.sleep(1)
        with open(logs / "worker.log", "wb") as log:
            worker = [ray, "start", f"--address={address}", *common]
            nodes.append(
                subprocess.Popen(
                    worker, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
                )
            )
        while _alive_nodes(address) < 2:
            assert time.monotonic() < deadline, (logs / "worker.log").read_text()[-2000:]
            time.sleep(1)
        yield address
    finally:
        for proc in reversed(nodes):
            _stop(proc)


def _trials(cells: dict[str, list[dict[str, Any]]]) -> dict[str, list[Any]]:
    """What must agree between executors: per key, each run's status and shape and its trials' kinds,
    statuses and token counts (fixed length mode: equal on both by construction)."""
    keep = ("kind", "repeat_index", "status", "prompt_tokens", "output_tokens", "request_tokens")
    out: dict[str, list[Any]] = {}
    for key, runs in cells.items():
        for r in runs:
            trials = [{k: t[k] for k in keep} for t in r["trials"]]
            out.setdefault(key, []).append((r["status"], r["batch_size"], r["output_tokens"], trials))
    return out


def test_ray_executor_gives_the_same_trials_as_local(local_sweep: dict[str, Any], ray_cluster: str) -> None:
    db = local_sweep["db"].parent / "ray.db"
    result = joulebench(
        "sweep", str(local_sweep["plan"]), "--executor", "ray", "--ray-address", ray_cluster, "--db", str(db),
        env=RAY_ENV,
    )  # fmt: skip
    assert result.rc == 0, result.err[-3000:]
    assert "2 ok, 0 failed, 0 skipped" in result.out
    local, remote = cells_in(local_sweep["db"]), cells_in(db)
    assert sorted(remote) == sorted(local)  # the same sweep keys
    assert _trials(remote) == _trials(local)
    for runs in remote.values():  # measured on the node, written by the driver: the node's facts came along
        (run,) = runs
        assert (
            run["environment"]
            and run["config"]["resolved"]["model_path"]
            == str(local_sweep["plan"].parent / "x")[:0] + run["model"]
        )

    again = joulebench(
        "sweep", str(local_sweep["plan"]), "--executor", "ray", "--ray-address", ray_cluster, "--db", str(db),
        "--resume", env=RAY_ENV,
    )  # fmt: skip
    assert again.rc == 0 and "0 ok, 0 failed, 2 skipped" in again.out, again.err[-2000:]
    assert cells_in(db) == remote
