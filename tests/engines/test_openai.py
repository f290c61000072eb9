"""The openai engine against a real vLLM (CPU) OpenAI server on loopback, started through the adapter's
own ``server_cmd`` once for the module."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from joulebench.engines.base import (
    STAGE_ENGINE_INIT,
    STAGE_IMPORT,
    STAGE_MODEL_LOAD,
    EngineConfig,
    EngineInfo,
)
from joulebench.engines.openai import STAGE_SERVER_START, OpenAIEngine
from joulebench.engines.vllm_server_sleep import no_sleep_problem, sleep_calls, wake_calls
from joulebench.errors import UsageError
from joulebench.runner.marks import RecordingMarks
from joulebench.runner.prepare import with_options
from joulebench.workloads.arrivals import arrival_times_s
from joulebench.workloads.spec import Request, Response, SamplingSpec

pytestmark = pytest.mark.slow

PROMPTS = [
    "Give three tips for staying healthy.",
    "What are the three primary colors?",
    "Describe the structure of an atom.",
    "How can we reduce air pollution?",
    "Explain why the sky is blue.",
    "Write a short story about a robot.",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Served:
    engine: OpenAIEngine
    info: EngineInfo
    marks: RecordingMarks
    model: Path

    @property
    def endpoint(self) -> str:
        return self.engine.options.endpoint


@pytest.fixture(scope="module")
def served(tiny_llama: Path) -> Iterator[Served]:
    pytest.importorskip("vllm")
    port = free_port()
    argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(tiny_llama)]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--max-model-len", "512", "--dtype", "bfloat16"]
    argv += ["--enforce-eager"]  # no torch.compile warm-up: the server is up in seconds on CPU
    cmd = shlex.join(argv)
    options = {
        "endpoint": f"http://127.0.0.1:{port}/v1",
        "server_cmd": cmd,
        "server_env": {"VLLM_CPU_KVCACHE_SPACE": "1"},
        "startup_timeout_s": 300.0,
    }
    # as a run that sleeps starts it: vLLM's development routes on (test_sleep_routes_are_the_servers_own)
    options = with_options(options, OpenAIEngine.sleep_options([1, 2]))
    marks = RecordingMarks()
    engine = OpenAIEngine(EngineConfig(model=str(tiny_llama), device="cpu", options=options), marks)
    try:
        info = engine.setup()
        yield Served(engine, info, marks, tiny_llama)
    finally:
        engine.close()
    assert engine.server is not None and engine.server.returncode is not None
    with pytest.raises(ProcessLookupError):  # the whole process group is gone, engine core included
        os.killpg(engine.server.pid, 0)


def client(served: Served, **options: Any) -> tuple[OpenAIEngine, RecordingMarks]:
    """Another engine on the already running server (the path without server_cmd)."""
    marks = RecordingMarks()
    engine = OpenAIEngine(
        EngineConfig(model=str(served.model), device="cpu", options={"endpoint": served.endpoint, **options}),
        marks,
    )
    engine.setup()
    return engine, marks


def requests(n: int) -> list[Request]:
    return [Request(index=i, prompt=PROMPTS[i % len(PROMPTS)]) for i in range(n)]


def check_streamed(r: Response, max_tokens: int) -> None:
    assert r.error is None, r.error
    assert r.output_tokens == max_tokens
    assert r.finish_reason == "length"
    assert r.prompt_tokens is not None and r.prompt_tokens > 0
    assert len(r.token_times_s) == max_tokens  # one arrival per streamed token ID
    assert r.ttft_s is not None and r.ttft_s > 0
    assert r.submit_s is not None and r.first_token_s is not None and r.finish_s is not None
    assert r.submit_s < r.first_token_s <= r.finish_s
    assert all(d >= 0 for d in r.itl_s)
    assert sum(r.itl_s) > 0


def max_in_flight(responses: Sequence[Response]) -> int:
    events = []
    for r in responses:
        assert r.submit_s is not None and r.finish_s is not None
        events += [(r.submit_s, 1), (r.finish_s, -1)]
    current = peak = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):  # an end before a start at equal times
        current += step
        peak = max(peak, current)
    return peak


def test_setup_marks_server_stages_from_vllm_log(served: Served) -> None:
    import vllm

    m = served.marks
    start, ready = m.first(STAGE_SERVER_START) or pytest.fail("no server_start mark")
    init = m.first(STAGE_ENGINE_INIT) or pytest.fail("no engine_init mark")
    load = m.first(STAGE_MODEL_LOAD) or pytest.fail("no model_load mark")
    assert m.first(STAGE_IMPORT) is not None
    assert init[0] == start and init[1] == load[0]
    assert start < init[1] < load[1] <= ready
    # as the vllm adapter counts it: after the weights, KV cache, compile and the HTTP server are init again
    inits = [(s, e) for n, s, e in m.spans if n == STAGE_ENGINE_INIT]
    assert len(inits) == 2 and inits[1][0] == load[1] and inits[1][1] <= ready
    assert served.info.engine == "openai"
    assert served.info.version == vllm.__version__
    d = served.info.details
    assert d["server"] == "vllm" and d["served_model"] == str(served.model)
    assert d["return_token_ids"] is True
    assert "Application startup complete" in Path(d["server_log"]).read_text()
    events = d["server_log_events_s"]
    assert 0 < events["load_start"] <= events["weights_loaded"] <= events["app_ready"] <= ready - start


def test_completions_fixed_length_counts_equal_max_tokens(served: Served) -> None:
    responses = served.engine.generate(requests(3), SamplingSpec(max_output_tokens=12))
    assert [r.index for r in responses] == [0, 1, 2]
    for r in responses:
        check_streamed(r, 12)


def test_first_token_is_one_token(served: Served) -> None:
    r = served.engine.first_token(requests(1)[0], SamplingSpec(max_output_tokens=64))
    assert r.error is None and r.output_tokens == 1 and r.ttft_s is not None and r.ttft_s > 0


def test_chat_on_running_server_marks_no_server_stages(served: Served) -> None:
    engine, marks = client(served, api="chat")
    try:
        responses = engine.generate(requests(2), SamplingSpec(max_output_tokens=10))
    finally:
        engine.close()
    for r in responses:
        check_streamed(r, 10)
    assert marks.first(STAGE_SERVER_START) is None and marks.first(STAGE_MODEL_LOAD) is None
    assert marks.first(STAGE_IMPORT) is not None


def test_natural_length_counts_come_from_the_server(served: Served) -> None:
    responses = served.engine.generate(requests(3), SamplingSpec(max_output_tokens=24, length_mode="natural"))
    for r in responses:
        assert r.error is None
        assert 1 <= r.output_tokens <= 24
        assert len(r.token_times_s) == r.output_tokens
        assert r.finish_reason in ("stop", "length")


def test_max_concurrency_limits_requests_in_flight(served: Served) -> None:
    sampling = SamplingSpec(max_output_tokens=32)
    unlimited = served.engine.generate(requests(6), sampling)
    engine, _ = client(served, max_concurrency=2)
    try:
        limited = engine.generate(requests(6), sampling)
    finally:
        engine.close()
    for r in unlimited + limited:
        check_streamed(r, 32)
    assert max_in_flight(unlimited) > 2  # the measurement can see more than the limit
    assert max_in_flight(limited) == 2


@pytest.mark.parametrize("burstiness", [1.0, 0.5])
def test_request_rate_spaces_submissions_like_the_arrival_process(served: Served, burstiness: float) -> None:
    rate = 5.0
    engine, _ = client(served, request_rate=rate, burstiness=burstiness)
    try:
        responses = engine.generate(requests(5), SamplingSpec(max_output_tokens=4))
    finally:
        engine.close()
    expected_s = arrival_times_s(5, rate, burstiness, seed=0)
    submitted_s = [r.submit_s for r in responses]
    assert all(r.error is None for r in responses)
    assert None not in submitted_s
    for got, want in zip(submitted_s, expected_s, strict=True):
        assert got - submitted_s[0] == pytest.approx(want - expected_s[0], abs=0.15)
    assert submitted_s[-1] - submitted_s[0] > 0.3  # spaced out, not all at once


def test_failed_request_is_recorded_and_the_batch_goes_on(served: Served) -> None:
    too_long = Request(index=1, prompt="tips " * 2000)  # over max_model_len: the server answers 400
    responses = served.engine.generate([requests(1)[0], too_long], SamplingSpec(max_output_tokens=8))
    check_streamed(responses[0], 8)
    bad = responses[1]
    assert bad.error is not None and bad.error.startswith("HTTP 400")
    assert bad.finish_reason == "error" and bad.output_tokens == 0


def test_unknown_served_model_is_a_usage_error(served: Served) -> None:
    with pytest.raises(UsageError, match="does not serve 'other-model'"):
        client(served, served_model="other-model")


def test_a_hung_server_gives_timeout_errors(served: Served) -> None:
    # A stopped server still accepts connections (the kernel's backlog) but never answers.
    assert served.engine.server is not None and served.engine.server.pid is not None
    pgid = served.engine.server.pid
    engine, _ = client(served, request_timeout_s=0.5)
    os.killpg(pgid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        responses = engine.generate(requests(2), SamplingSpec(max_output_tokens=8))
        waited_s = time.monotonic() - t0
    finally:
        os.killpg(pgid, signal.SIGCONT)
        engine.close()
    errors = [r.error for r in responses]
    assert all(e is not None and e.startswith("timed out") for e in errors), errors
    assert all(r.finish_reason == "error" and r.output_tokens == 0 for r in responses)
    assert 0.5 <= waited_s < 5.0
    after = served.engine.generate(requests(1), SamplingSpec(max_output_tokens=4))  # it serves again
    check_streamed(after[0], 4)


def test_sleep_routes_are_the_servers_own(served: Served) -> None:
    """Every route the engine's sleep and wake would POST to is one this real vLLM server serves, with the
    query parameters it reads; the two that a CPU build can run, it runs: the weights read again from the
    model's folder (after level 2), then the prefix cache reset, and the server serves as before."""
    import httpx

    assert served.engine.options.server_env == {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_SERVER_DEV_MODE": "1"}
    root = served.engine.options.root
    spec = httpx.get(f"{root}/openapi.json", timeout=30.0).json()
    for level in (1, 2):
        for call in sleep_calls(level) + wake_calls(level):
            assert "post" in spec["paths"].get(call.path, {}), call.path
            declared = {p["name"] for p in spec["paths"][call.path]["post"].get("parameters", [])}
            if call.path == "/sleep":  # /wake_up reads its tags from the query string itself
                assert {name for name, _ in call.query} <= declared
    for call in wake_calls(2)[1:2] + wake_calls(2)[-1:]:
        assert call.path in ("/collective_rpc", "/reset_prefix_cache")
        served.engine.post_route(call.path, query=call.query, body=call.body)
    engine, _ = client(served)
    try:
        (r,) = engine.generate(requests(1), SamplingSpec(max_output_tokens=8, length_mode="fixed"))
        check_streamed(r, 8)
    finally:
        engine.close()


def test_a_server_the_engine_cannot_put_to_sleep_says_why(tiny_llama: Path) -> None:
    def why(device: str, **options: Any) -> str | None:
        return no_sleep_problem(EngineConfig(model=str(tiny_llama), device=device, options=options))

    assert "a vLLM server it starts (--server-cmd" in str(why("cuda"))
    assert "only a vLLM server" in str(why("cuda", server_cmd="python -m sglang.launch_server --port 1"))
    assert "CUDA or ROCm" in str(why("cpu", server_cmd="vllm serve m --enable-sleep-mode"))
    assert "--enable-sleep-mode: add it" in str(why("cuda", server_cmd="vllm serve m"))
    assert why("cuda", server_cmd="/opt/venv/bin/vllm serve m --enable-sleep-mode") is None
    module = f"{sys.executable} -m vllm.entrypoints.openai.api_server --model m --enable-sleep-mode"
    assert why("cuda", server_cmd=module) is None
    config = EngineConfig(
        model="m", device="cuda", options={"server_cmd": "vllm serve m --enable-sleep-mode"}
    )
    assert OpenAIEngine.sleep_levels(config) == (1, 2)
    assert OpenAIEngine.sleep_levels(replace(config, options={})) == ()
    # a run that sleeps keeps the user's own server environment beside the development mode
    assert with_options({"server_env": {"A": "1"}}, OpenAIEngine.sleep_options([2])) == {
        "server_env": {"A": "1", "VLLM_SERVER_DEV_MODE": "1"}
    }
