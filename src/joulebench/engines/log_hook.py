"""A folder of one engine start's own log records: the logging config that the engine's processes load
(named by an environment variable, set while the engine starts them) and the events file that the stage
handler appends to (engines/vllm_events.py, engines/sglang_events.py). vLLM and SGLang both configure
logging in every process they start from such a file."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from joulebench.errors import UsageError

if TYPE_CHECKING:
    from joulebench.engines.vllm_events import SeenEvent


class LogHook:
    def __init__(self, engine: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"joulebench-{engine}-"))
        self.events_path = self.dir / "events.jsonl"

    def events(self) -> list[SeenEvent]:
        """What the engine's processes logged that the handler matched."""
        from joulebench.engines.vllm_events import read_events

        return read_events(self.events_path)

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def user_config(env_var: str, environ: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """The user's own logging config, named by ``env_var`` in ``environ`` (this process's environment by
    default), which joulebench extends with its handler; None where there is none. One the engine itself
    could not load is refused here, naming the variable, before the engine starts (the engine would fail on
    it in a child process, with less said)."""
    name = (os.environ if environ is None else environ).get(env_var)
    if not name:
        return None
    try:
        config = json.loads(Path(name).read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"{env_var}={name}: cannot read it ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise UsageError(f"{env_var}={name}: not a JSON logging config ({exc})") from None
    if not isinstance(config, dict) or config.get("version") != 1:
        raise UsageError(
            f'{env_var}={name}: not a logging dictConfig (a JSON object with "version": 1, as Python\'s '
            "logging.config.dictConfig takes)"
        )
    return config


@contextmanager
def environment(env: Mapping[str, str]) -> Iterator[None]:
    """``env`` set in this process (and so in the processes it starts) for the duration, then put back."""
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
