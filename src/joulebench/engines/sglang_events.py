"""SGLang's own log records that mark a server's setup, as SGLang 0.5 writes them (``model_runner.py``'s
``load_model`` and CUDA-graph capture, ``http_server.py``'s last word before it serves), so that a server
started with ``--engine openai --server-cmd "python -m sglang.launch_server ..."`` gets its stages from
them as a vLLM server does. Keys are the ones the openai adapter reads for vLLM (``load_start``,
``load_done``, ``app_ready``); the others are kept with the run (``server_log_events_s``).

SGLang prefixes each record with ``[%Y-%m-%d %H:%M:%S(.ms)( TPn)( DPn)]``; a pattern matches the message
wherever it stands in the line, as the adapter stamps each line with the instant it was read.
"""

from __future__ import annotations

import re

EVENTS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("dist_init", re.compile(r"\] Init torch distributed begin\.")),
    ("load_start", re.compile(r"\] Load weight begin\. ")),
    ("load_done", re.compile(r"\] Load weight end\. elapsed=")),
    # "Capture {role} decode {backend} begin." (CUDA graph, or the CPU and NPU runners' own names)
    ("graphs_start", re.compile(r"\] Capture [\w ]*?(?:CUDA graph|cuda graph|graph) begin\. ")),
    ("graphs_done", re.compile(r"\] Capture [\w ]*?(?:CUDA graph|cuda graph|graph) end\. elapsed=")),
    ("app_ready", re.compile(r"\] The server is fired up and ready to roll!")),
)


def sglang_log_event(text: str) -> str | None:
    """The event key of one line of an SGLang server's log, or None."""
    for key, pattern in EVENTS:
        if pattern.search(text):
            return key
    return None
