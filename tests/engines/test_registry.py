from __future__ import annotations

import subprocess
import sys

import pytest

from joulebench.engines.base import Engine
from joulebench.engines.registry import ENGINES, get_engine_class
from joulebench.errors import UsageError


def test_unknown_engine_is_a_usage_error_listing_the_known_ones() -> None:
    with pytest.raises(UsageError) as info:
        get_engine_class("vllm-turbo")
    message = str(info.value)
    assert "vllm-turbo" in message
    for name in ENGINES:
        assert name in message
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    "name", ["transformers", "vllm", "deepspeed", "tensorrt-llm", "openai", "sglang", "sglang-server"]
)
def test_each_engine_resolves_to_its_adapter(name: str) -> None:
    cls = get_engine_class(name)
    assert issubclass(cls, Engine)
    assert cls.name == name
    assert cls.extra


def test_resolving_an_adapter_imports_no_engine() -> None:
    # Adapters import their engine in setup(): listing or resolving them must stay cheap.
    code = (
        "import sys\n"
        "from joulebench.engines.registry import ENGINES, get_engine_class\n"
        "for name in ENGINES: get_engine_class(name)\n"
        "engines = ('torch', 'transformers', 'vllm', 'deepspeed', 'tensorrt_llm', 'sglang')\n"
        "heavy = [m for m in engines if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_each_engine_says_its_own_traits() -> None:
    """The runner and the sweep ask the engine class; nothing is kept about an engine elsewhere."""
    from joulebench.engines.registry import engine_names, get_engine_class

    traits = {n: get_engine_class(n) for n in engine_names()}
    assert {n: c.package for n, c in traits.items()} == {
        "transformers": "transformers", "vllm": "vllm", "deepspeed": "deepspeed",
        "tensorrt-llm": "tensorrt_llm", "openai": "httpx", "sglang": "sglang", "sglang-server": "sglang",
    }  # fmt: skip
    assert [n for n, c in traits.items() if "cpu" not in c.devices] == ["tensorrt-llm"]
    assert [n for n, c in traits.items() if c.serves_over_http] == ["openai", "sglang-server"]
    assert traits["vllm"].typical_gpu_tokens_per_s > traits["transformers"].typical_gpu_tokens_per_s


def test_compile_caches_follow_the_engines_own_variables(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from joulebench.runner.cache_state import compile_cache_dirs, compile_cache_state

    monkeypatch.setenv("VLLM_CACHE_ROOT", str(tmp_path / "v"))
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))
    assert compile_cache_dirs("vllm") == [tmp_path / "v" / "torch_compile_cache"]
    assert compile_cache_dirs("deepspeed") == [tmp_path / "ext"]
    assert compile_cache_dirs("transformers") == [] and compile_cache_state("transformers") == "none"
    assert compile_cache_state("vllm") == "cold"
    (tmp_path / "v" / "torch_compile_cache" / "graph").mkdir(parents=True)
    assert compile_cache_state("vllm") == "warm"
