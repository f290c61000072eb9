"""Request bodies and server-sent-event parsing of the openai engine, and its option checks. The chunk
lines are in the exact shape vLLM's OpenAI server streams them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from joulebench.engines.base import EngineConfig
from joulebench.engines.openai import OpenAIEngine, OpenAIOptions
from joulebench.engines.openai_stream import StreamState, request_body
from joulebench.errors import UsageError
from joulebench.workloads.spec import Request, SamplingSpec


def data(obj: dict[str, Any]) -> str:
    return "data: " + json.dumps(obj)


def completion_chunk(text: str, ids: list[int] | None = None, finish: str | None = None) -> str:
    choice: dict[str, Any] = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
    if ids is not None:
        choice["token_ids"] = ids
    return data({"id": "cmpl-1", "object": "text_completion", "choices": [choice]})


def usage_chunk(prompt: int, completion: int) -> str:
    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    return data({"id": "cmpl-1", "choices": [], "usage": usage})


def run(lines: list[str], start_s: float = 10.0) -> StreamState:
    state = StreamState(submit_s=start_s)
    for i, line in enumerate(lines):
        state.feed(line, start_s + 0.1 * (i + 1))
    state.close(start_s + 0.1 * (len(lines) + 1))
    return state


def test_completions_body_carries_sampling_and_vllm_extensions() -> None:
    body = request_body("completions", "m", "Hi", SamplingSpec(max_output_tokens=7, seed=3), True, {"n": 1})
    assert body == {
        "model": "m",
        "prompt": "Hi",
        "max_tokens": 7,
        "temperature": 0.8,
        "top_p": 0.95,
        "stream": True,
        "stream_options": {"include_usage": True},
        "seed": 3,
        "ignore_eos": True,
        "return_token_ids": True,
        "n": 1,
    }


def test_chat_body_in_natural_mode_has_no_ignore_eos() -> None:
    sampling = SamplingSpec(max_output_tokens=5, length_mode="natural", seed=None)
    body = request_body("chat", "m", "Hi", sampling)
    assert body["messages"] == [{"role": "user", "content": "Hi"}]
    assert "prompt" not in body and "ignore_eos" not in body and "seed" not in body
    assert "return_token_ids" not in body


def test_token_ids_give_one_arrival_per_token_and_usage_gives_the_count() -> None:
    lines = [
        completion_chunk("ers", [343]),
        "",
        completion_chunk("", [97, 98]),  # two tokens, no complete character yet
        ": keep-alive",
        completion_chunk(" B", [430], finish="length"),
        usage_chunk(8, 4),
        "data: [DONE]",
    ]
    state = run(lines)
    r = state.response(Request(index=5, prompt="p"))
    assert r.error is None and r.index == 5
    assert r.output_tokens == 4 and r.prompt_tokens == 8 and r.finish_reason == "length"
    assert r.token_times_s == pytest.approx((10.1, 10.3, 10.3, 10.5))
    assert r.ttft_s == pytest.approx(0.1) and r.finish_s == pytest.approx(10.5)
    assert r.text == "ers B"
    assert not state.ids_disagree


def test_without_token_ids_each_text_chunk_is_one_arrival() -> None:
    lines = [
        data({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
        data({"choices": [{"index": 0, "delta": {"content": "Hel"}}]}),
        data({"choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]}),
        usage_chunk(3, 2),
        "data: [DONE]",
    ]
    r = run(lines).response(Request(index=0, prompt="p", prompt_tokens=99))
    assert r.output_tokens == 2 and r.prompt_tokens == 3 and r.finish_reason == "stop"
    assert r.token_times_s == pytest.approx((10.2, 10.3))


def test_disagreeing_token_ids_are_flagged() -> None:
    state = run([completion_chunk("a", [1]), usage_chunk(1, 2), "data: [DONE]"])
    assert state.ids_disagree
    assert state.response(Request(index=0, prompt="p")).output_tokens == 2


@pytest.mark.parametrize(
    ("lines", "error"),
    [
        ([completion_chunk("a", [1]), completion_chunk("b", [2])], "stream ended before [DONE]"),
        (["data: {not json"], "malformed stream chunk"),
        ([data({"error": {"message": "EngineCore died"}}), "data: [DONE]"], "server error: Engine"),
        ([completion_chunk("a"), "data: [DONE]"], "no usage.completion_tokens"),
    ],
)
def test_broken_streams_become_response_errors(lines: list[str], error: str) -> None:
    r = run(lines).response(Request(index=0, prompt="p"))
    assert r.error is not None and error in r.error
    assert r.finish_reason == "error"


def test_a_cut_stream_keeps_the_tokens_it_streamed() -> None:
    r = run([completion_chunk("a", [1]), completion_chunk("b", [2])]).response(Request(index=0, prompt="p"))
    assert r.output_tokens == 2 and len(r.token_times_s) == 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"api": "rest"}, "api must be one of completions, chat"),
        ({"endpoint": "127.0.0.1:8000"}, "endpoint must be an http"),
        ({"max_concurrency": 0}, "max_concurrency must be"),
        ({"request_rate": 0}, "request_rate must be > 0"),
        ({"burstiness": -1.0}, "burstiness must be > 0"),
        ({"server_cmd": "vllm serve 'x"}, "cannot parse the server command"),
        ({"max_inflight": 2}, "unknown openai engine option"),
        ({"request_seed": "yes"}, "request_seed must be true or false"),
        ({"return_token_ids": 1}, "return_token_ids must be true or false"),
    ],
)
def test_bad_options_are_usage_errors(options: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        OpenAIOptions.from_options(options)


def test_root_strips_the_api_version() -> None:
    assert OpenAIOptions(endpoint="http://h:8000/v1/").root == "http://h:8000"
    assert OpenAIOptions(endpoint="http://h:8000").root == "http://h:8000"


def test_server_load_start_from_either_gpu_model_runner() -> None:
    from joulebench.engines.openai import vllm_log_event
    from joulebench.engines.server import LogLine, first_times

    v1 = "(EngineCore_DP0 pid=7) INFO [gpu_model_runner.py:5251] Starting to load model /m..."
    v2 = "(EngineCore_DP0 pid=7) INFO [model_runner.py:284] Loading model from scratch..."
    for text in (v1, v2):
        assert first_times([LogLine(1.5, text)], vllm_log_event) == {"load_start": 1.5}


@pytest.mark.parametrize(("request_seed", "sent"), [(False, None), (True, 7)])
def test_the_runs_seed_goes_to_the_server_per_request_only_when_asked(
    request_seed: bool, sent: int | None
) -> None:
    # vLLM samples seeded requests one by one on a slower path: sending the seed would be measured as the
    # server's own cost, so the run's seed stays out of the requests unless the user asks for it
    engine = OpenAIEngine(EngineConfig(model="m", options={"request_seed": request_seed}), marks=None)  # type: ignore[arg-type]
    engine.served_model = "m"
    body = engine.body(Request(0, "Hi"), SamplingSpec(max_output_tokens=4, seed=7))
    assert body.get("seed") == sent
    assert body["temperature"] == 0.8 and body["top_p"] == 0.95 and body["max_tokens"] == 4
