"""Sleep levels 1 and 2 for a vLLM server that the ``openai`` engine starts (``server_cmd``), through the
server's own routes, as an operator's script puts a served model to sleep.

vLLM serves them only in development mode (``VLLM_SERVER_DEV_MODE=1``, which joulebench sets in the
server's environment for a run that sleeps; vLLM then warns that these routes are for development) and
sleeps only when started with ``--enable-sleep-mode``, which must be in ``server_cmd``: joulebench does not
rewrite a user's command. The calls are those the ``vllm`` adapter makes on ``LLM``, as routes:
``POST /sleep?level=N``, ``POST /wake_up`` (``?tags=weights`` then ``?tags=kv_cache`` around
``POST /collective_rpc {"method": "reload_weights"}`` after level 2), then ``POST /reset_prefix_cache``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from joulebench.engines.base import EngineConfig

DEV_MODE_ENV = "VLLM_SERVER_DEV_MODE"
SLEEP_FLAG = "--enable-sleep-mode"
SERVER_MODULE = "vllm.entrypoints.openai.api_server"


@dataclass(frozen=True)
class Call:
    """One POST to the server: its path, query parameters and JSON body."""

    path: str
    query: tuple[tuple[str, str], ...] = ()
    body: dict[str, Any] = field(default_factory=dict)


def sleep_calls(level: int) -> list[Call]:
    """Level 1 moves the weights to host memory and drops the KV cache; level 2 drops both."""
    return [Call("/sleep", (("level", str(level)),))]


def wake_calls(level: int) -> list[Call]:
    """After level 2 the weights are read again before the KV cache comes back, so that the server serves
    the same model as before, as a restart would; the prefix cache's blocks went with the KV cache."""
    if level == 2:
        calls = [
            Call("/wake_up", (("tags", "weights"),)),
            Call("/collective_rpc", body={"method": "reload_weights"}),
            Call("/wake_up", (("tags", "kv_cache"),)),
        ]
    else:
        calls = [Call("/wake_up")]
    return [*calls, Call("/reset_prefix_cache")]


def runs_vllm(argv: Sequence[str]) -> bool:
    """Whether a server command starts vLLM's OpenAI server (``vllm serve`` or its module)."""
    words = list(argv)
    if len(words) >= 2 and PurePath(words[0]).name == "vllm" and words[1] == "serve":
        return True
    return any(a == "-m" and b == SERVER_MODULE for a, b in pairwise(words))


def no_sleep_problem(config: EngineConfig) -> str | None:
    """Why the ``openai`` engine cannot put this server to sleep, or None where it can."""
    from joulebench.engines.server import parse_command

    command = config.options.get("server_cmd")
    if not command:
        return "the openai engine puts to sleep only a vLLM server it starts (--server-cmd 'vllm serve ...')"
    argv = parse_command(str(command))
    if not runs_vllm(argv):
        return "the openai engine puts to sleep only a vLLM server (--server-cmd 'vllm serve ...')"
    if config.device != "cuda":
        return "vLLM's sleep mode needs a CUDA or ROCm GPU (--device cuda): the CPU build has none"
    if SLEEP_FLAG not in argv:
        return f"a vLLM server sleeps only when started with {SLEEP_FLAG}: add it to --server-cmd"
    return None
