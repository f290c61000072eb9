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


@pytest.mark.parametrize("name", ["transformers", "vllm", "deepspeed", "tensorrt-llm", "openai"])
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
        "engines = ('torch', 'transformers', 'vllm', 'deepspeed', 'tensorrt_llm')\n"
        "heavy = [m for m in engines if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
