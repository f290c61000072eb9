"""Engines that run as several processes, one per GPU (DeepSpeed's tensor parallelism, Transformers'
``tp_plan``): the manager starts the ranks itself, as ``deepspeed`` or ``torchrun`` would.

Every rank gets the same spec and the same commands, and runs the same batches in lockstep (their
collectives need it). Rank 0 answers for the group: its marks, its responses, its timings; a command is done
when every rank has answered. A rank that fails fails the group, and the whole group is killed: the others
would wait in a collective until the timeout otherwise.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from joulebench.runner.process import WorkerFailed, WorkerProcess

if TYPE_CHECKING:
    from joulebench.engines.base import EngineConfig

POLL_S = 0.2  # how long one rank is waited on before the next is looked at
RENDEZVOUS_ADDR = "127.0.0.1"


def free_port() -> int:
    """A TCP port free on this host now, for the ranks' rendezvous (``MASTER_PORT``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rank_env(rank: int, ranks: int, port: int) -> dict[str, str]:
    """What ``torchrun`` and the ``deepspeed`` launcher set for each of ``ranks`` processes on one host
    (``LOCAL_SIZE`` is the launcher's; DeepSpeed's shared-memory all-reduce on CPUs reads it)."""
    return {
        "RANK": str(rank),
        "LOCAL_RANK": str(rank),
        "WORLD_SIZE": str(ranks),
        "LOCAL_WORLD_SIZE": str(ranks),
        "LOCAL_SIZE": str(ranks),
        "MASTER_ADDR": RENDEZVOUS_ADDR,
        "MASTER_PORT": str(port),
    }


class WorkerGroup:
    """``ranks`` worker processes that act as one :class:`WorkerProcess`."""

    def __init__(
        self,
        spec: dict[str, Any],
        *,
        log_dir: Path,
        name: str,
        env: dict[str, str] | None,
        ranks: int,
        leftovers: Callable[[str, int], Sequence[str]] | None = None,
    ) -> None:
        """``leftovers(addr, port)``: files the ranks leave behind, removed once they have exited."""
        port = free_port()
        self.leftovers = list(leftovers(RENDEZVOUS_ADDR, port)) if leftovers else []
        self.workers = [
            WorkerProcess(
                spec, log_dir=log_dir, name=f"{name}-rank{r}", env={**(env or {}), **rank_env(r, ranks, port)}
            )
            for r in range(ranks)
        ]

    @property
    def leader(self) -> WorkerProcess:
        return self.workers[0]

    @property
    def pid(self) -> int | None:
        return self.leader.pid

    @property
    def alive(self) -> bool:
        return all(w.alive for w in self.workers)

    @property
    def started_s(self) -> float | None:
        return self.leader.started_s

    def start(self) -> float:
        """Spawn every rank; returns the instant just before the first spawn."""
        spawn_s = self.leader.start()
        for w in self.workers[1:]:
            w.start()
        return spawn_s

    def send(self, message: dict[str, Any]) -> None:
        for w in self.workers:
            w.send(message)

    def wait_for(self, event: str, timeout_s: float) -> dict[str, Any]:
        """Rank 0's ``event`` once every rank has sent it; :class:`WorkerFailed` (naming the rank) if one
        fails or the time runs out."""
        deadline = time.monotonic() + timeout_s
        got: dict[int, dict[str, Any]] = {}
        while len(got) < len(self.workers):
            for r, w in enumerate(self.workers):
                if r in got:
                    continue
                last = time.monotonic() >= deadline
                try:
                    message = w.poll_for(event, min(deadline, time.monotonic() + POLL_S), deadline=last)
                except WorkerFailed as exc:
                    self.kill()
                    raise WorkerFailed(
                        f"rank {r}: {exc}",
                        timed_out=exc.timed_out,
                        usage=exc.usage,
                        out_of_memory=exc.out_of_memory,
                    ) from exc
                if message is not None:
                    got[r] = message
        return got[0]

    def close(self, timeout_s: float = 60.0) -> None:
        for w in self.workers:  # every rank at once: one may wait for the others as it lets go
            w.send({"cmd": "close"})
        try:
            for w in self.workers:
                w.close(timeout_s)
        finally:
            self._remove_leftovers()

    def kill(self) -> None:
        for w in self.workers:
            w.kill()
        self._remove_leftovers()

    def _remove_leftovers(self) -> None:
        if any(w.alive for w in self.workers):
            return  # a rank still running may still use them
        for path in self.leftovers:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def worker_for(
    engine: str, config: EngineConfig, spec: dict[str, Any], *, log_dir: Path, name: str, env: dict[str, str]
) -> WorkerProcess | WorkerGroup:
    """One worker process, or a group of them for an engine that runs as ranks the runner starts."""
    from joulebench.engines.registry import get_engine_class

    cls = get_engine_class(engine)
    ranks = cls.ranks(config)
    env = {**config.env, **env}
    if ranks > 1:
        leftovers = partial(cls.rank_leftovers, config)
        return WorkerGroup(spec, log_dir=log_dir, name=name, env=env, ranks=ranks, leftovers=leftovers)
    return WorkerProcess(spec, log_dir=log_dir, name=name, env=env)
