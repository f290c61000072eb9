"""An SGLang server's setup records, as SGLang 0.5.14 writes them (the messages of its model_runner.py and
http_server.py, in its logging format `[%Y-%m-%d %H:%M:%S(.ms)( TPn)] message`), mapped to the events the
openai adapter turns into stages; vLLM's records are not taken for SGLang's, nor the other way round."""

from __future__ import annotations

from joulebench.engines.openai import server_log_event
from joulebench.engines.server import LogLine, first_times
from joulebench.engines.sglang_events import sglang_log_event

# one launch of `python -m sglang.launch_server` on one GPU, tensor parallel rank 0, in order
LAUNCH = [
    "[2026-12-06 20:01:02] server_args=ServerArgs(model_path='/models/llama-3.2-1b', tp_size=1, port=30000)",
    "[2026-12-06 20:01:09 TP0] Init torch distributed begin.",
    "[2026-12-06 20:01:10 TP0] Init torch distributed ends. mem usage=0.00 GB",
    "[2026-12-06 20:01:10 TP0] Load weight begin. avail mem=78.52 GB",
    "[2026-12-06 20:01:13 TP0] Load weight end. elapsed=2.61 s, type=LlamaForCausalLM, avail mem=76.14 GB, "
    "mem usage=2.38 GB.",
    "[2026-12-06 20:01:13 TP0] KV Cache is allocated. dtype: torch.bfloat16, #tokens: 2000000, "
    "K size: 30.52 GB, V size: 30.52 GB",
    "[2026-12-06 20:01:14 TP0] Capture target decode CUDA graph begin. backend=full, num_tokens_per_bs=1, "
    "bs=[1, 2, 4, 8], avail mem=14.90 GB",
    "[2026-12-06 20:01:21 TP0] Capture target decode CUDA graph end. elapsed=6.93 s, mem usage=0.41 GB, "
    "avail mem=14.49 GB.",
    "[2026-12-06 20:01:24] INFO:     Uvicorn running on http://127.0.0.1:30000 (Press CTRL+C to quit)",
    "[2026-12-06 20:01:25] The server is fired up and ready to roll!",
]


def test_each_setup_record_of_a_launch_is_its_event() -> None:
    keys = [sglang_log_event(line) for line in LAUNCH]
    assert keys == [None, "dist_init", None, "load_start", "load_done", None, "graphs_start", "graphs_done",
                    None, "app_ready"]  # fmt: skip
    # milliseconds on (SGLANG_LOG_MS) and data-parallel ranks change only the prefix
    assert sglang_log_event("[2026-12-06 20:01:10.123 DP0 TP1] Load weight begin. avail mem=78.52 GB") == (
        "load_start"
    )


def test_the_server_path_reads_them_in_the_order_they_were_read() -> None:
    lines = [LogLine(float(k), text) for k, text in enumerate(LAUNCH)]
    events = first_times(lines, server_log_event)
    assert events["load_start"] < events["load_done"] < events["graphs_start"] < events["app_ready"]
    # a message quoted inside another line is not the record (a request's text, an argument)
    assert sglang_log_event("prompt: 'Load weight begin. avail mem=1 GB'") is None


def test_vllm_records_are_not_sglang_ones() -> None:
    vllm = [
        "INFO 12-06 20:01:10 [gpu_model_runner.py:2000] Starting to load model /models/llama-3.2-1b...",
        "INFO 12-06 20:01:13 [default_loader.py:270] Loading weights took 2.61 seconds",
        "INFO:     Application startup complete.",
    ]
    assert [sglang_log_event(line) for line in vllm] == [None, None, None]
    assert server_log_event(vllm[-1]) == "app_ready"  # the vLLM table still has it
