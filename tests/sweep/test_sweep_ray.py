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
    yield from _cluster(tmp_path_factory, ["--num-cpus=1", "--num-gpus=0"], nodes=2)


@pytest.fixture()
def two_gpu_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """One node that offers two GPUs to Ray: logical ones, on this CPU machine. Ray hands them out to
    tasks (CUDA_VISIBLE_DEVICES) exactly as it hands out real ones. Its tasks see the node's environment,
    not the driver's: the node's joulebench cache folder is a temporary one (yielded with the address)."""
    cache = tmp_path_factory.mktemp("node-cache")
    for address in _cluster(
        tmp_path_factory, ["--num-cpus=4", "--num-gpus=2"], nodes=1, env={"JOULEBENCH_CACHE": str(cache)}
    ):
        yield address, cache


def _cluster(
    tmp_path_factory: pytest.TempPathFactory,
    resources: list[str],
    nodes: int,
    env: dict[str, str] | None = None,
) -> Iterator[str]:
    ray = _ray_cli()
    port = _free_port()
    address = f"127.0.0.1:{port}"
    logs = tmp_path_factory.mktemp("ray-logs")
    env = {**os.environ, **RAY_ENV, **(env or {})}
    common = [*resources, "--disable-usage-stats", "--block"]
    started: list[subprocess.Popen[bytes]] = []
    try:
        with open(logs / "head.log", "wb") as log:
            head = [ray, "start", "--head", f"--port={port}", "--include-dashboard=false", *common]
            started.append(
                subprocess.Popen(head, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
            )
        deadline = time.monotonic() + 120
        while _alive_nodes(address) < 1:
            assert time.monotonic() < deadline, (logs / "head.log").read_text()[-2000:]
            time.sleep(1)
        if nodes > 1:
            with open(logs / "worker.log", "wb") as log:
                worker = [ray, "start", f"--address={address}", *common]
                started.append(
                    subprocess.Popen(
                        worker, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
                    )
                )
            while _alive_nodes(address) < nodes:
                assert time.monotonic() < deadline, (logs / "worker.log").read_text()[-2000:]
                time.sleep(1)
        yield address
    finally:
        for proc in reversed(started):
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


def test_cells_run_in_parallel_one_per_gpu_set(
    two_gpu_node: tuple[str, Path], tmp_path: Path, tiny_llama: Path
) -> None:
    """Two plans of two cells each on a node with two GPUs, one GPU a cell, given as one sweep: Ray runs
    two cells at a time, each on its own GPU, and never three, and each GPU set compiles into caches of
    its own; the bash lanes that did this by hand are not needed."""
    from tests.sweep.conftest import WORKLOADS, cpu_plan

    plans = []
    for name, lanes in (("a", (0, 1)), ("b", (2, 3))):
        engines = [{"name": "transformers", "variant": f"lane{i}", "num_gpus": 1} for i in lanes]
        plans.append(
            cpu_plan(
                tmp_path, tiny_llama, name=name, filename=f"{name}.yaml", repeats=2, setup_repeats=0,
                engines=engines, workloads=WORKLOADS[:1],
            )
        )  # fmt: skip
    db = tmp_path / "r.db"
    address, caches = two_gpu_node
    result = joulebench(
        "sweep", *map(str, plans), "--executor", "ray", "--ray-address", address, "--db", str(db), env=RAY_ENV
    )  # fmt: skip
    assert result.rc == 0, result.err[-3000:]
    assert "sweep a, b: 4 ok, 0 failed, 0 skipped" in result.out
    runs = [r for rs in cells_in(db).values() for r in rs]
    assert sorted(r["config"]["label"] for r in runs) == ["lane0", "lane1", "lane2", "lane3"]
    # each cell saw one GPU of the two, as Ray assigned it, and both were used
    gpus = [r["environment"]["cuda_visible_devices"] for r in runs]
    assert set(gpus) == {"0", "1"}, gpus
    # two at a time: the runs' spans overlap in pairs, never three at once
    spans = [(r["created_unix_s"], r["finished_unix_s"]) for r in runs]
    most = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert most == 2, spans
    # torch's compile caches, as each engine process saw them: the folder of the GPU set it ran on
    for run, gpu in zip(runs, gpus, strict=True):
        seen = run["environment"]["engine_env"]
        for var in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR"):
            assert seen[var] == str(caches / "gpu-sets" / f"gpu{gpu}" / var.lower()), (var, seen)


def test_the_time_limit_reaches_the_nodes(ray_cluster: str, tmp_path: Path, tiny_llama: Path) -> None:
    """The deadline travels with each task: with an empty database a Transformers setup trial is guessed
    at 30 s, so under a 25 s limit the node's runner begins neither cell (a node that did not hold the limit
    would run both, ok). No trial runs into the limit, so it ends well before it."""
    from tests.sweep.conftest import cpu_plan

    plan = cpu_plan(tmp_path, tiny_llama)
    db = tmp_path / "r.db"
    began = time.monotonic()
    result = joulebench(
        "sweep", str(plan), "--executor", "ray", "--ray-address", ray_cluster, "--db", str(db),
        "--time-limit", "25s", env=RAY_ENV,
    )  # fmt: skip
    assert result.rc == 3, result.err[-3000:]
    assert time.monotonic() - began < 25
    later = [line for line in result.out.splitlines() if line.startswith("later ")]
    assert len(later) == 2 and all("not begun" in line for line in later), result.out
    assert cells_in(db) == {}
