"""The engine worker: ``python -m joulebench.runner.worker [--result-fd N]``.

One process per setup trial (spawn -> import -> init -> load -> first token, then exit) and one warm
process per generation session (set up once, then one ``generate`` command per batch). The protocol is
in :mod:`joulebench.runner.protocol`. Without ``--result-fd`` events go to the original stdout and
everything else the process prints (engines log a lot, some from C) is sent to stderr instead.

``JOULEBENCH_WORKER_FAULT=TAG:ACTION[,...]`` injects a failure when the worker reaches ``TAG``
(``setup``, ``warmup``, ``repeat-K``, ``sleep``, ``wake``): ``kill`` (SIGKILL itself), ``exit``
(``os._exit(3)``), ``hang`` (sleep forever), ``raise``, or ``oom`` (raises torch's own
``OutOfMemoryError``, as a CUDA allocation that does not fit does); ``ACTION@R`` injects it into rank R
of an engine that runs as several ranks only. It exists to test the runner's recovery against a real
engine.
"""

from __future__ import annotations

import time

_T_START = time.monotonic()  # as early as possible: the interpreter start is part of the setup window

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
from typing import IO, Any  # noqa: E402

from joulebench.runner import protocol  # noqa: E402
from joulebench.runner.marks import RecordingMarks  # noqa: E402

FAULT_ENV = "JOULEBENCH_WORKER_FAULT"
STAGE_FILE_ENV = "JOULEBENCH_STAGE_FILE"


def _faults() -> dict[str, str]:
    """``{tag: action}`` for this process; an action ``ACTION@R`` is for rank R of a group only."""
    spec = os.environ.get(FAULT_ENV, "")
    pairs = (item.rsplit(":", 1) for item in spec.split(",") if ":" in item)
    rank = os.environ.get("RANK", "0")
    out = {}
    for tag, action in pairs:
        action, _, only = action.strip().partition("@")
        if not only or only == rank:
            out[tag.strip()] = action
    return out


def _inject(tag: str, faults: dict[str, str]) -> None:
    action = faults.get(tag)
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "exit":
        os._exit(3)
    elif action == "hang":
        while True:
            time.sleep(60)
    elif action == "raise":
        raise RuntimeError(f"injected fault at {tag}")
    elif action == "oom":
        import torch

        raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate 2.31 GiB (injected at {tag})")


def _channel(result_fd: int | None) -> IO[str]:
    if result_fd is not None:
        return os.fdopen(result_fd, "w", buffering=1)
    # Keep the real stdout for events only; send fd 1 (Python and C prints alike) to stderr.
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return out


class Worker:
    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.faults = _faults()
        self.engine: Any = None

    def emit(self, message: dict[str, Any]) -> None:
        self.out.write(protocol.dumps(message))
        self.out.flush()

    def setup(self, spec: dict[str, Any]) -> None:
        from joulebench.engines.base import STAGE_FIRST_TOKEN
        from joulebench.engines.registry import get_engine_class

        marks = RecordingMarks(os.environ.get(STAGE_FILE_ENV))
        _inject("setup", self.faults)
        config = protocol.engine_config_from_dict(spec["engine_config"])
        self.engine = get_engine_class(spec["engine"])(config, marks)
        info = self.engine.setup()
        ready_s = time.monotonic()
        first: dict[str, Any] | None = None
        if spec.get("first_token"):
            request = protocol.request_from_dict(spec["first_token"]["request"])
            sampling = protocol.sampling_from_dict(spec["first_token"]["sampling"])
            begin = time.monotonic()
            response = self.engine.first_token(request, sampling)
            # The stage ends at the first token when the engine says when that was, else at the return.
            end = response.first_token_s if response.first_token_s is not None else time.monotonic()
            marks.span(STAGE_FIRST_TOKEN, begin, end)
            first = protocol.response_to_dict(response)
        self.emit(
            {
                "event": "ready",
                "engine_info": protocol.engine_info_to_dict(info),
                "marks": [list(m) for m in marks.spans],
                "ready_s": ready_s,
                "first_token": first,
            }
        )

    def generate(self, command: dict[str, Any]) -> None:
        tag = str(command.get("tag", ""))
        _inject(tag, self.faults)
        requests = [protocol.request_from_dict(r) for r in command["requests"]]
        sampling = protocol.sampling_from_dict(command["sampling"])
        begin = time.monotonic()
        responses = self.engine.generate(requests, sampling)
        end = time.monotonic()
        self.emit(
            {
                "event": "generated",
                "tag": tag,
                "begin_s": begin,
                "end_s": end,
                "responses": [protocol.response_to_dict(r) for r in responses],
            }
        )

    def transition(self, command: dict[str, Any]) -> None:
        """``sleep`` or ``wake`` at a level: the call's begin and end, on the monitor's clock."""
        level = int(command["level"])
        call = self.engine.sleep if command["cmd"] == "sleep" else self.engine.wake_up
        _inject(str(command["cmd"]), self.faults)
        begin = time.monotonic()
        call(level)
        end = time.monotonic()
        self.emit({"event": f"{command['cmd']}-done", "begin_s": begin, "end_s": end})

    def serve(self, commands: IO[str]) -> None:
        for line in commands:
            if not line.strip():
                continue
            command = json.loads(line)
            if command.get("cmd") == "close":
                break
            if command.get("cmd") == "generate":
                self.generate(command)
            elif command.get("cmd") in ("sleep", "wake"):
                self.transition(command)
            else:
                raise ValueError(f"unknown command {command.get('cmd')!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m joulebench.runner.worker")
    parser.add_argument("--result-fd", type=int, default=None, help="write events to this fd, not stdout")
    parser.add_argument("--spec", default=None, help="read the spec from this file, not stdin's first line")
    args = parser.parse_args(argv)
    out = _channel(args.result_fd)
    worker = Worker(out)
    worker.emit({"event": "started", "pid": os.getpid(), "t_s": _T_START})
    where = "setup"
    try:
        if args.spec:
            with open(args.spec, encoding="utf-8") as f:
                spec = json.load(f)
        else:
            spec = json.loads(sys.stdin.readline())
        worker.setup(spec)
        where = "generate"
        worker.serve(sys.stdin)
        where = "close"
        worker.engine.close()
    except BaseException as exc:  # reported, then the process ends: the manager never reuses a failed worker
        from joulebench.errors import UsageError, is_out_of_memory

        traceback.print_exc(file=sys.stderr)
        sys.stderr.flush()
        message: dict[str, object] = {
            "event": "error",
            "where": where,
            "error": f"{type(exc).__name__}: {exc}".strip(),
        }
        # Bad input found only where the engine is imported (an unknown option): the run stops, exit 2.
        message["usage"] = isinstance(exc, UsageError)
        message["out_of_memory"] = is_out_of_memory(exc)
        with contextlib.suppress(OSError):
            worker.emit(message)
        return 1
    worker.emit({"event": "closed"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
