"""Engine names -> adapter classes. Adapter modules are imported only when their engine is asked for, so
listing the engines (``--help``, config validation) never imports torch or an engine."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from joulebench.errors import UsageError

if TYPE_CHECKING:
    from joulebench.engines.base import Engine

#: engine name -> (module, class) of its adapter
ENGINES: dict[str, tuple[str, str]] = {
    "transformers": ("joulebench.engines.transformers", "TransformersEngine"),
    "vllm": ("joulebench.engines.vllm", "VllmEngine"),
    "deepspeed": ("joulebench.engines.deepspeed", "DeepSpeedEngine"),
    "tensorrt-llm": ("joulebench.engines.tensorrt_llm", "TensorRTLLMEngine"),
    "openai": ("joulebench.engines.openai", "OpenAIEngine"),
    "sglang": ("joulebench.engines.sglang", "SGLangEngine"),
    "sglang-server": ("joulebench.engines.sglang", "SGLangServerEngine"),
}


def engine_names() -> tuple[str, ...]:
    return tuple(ENGINES)


def get_engine_class(name: str) -> type[Engine]:
    """The adapter class for ``name``; an unknown name is a :class:`UsageError` listing the known ones.

    Importing an adapter module never imports its engine (that happens in ``setup()``), so this works
    whether or not the engine is installed.
    """
    try:
        module_name, class_name = ENGINES[name]
    except KeyError:
        known = ", ".join(ENGINES)
        raise UsageError(f"unknown engine {name!r}; known engines: {known}") from None
    module = importlib.import_module(module_name)
    cls: type[Engine] = getattr(module, class_name)
    return cls
