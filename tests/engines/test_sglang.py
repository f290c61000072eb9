"""The sglang adapters against SGLang 0.5.14's own API, kept as data (tests/engines/data/sglang-0.5.14.json,
written by extract_sglang_api.py beside it from the wheel's sources): every keyword the adapter passes and
every name it reads must be SGLang's. SGLang cannot run on this CPU (its kernels are CUDA builds), so the
engine itself runs on the GPU machine only; what runs here is the adapter's side of each seam, and the
stage records through Python's real logging, loaded from the config file as SGLang loads it."""

from __future__ import annotations

import ast
import json
import shlex
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from joulebench.engines.base import EngineConfig
from joulebench.engines.sglang import (
    FROM_FLAGS,
    LogHook,
    SGLangEngine,
    SGLangServerEngine,
    Streamed,
    sampling_params,
    server_args,
    server_config,
    sleep_calls,
    wake_calls,
)
from joulebench.engines.sglang_events import plan_stages, sglang_log_event, sglang_message_event
from joulebench.errors import UsageError
from joulebench.runner.marks import RecordingMarks
from joulebench.runner.prepare import with_options
from joulebench.workloads.spec import Request, SamplingSpec

API = json.loads((Path(__file__).parent / "data" / "sglang-0.5.14.json").read_text())
ADAPTER = Path(__file__).parents[2] / "src" / "joulebench" / "engines" / "sglang.py"


def _config(**options: Any) -> EngineConfig:
    return EngineConfig(
        model="/models/llama-3.2-1b", device="cuda", dtype="bfloat16", tensor_parallel=2, max_batch_size=256,
        max_model_len=4096, seed=7, options=options,
    )  # fmt: skip


def _engine_calls() -> dict[str, set[str]]:
    """Each ``self.engine.NAME(...)`` call and attribute read in the adapter, with its keywords."""
    calls: dict[str, set[str]] = {}
    for node in ast.walk(ast.parse(ADAPTER.read_text())):
        if not isinstance(node, ast.Attribute):
            continue
        owner = node.value
        if (
            isinstance(owner, ast.Attribute)
            and owner.attr == "engine"
            and getattr(owner.value, "id", "") == "self"
        ):
            calls.setdefault(node.attr, set())
    for node in ast.walk(ast.parse(ADAPTER.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in calls:
            calls[node.func.attr] |= {k.arg for k in node.keywords if k.arg}
    return calls


def test_the_engine_is_called_only_by_names_sglang_has() -> None:
    calls = _engine_calls()
    assert {"async_generate", "generate", "loop"} <= set(calls)  # the scan sees the adapter's calls
    for name, keywords in calls.items():
        assert name in API["engine_methods"] + API["engine_attributes"], name
        if name in API["engine_methods"]:
            assert keywords <= set(API["engine_parameters"][name]), (name, keywords)
    # the engine closes with shutdown(), which close() reaches through a local name
    assert "shutdown" in API["engine_methods"] and "engine.shutdown()" in ADAPTER.read_text()


def test_every_server_arg_and_sampling_param_is_sglangs() -> None:
    kwargs = server_args(_config(mem_fraction_static=0.8, attention_backend="triton"))
    assert set(kwargs) <= set(API["server_args_fields"])
    assert kwargs["tp_size"] == 2 and kwargs["random_seed"] == 7 and kwargs["max_running_requests"] == 256
    assert set(FROM_FLAGS) <= set(API["server_args_fields"])
    for levels in SGLangEngine.setup_factor_options.values():
        for options in levels.values():
            assert set(options) <= set(API["server_args_fields"])
            if "load_format" in options:
                assert options["load_format"] in API["load_formats"]
    spec = SamplingSpec(max_output_tokens=500, temperature=0.8, top_p=0.95, length_mode="fixed", seed=3)
    params = sampling_params(spec)
    assert set(params) <= set(API["sampling_params"])
    assert params == {"temperature": 0.8, "top_p": 0.95, "max_new_tokens": 500, "ignore_eos": True}
    assert "sampling_seed" not in params  # the run is seeded once, through random_seed
    # the result fields the adapter reads are SGLang's meta_info keys
    assert {"completion_tokens", "prompt_tokens", "finish_reason"} <= set(API["meta_info"])


def test_sleep_and_wake_are_sglangs_own_calls_offline_and_served() -> None:
    every = set(API["memory_tags"])
    for level in (1, 2):
        calls = sleep_calls(level) + wake_calls(level, "/models/llama-3.2-1b")
        for name, kwargs in calls:
            assert set(kwargs) <= set(API["engine_parameters"][name]), (name, kwargs)  # Engine.<name>(...)
            assert set(kwargs) <= set(API["server_routes"][f"/{name}"]), (name, kwargs)  # POST /<name>
            assert set(kwargs.get("tags", [])) <= every
        # asleep, all its memory is released (no tags: every kind); awake, all of it is back
        assert sleep_calls(level) == [("release_memory_occupation", {})]
        resumed = [set(k.get("tags", every)) for n, k in calls if n == "resume_memory_occupation"]
        assert set().union(*resumed) == every
    # after level 2 the weights are read again into their memory before the rest comes back
    assert [n for n, _ in wake_calls(2, "/m")] == [
        "resume_memory_occupation", "update_weights_from_disk", "resume_memory_occupation",
    ]  # fmt: skip
    assert wake_calls(2, "/m")[0][1] == {"tags": ["weights"]} and wake_calls(2, "/m")[1][1] == {
        "model_path": "/m"
    }


def test_an_engine_that_will_sleep_starts_with_sglangs_memory_saver() -> None:
    for levels, backup in (([1], True), ([2], False)):
        offline = SGLangEngine.sleep_options(levels)
        assert offline == {"enable_memory_saver": True, "enable_weights_cpu_backup": backup}
        assert set(offline) <= set(API["server_args_fields"])
        # the server gets them as launch flags, beside the user's own server_args
        options = with_options(
            {"server_args": {"mem_fraction_static": 0.8}}, SGLangServerEngine.sleep_options(levels)
        )
        words = shlex.split(server_config(_config(**options)).options["server_cmd"])
        assert "--mem-fraction-static" in words and "--enable-memory-saver" in words
        assert ("--enable-weights-cpu-backup" in words) is backup
        assert API["launch_server_flags"]["--enable-memory-saver"]["bool"]
        assert API["launch_server_flags"]["--enable-weights-cpu-backup"]["bool"]
    for cls in (SGLangEngine, SGLangServerEngine):
        with pytest.raises(UsageError, match="enable_weights_cpu_backup"):
            cls.sleep_options([1, 2])
        assert cls.sleep_levels(_config()) == (1, 2)
        assert cls.sleep_levels(replace(_config(), device="cpu")) == ()


def test_options_set_by_joulebench_flags_are_refused() -> None:
    with pytest.raises(UsageError, match=r"tp_size \(use --tensor-parallel\)"):
        SGLangEngine.check_config(_config(tp_size=4))
    with pytest.raises(UsageError, match="stream must be true or false"):
        SGLangEngine.check_config(_config(stream="yes"))
    SGLangEngine.check_config(_config(stream=False, mem_fraction_static=0.8))
    assert "stream" not in server_args(_config(stream=False))


def test_the_server_is_launched_with_flags_its_parser_has() -> None:
    config = _config(
        endpoint="http://127.0.0.1:30000/v1",
        server_args={"disable_cuda_graph": True, "mem_fraction_static": 0.8},
    )
    o = server_config(config).options
    words = shlex.split(o["server_cmd"])
    assert words[:3] == [sys.executable, "-m", "sglang.launch_server"]
    flags = API["launch_server_flags"]
    given: dict[str, str | None] = {}
    rest = words[3:]
    while rest:
        flag = rest.pop(0)
        assert flag in flags, flag
        given[flag] = None if flags[flag]["bool"] else rest.pop(0)
    assert given == {
        "--model-path": "/models/llama-3.2-1b", "--dtype": "bfloat16", "--tp-size": "2",
        "--random-seed": "7", "--device": "cuda", "--max-running-requests": "256",
        "--context-length": "4096", "--host": "127.0.0.1", "--port": "30000", "--log-level": "info",
        "--disable-cuda-graph": None, "--mem-fraction-static": "0.8",
    }  # fmt: skip
    assert "server_args" not in o and o["endpoint"] == "http://127.0.0.1:30000/v1"
    SGLangServerEngine.check_config(config)  # the openai engine's options hold
    for bad, words_ in [
        ({"server_cmd": "python -m sglang.launch_server"}, "builds its own server_cmd"),
        ({"server_args": {"tp_size": 2}}, "set from joulebench's own flags: tp_size"),
        ({"server_args": "--tp-size 2"}, "must be a mapping"),
        ({"request_rate": "fast"}, "request_rate must be a number"),
    ]:
        with pytest.raises(UsageError, match=words_):
            SGLangServerEngine.check_config(_config(**bad))
    engine = SGLangServerEngine(config, RecordingMarks())
    assert engine.name == "sglang-server" and engine.options.server_cmd == o["server_cmd"]


def _filled(message: str) -> str:
    """A message of the data with its placeholders as SGLang fills them on one GPU."""
    message = message.replace("Capture X X ", "Capture target decode CUDA graph ")
    return message.replace("Capture X CUDA", "Capture target prefill CUDA").replace("X", "1")


def test_each_setup_record_of_sglangs_source_is_its_event() -> None:
    keys = {_filled(m): sglang_message_event(_filled(m)) for m in API["log_messages"]}
    assert sorted(k for k in keys.values() if k) == sorted(
        ["dist_init", "load_start", "load_done", "graphs_start", "graphs_done", "graphs_start", "graphs_done",
         "app_ready"]
    )  # fmt: skip
    assert keys[_filled("Init torch distributed ends. elapsed=X s, mem usage=X GB")] is None
    for message, key in keys.items():  # a server's log line: the same message after SGLang's prefix
        assert sglang_log_event(f"[2026-12-06 20:01:10 TP0] {message}") == key
    assert sglang_message_event("prompt: Load weight begin. avail mem=1 GB") is None


EMIT = r"""
import json, logging, logging.config, os, sys, time
# as SGLang's configure_logger does in each of its processes
with open(os.environ["SGLANG_LOGGING_CONFIG_PATH"], encoding="utf-8") as file:
    logging.config.dictConfig(json.loads(file.read()))
runner = logging.getLogger("sglang.srt.model_executor.model_runner")
for message in json.loads(sys.argv[1]):
    runner.info(message)
    time.sleep(0.05)
runner.error("a record the console still shows")
"""


def test_records_reach_the_events_file_through_sglangs_logging_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os
    import time

    monkeypatch.delenv("SGLANG_LOGGING_CONFIG_PATH", raising=False)
    messages = [_filled(m) for m in API["log_messages"] if "ready to roll" not in m]
    hook = LogHook("error")
    try:
        start_s = time.monotonic()
        with hook.installed():
            env = dict(os.environ)  # what SGLang's processes inherit while Engine(...) starts them
        assert "SGLANG_LOGGING_CONFIG_PATH" not in os.environ  # and only then
        proc = subprocess.run(
            [sys.executable, "-c", EMIT, json.dumps(messages)], env=env, capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        end_s = time.monotonic()
        assert proc.returncode == 0, proc.stderr
        # the console keeps SGLang's Engine default: errors only, in its format
        assert proc.stderr.strip().endswith("] a record the console still shows")
        assert "Load weight" not in proc.stderr
        events = hook.events()
    finally:
        hook.remove()
    assert not hook.dir.exists()
    seen = [e.key for e in sorted(events, key=lambda e: e.t_s)]
    assert seen == ["dist_init", "load_start", "load_done", "graphs_start", "graphs_done", "graphs_start",
                    "graphs_done"]  # fmt: skip
    assert all(start_s <= e.t_s <= end_s for e in events)
    by_key = {e.key: e for e in events}
    assert by_key["load_done"].seconds == 1.0  # "elapsed=1 s"
    plan = plan_stages(events, start_s, end_s, expect_gpu=True)
    assert plan.missing == () and plan.model_load_end == "load_done"
    spans = {(name, round(b, 6), round(e, 6)) for name, b, e in plan.spans}
    load = (by_key["load_start"].t_s, by_key["load_done"].t_s)
    assert ("model_load", round(load[0], 6), round(load[1], 6)) in spans
    assert ("engine_init", round(start_s, 6), round(load[0], 6)) in spans
    assert ("engine_init", round(load[1], 6), round(end_s, 6)) in spans
    graphs = sorted(e.t_s for e in events if e.key.startswith("graphs"))
    assert ("cuda_graphs", round(graphs[0], 6), round(graphs[-1], 6)) in spans


def test_a_users_own_logging_config_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    own = {
        "version": 1,
        "handlers": {"file": {"class": "logging.FileHandler", "filename": str(tmp_path / "sglang.log")}},
        "loggers": {"sglang": {"handlers": ["file"], "level": "DEBUG"}},
    }
    path = tmp_path / "logging.json"
    path.write_text(json.dumps(own))
    monkeypatch.setenv("SGLANG_LOGGING_CONFIG_PATH", str(path))
    hook = LogHook("error")
    try:
        with hook.installed():
            config = json.loads(Path(os.environ["SGLANG_LOGGING_CONFIG_PATH"]).read_text())
        assert os.environ["SGLANG_LOGGING_CONFIG_PATH"] == str(path)  # put back
    finally:
        hook.remove()
    assert config["handlers"]["file"]["filename"] == str(tmp_path / "sglang.log")
    assert config["loggers"]["sglang"]["handlers"] == ["file", "joulebench_stages"]
    assert config["handlers"]["file"]["level"] == "DEBUG"  # its own level, whatever the logger's becomes
    assert config["handlers"]["joulebench_stages"]["events_path"] == str(hook.events_path)


def test_a_broken_logging_config_of_the_users_is_refused_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    monkeypatch.setenv("SGLANG_LOGGING_CONFIG_PATH", str(tmp_path / "missing.json"))
    refused = r"^SGLANG_LOGGING_CONFIG_PATH=.*missing.json: cannot read it"
    with pytest.raises(UsageError, match=refused):
        LogHook("error")  # before any folder of its own is made
    assert os.environ["SGLANG_LOGGING_CONFIG_PATH"] == str(tmp_path / "missing.json")
    with pytest.raises(UsageError, match=refused):  # and before a run row exists
        SGLangEngine.check_config(_config())


def test_plan_without_load_records_is_one_engine_init() -> None:
    plan = plan_stages([], 10.0, 40.0, expect_gpu=False)
    assert plan.spans == (("engine_init", 10.0, 40.0),)
    assert plan.missing == ("load_start", "load_done") and plan.model_load_end is None


def _chunk(tokens: int, reason: dict[str, Any] | None = None, text: str | None = None) -> dict[str, Any]:
    """An output dict of ``async_generate(stream=True)``, as SGLang 0.5.14's tokenizer manager builds it
    (non-incremental streaming: ``output_ids`` and ``completion_tokens`` so far)."""
    meta = {"id": "r1", "finish_reason": reason, "prompt_tokens": 9, "completion_tokens": tokens,
            "cached_tokens": 0, "weight_version": "default", "num_retractions": 0}  # fmt: skip
    return {"text": text, "output_ids": list(range(tokens)), "meta_info": meta}


def test_streamed_outputs_give_every_tokens_arrival() -> None:
    state = Streamed(submit_s=100.0)
    state.feed(_chunk(1), 100.5)
    state.feed(_chunk(3), 100.7)  # two tokens in one chunk (stream_interval 2)
    state.feed(_chunk(3), 100.75)  # nothing new
    state.feed(_chunk(5, {"type": "length", "length": 5}, text="hello"), 101.0)
    r = state.response(Request(0, "hi", prompt_tokens=8))
    assert r.output_tokens == 5 and r.prompt_tokens == 9 and r.finish_reason == "length" and r.error is None
    assert r.token_times_s == (100.5, 100.7, 100.7, 101.0, 101.0)
    assert r.ttft_s == pytest.approx(0.5) and r.tpot_s == pytest.approx(0.125)
    assert r.text == "hello"
    stopped = Streamed(0.0)
    stopped.feed(_chunk(2, {"type": "stop", "matched": 128009}), 1.0)
    assert stopped.response(Request(1, "x")).finish_reason == "stop"
    aborted = Streamed(0.0)
    aborted.feed(_chunk(1, {"type": "abort", "message": "out of memory"}), 1.0)
    r = aborted.response(Request(2, "x"))
    assert r.finish_reason == "error" and r.error == "SGLang aborted the request: out of memory"
    cut = Streamed(0.0)
    cut.feed(_chunk(2), 1.0)
    assert cut.response(Request(3, "x")).error == "SGLang's stream ended without a finish reason"


def test_a_whole_batch_result_gives_counts_and_its_end() -> None:
    out = _chunk(4, {"type": "length", "length": 4}, text="abcd")
    r = Streamed(10.0, end_s=12.0).take_final(out).response(Request(0, "hi"))
    assert (r.output_tokens, r.finish_reason, r.submit_s, r.finish_s) == (4, "length", 10.0, 12.0)
    assert r.first_token_s is None and r.token_times_s == ()
