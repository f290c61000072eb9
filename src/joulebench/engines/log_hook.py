"""A folder of one engine start's own log records: the logging config that the engine's processes load
(named by an environment variable, set while the engine starts them) and the events file that the stage
handler appends to (engines/vllm_events.py, engines/sglang_events.py). vLLM and SGLang both configure
logging in every process they start from such a file."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

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
