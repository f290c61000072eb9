"""vLLM's log records as stage edges: the message table, the handler, and the stage plan."""

from __future__ import annotations

import json
import logging
import logging.config
from pathlib import Path

import pytest

from joulebench.engines.vllm_events import (
    EVENTS,
    SeenEvent,
    StageLogHandler,
    engine_facts,
    logging_config,
    match_event,
    match_facts,
    plan_stages,
    read_events,
)

# vLLM 0.32's format strings with sample arguments, formatted as its loggers format them.
FORMATS: dict[str, tuple[str, tuple[object, ...]]] = {
    "load_start": ("Starting to load model %s...", ("meta-llama/Llama-3.2-1B",)),
    "weights_loaded": ("Loading weights took %.2f seconds", (1.234,)),
    "load_done": ("Model loading took %s GiB memory and %.6f seconds", ("2.32", 3.5)),
    "compile_done": ("%storch.compile took %.2f s in total", ("", 11.02)),
    "cpu_compile_start": ("Warming up model for the compilation...", ()),
    "cpu_compile_done": ("Warming up done.", ()),
    "graphs_done": ("Graph capturing finished in %.0f secs, took %.2f GiB", (7.4, 0.5)),
    "init_engine_done": (
        "init engine (profile, create kv cache, warmup model) took %.2f s (compilation: %.2f s)",
        (20.5, 11.0),
    ),
}
MESSAGES = {key: template % args for key, (template, args) in FORMATS.items()}
# Older releases' wording of the same events.
OLD_MESSAGES = {
    "load_start": "Loading model from scratch...",  # vLLM 0.26's v2 GPU model runner
    "load_done": "Model loading took 2.3185 GiB and 3.500000 seconds",
    "compile_done": "torch.compile takes 11.02 s in total",
}


def test_every_table_row_has_a_sample() -> None:
    assert {e.key for e in EVENTS} == set(FORMATS)


@pytest.mark.parametrize("key", sorted(MESSAGES))
def test_messages_match_their_row(key: str) -> None:
    event, seconds = match_event(MESSAGES[key]) or (None, None)
    assert event is not None and event.key == key
    if event.edge == "span_end":
        assert seconds is not None and seconds > 0


@pytest.mark.parametrize("key", sorted(OLD_MESSAGES))
def test_older_wording_matches(key: str) -> None:
    found = match_event(OLD_MESSAGES[key])
    assert found is not None and found[0].key == key


def test_other_messages_do_not_match() -> None:
    for message in ["Using max model len 512", "Warming up model for size 4", "Loading safetensors shards"]:
        assert match_event(message) is None


def test_the_format_strings_exist_in_the_installed_vllm() -> None:
    vllm = pytest.importorskip("vllm")
    root = Path(vllm.__file__).parent
    sources = {
        "load_start": "v1/worker/cpu_model_runner.py",
        "weights_loaded": "model_executor/model_loader/default_loader.py",
        "load_done": "v1/worker/gpu_model_runner.py",
        "compile_done": "compilation/monitor.py",
        "cpu_compile_start": "v1/worker/cpu_model_runner.py",
        "cpu_compile_done": "v1/worker/cpu_model_runner.py",
        "graphs_done": "v1/worker/gpu_model_runner.py",
    }
    for key, path in sources.items():
        assert f'"{FORMATS[key][0]}"' in (root / path).read_text(), key
    # this one is split over two literals in vLLM's source
    core = (root / "v1/engine/core.py").read_text()
    assert '"init engine (profile, create kv cache, warmup model) took "' in core


# What vLLM says of the KV cache it allocated: 0.32 in one record (CPU or GPU), 0.26 in two.
KV_CACHE_032 = (
    "%s KV cache size: %s tokens, Maximum concurrency for %s tokens per request: %.2fx",
    ("GPU", f"{1_048_576:,}", f"{2_176:,}", 481.88),
)
KV_CACHE_026 = [
    ("GPU KV cache size: %s tokens", (f"{1_048_576:,}",)),
    ("Maximum concurrency for %s tokens per request: %.2fx", (f"{2_176:,}", 481.88)),
]


def test_the_kv_cache_facts_are_read_from_either_wording() -> None:
    template, args = KV_CACHE_032
    assert match_facts(template % args) == {
        "kv_cache_tokens": 1_048_576.0,
        "kv_cache_max_concurrency": 481.88,
    }
    (size, size_args), (conc, conc_args) = KV_CACHE_026
    assert match_facts(size % size_args) == {"kv_cache_tokens": 1_048_576.0}
    assert match_facts(conc % conc_args) == {"kv_cache_max_concurrency": 481.88}
    assert match_facts("Using max model len 2176") == {}
    assert match_event(template % args) is None  # a fact, not a stage edge


def test_the_kv_cache_format_strings_exist_in_the_installed_vllm() -> None:
    vllm = pytest.importorskip("vllm")
    text = (Path(vllm.__file__).parent / "v1/core/kv_cache_utils.py").read_text()
    first, second = KV_CACHE_032[0].split(", ", 1)
    assert f'"{first}, "' in text and f'"{second}"' in text  # split over two literals in vLLM's source


def test_facts_reach_the_events_file_apart_from_the_stage_plan(tmp_path: Path) -> None:
    template, args = KV_CACHE_032
    events = _handled(
        tmp_path / "events.jsonl", [("Loading weights took %.2f seconds", 0.25), (template, *args)]
    )
    assert sorted(e.key for e in events) == ["kv_cache_max_concurrency", "kv_cache_tokens", "weights_loaded"]
    assert engine_facts(events) == {"kv_cache_tokens": 1_048_576.0, "kv_cache_max_concurrency": 481.88}
    plan = plan_stages(events, 0.0, max(e.t_s for e in events) + 1.0, expect_gpu=False)
    assert plan.seen == ("weights_loaded",)  # facts are no stage events


def test_a_restarted_engine_core_states_the_facts_again_and_the_last_counts() -> None:
    events = [
        SeenEvent("kv_cache_tokens", 5.0, 1, value=900.0),
        SeenEvent("kv_cache_tokens", 2.0, 1, value=1000.0),
        SeenEvent("load_start", 1.0, 1),
    ]
    assert engine_facts(events) == {"kv_cache_tokens": 900.0}


def _handled(path: Path, records: list[tuple[object, ...]]) -> list[SeenEvent]:
    """Log each ``(format, *args)`` at INFO through a :class:`StageLogHandler` writing ``path``; what it
    wrote."""
    logger = logging.getLogger("vllm.test_vllm_events")
    logger.propagate = False
    handler = StageLogHandler(str(path))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        for msg, *args in records:
            logger.info(msg, *args)
    finally:
        logger.removeHandler(handler)
    return read_events(path)


def seen(key: str, t_s: float, seconds: float | None = None, pid: int = 1) -> SeenEvent:
    return SeenEvent(key=key, t_s=t_s, pid=pid, seconds=seconds)


def test_gpu_plan_splits_engine_init_around_model_load() -> None:
    events = [
        seen("load_start", 12.0),
        seen("weights_loaded", 14.0, 1.5),
        seen("load_done", 14.5, 2.5),
        seen("compile_done", 30.0, 10.0),
        seen("graphs_done", 36.0, 5.0),
        seen("init_engine_done", 40.0, 25.0),
    ]
    plan = plan_stages(events, 10.0, 41.0, expect_gpu=True)
    assert plan.spans[:3] == (
        ("engine_init", 10.0, 12.0),
        ("model_load", 12.0, 14.5),
        ("engine_init", 14.5, 41.0),
    )
    assert set(plan.spans[3:]) == {
        ("load_weights", 12.5, 14.0),
        ("compile", 20.0, 30.0),
        ("cuda_graphs", 31.0, 36.0),
        ("profile_kv_warmup", 15.0, 40.0),
    }
    assert plan.missing == () and plan.model_load_end == "load_done"


def test_cpu_plan_ends_loading_at_the_weights() -> None:
    events = [
        seen("load_start", 2.0),
        seen("weights_loaded", 3.0, 0.5),
        seen("cpu_compile_start", 4.0),
        seen("cpu_compile_done", 9.0),
        seen("init_engine_done", 9.5, 6.0),
    ]
    plan = plan_stages(events, 1.0, 10.0, expect_gpu=False)
    assert ("model_load", 2.0, 3.0) in plan.spans
    assert ("compile", 4.0, 9.0) in plan.spans
    assert plan.model_load_end == "weights_loaded" and plan.missing == ()


def test_ranks_give_the_earliest_begin_and_the_latest_end() -> None:
    events = [
        seen("load_start", 2.0, pid=1),
        seen("load_start", 2.2, pid=2),
        seen("load_done", 5.0, 3.0, pid=2),
        seen("load_done", 5.4, 3.2, pid=1),
    ]
    plan = plan_stages(events, 1.0, 9.0, expect_gpu=True)
    assert ("model_load", 2.0, 5.4) in plan.spans


def test_without_load_events_engine_init_is_the_whole_call_and_the_gap_is_reported() -> None:
    plan = plan_stages([seen("init_engine_done", 8.0, 3.0)], 1.0, 9.0, expect_gpu=True)
    assert ("engine_init", 1.0, 9.0) in plan.spans
    assert not [s for s in plan.spans if s[0] == "model_load"]
    assert set(plan.missing) == {"load_start", "weights_loaded", "load_done"}
    assert plan.seen == ("init_engine_done",)


def test_handler_writes_matching_records_with_monotonic_times(tmp_path: Path) -> None:
    import time

    before = time.monotonic()
    records = [
        ("Starting to load model %s...", "x"),
        ("Using max model len %s", 512),
        ("Loading weights took %.2f seconds", 0.25),
    ]
    events = _handled(tmp_path / "events.jsonl", records)
    after = time.monotonic()
    assert [e.key for e in events] == ["load_start", "weights_loaded"]
    assert all(before - 0.01 <= e.t_s <= after + 0.01 for e in events)
    assert events[1].seconds == 0.25


def test_logging_config_keeps_vllms_console_and_adds_the_stage_handler(tmp_path: Path) -> None:
    base = {
        "version": 1,
        "formatters": {"vllm": {"format": "%(message)s"}},
        "handlers": {"vllm": {"class": "logging.StreamHandler", "formatter": "vllm"}},
        "loggers": {"vllm": {"handlers": ["vllm"], "level": "WARNING", "propagate": False}},
    }
    handler = {"class": "joulebench.engines.vllm_events.StageLogHandler", "events_path": str(tmp_path / "e")}
    config = logging_config(base, handler)
    assert config["loggers"]["vllm"]["handlers"] == ["vllm", "joulebench_stages"]
    # INFO records reach the stage handler; the console keeps showing WARNING and above
    assert config["loggers"]["vllm"]["level"] == "INFO"
    assert config["handlers"]["vllm"]["level"] == "WARNING"
    assert base["loggers"]["vllm"]["level"] == "WARNING"  # the base is not modified
    json.dumps(config)
    # built the way dictConfig builds it (without reconfiguring this process's logging)
    built = logging.config.DictConfigurator(config).configure_handler(
        dict(config["handlers"]["joulebench_stages"])
    )
    built.handle(logging.makeLogRecord({"msg": "Loading weights took %.2f seconds", "args": (1.0,)}))
    assert [e.key for e in read_events(tmp_path / "e")] == ["weights_loaded"]


def test_without_a_start_record_the_load_starts_where_vllms_stated_duration_says() -> None:
    # vLLM 0.26 on an H200 logged no start record through its v2 model runner; "Model loading took ...
    # and 2.5 seconds" still places the load's start
    events = [seen("weights_loaded", 14.0, 1.5), seen("load_done", 14.5, 2.5), seen("init_engine_done", 40.0)]
    plan = plan_stages(events, 10.0, 41.0, expect_gpu=True)
    assert plan.spans[:3] == (
        ("engine_init", 10.0, 12.0),
        ("model_load", 12.0, 14.5),
        ("engine_init", 14.5, 41.0),
    )
    assert "load_start" in plan.missing  # still said: the start came from the stated duration
