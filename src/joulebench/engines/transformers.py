"""Hugging Face transformers: ``AutoModelForCausalLM.from_pretrained`` + ``generate``, on CPU or GPU.

Stages of ``setup()``:

* ``import``: importing torch and transformers, including the lazily loaded model and tokenizer classes.
* ``engine_init``: device set-up before any weight is read. On CUDA: CUDA initialisation and the context
  of the first device (a first allocation, synchronised); on CPU there is no device to start. Then the
  tokenizer load.
* ``model_load``: ``from_pretrained`` until the model is on its device(s) and in eval mode (synchronised
  on CUDA).

Options (``EngineConfig.options``):

* ``attn_implementation``: ``eager``, ``sdpa`` or ``flash_attention_2`` (needs the flash-attn package).
* ``compile``: ``True`` for the static-cache compiled variant: ``cache_implementation="static"`` and
  ``torch.compile`` of the model's forward through ``generate``'s own compilation (``CompileConfig``),
  which compiles the decoding step and runs the prefill eagerly (``compile_mode``: ``reduce-overhead``,
  i.e. CUDA graphs, on CUDA; PyTorch's ``default`` on CPU). Compilation is lazy: it happens in the first
  ``generate`` of each new shape, so it falls in the setup trial's first-token stage and the warm-up, not
  in ``setup()``.
* ``loader``: ``device_map`` (the default: ``from_pretrained(device_map=device)`` puts each weight on the
  device as it is read) or ``to_device`` (``from_pretrained`` onto the CPU, then ``model.to(device)``, as a
  plain ``from_pretrained`` call does); one process on one device only.
* ``tp_plan``: ``"auto"`` for transformers' own tensor parallelism, as ``tensor_parallel`` ranks that the
  runner starts as ``torchrun`` would (:mod:`joulebench.runner.ranks`); on CUDA or, over gloo, on CPU.

Multi-GPU without torchrun: ``tensor_parallel > 1`` loads with ``device_map="auto"`` over the first
``tensor_parallel`` visible GPUs. That splits the layers between the GPUs (pipeline style, one GPU busy at
a time); it is not tensor parallelism, and the results record it as ``details["parallel"]``.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from joulebench.engines.base import (
    DTYPES,
    STAGE_ENGINE_INIT,
    STAGE_IMPORT,
    STAGE_MODEL_LOAD,
    Engine,
    EngineConfig,
    EngineInfo,
    check_options,
    first_line,
)
from joulebench.errors import MissingDependency, ModelError, UsageError, require
from joulebench.measurement.markers import marked
from joulebench.workloads.spec import Request, Response, SamplingSpec

if TYPE_CHECKING:
    from joulebench.measurement.markers import StageMarks

OPTIONS = ("attn_implementation", "compile", "compile_mode", "tp_plan", "loader")
LOADERS = ("device_map", "to_device")
NO_REASON = ""
ATTN_IMPLEMENTATIONS = ("eager", "sdpa", "flash_attention_2")


def torch_dtype(name: str) -> Any:
    """``"auto"`` (the checkpoint's dtype) or a ``torch.dtype``."""
    if name not in DTYPES:
        raise UsageError(f"unknown dtype {name!r}; use one of {', '.join(DTYPES)}")
    if name == "auto":
        return "auto"
    import torch

    return getattr(torch, name)


def dtype_kwarg(transformers_version: str) -> str:
    """transformers 4.56 renamed ``torch_dtype`` to ``dtype``."""
    major, minor = (int(p) for p in transformers_version.split(".")[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


def init_cuda(device_count_needed: int, device_index: int = 0) -> None:
    """Start CUDA and the context of the device this process computes on (a rank's own), so that
    model_load holds no context creation."""
    import torch

    if not torch.cuda.is_available():
        raise UsageError("device 'cuda' asked for, but torch sees no CUDA device; use --device cpu")
    if torch.cuda.device_count() < device_count_needed:
        raise UsageError(
            f"tensor_parallel={device_count_needed} needs {device_count_needed} GPUs, "
            f"torch sees {torch.cuda.device_count()}"
        )
    torch.cuda.init()  # type: ignore[no-untyped-call]
    torch.cuda.set_device(device_index)
    torch.zeros(1, device="cuda")
    torch.cuda.synchronize()


def load_tokenizer(model: str) -> Any:
    from transformers import AutoTokenizer

    from joulebench.engines.hf_generate import prepare_tokenizer

    try:
        return prepare_tokenizer(AutoTokenizer.from_pretrained(model))
    except OSError as exc:
        raise ModelError(f"cannot load the tokenizer of {model!r}: {first_line(exc)}") from exc


class TransformersEngine(Engine):
    name: ClassVar[str] = "transformers"
    extra: ClassVar[str] = "hf"
    package: ClassVar[str] = "transformers"

    setup_factor_options: ClassVar[Mapping[str, Mapping[str, Mapping[str, Any]]]] = {
        "loader": {name: {"loader": name} for name in LOADERS}
    }

    def __init__(self, config: EngineConfig, marks: StageMarks) -> None:
        super().__init__(config, marks)
        self.model: Any = None
        self.tokenizer: Any = None
        self._load_kwargs: tuple[dict[str, Any], str] = ({}, "none")

    @classmethod
    def ranks(cls, config: EngineConfig) -> int:
        # tp_plan shards the model over processes; device_map="auto" places it from one process
        return config.tensor_parallel if config.options.get("tp_plan") is not None else 1

    @classmethod
    def check_config(cls, config: EngineConfig) -> None:
        check_options(config.options, OPTIONS, cls.name)
        loader = config.options.get("loader", "device_map")
        if loader not in LOADERS:
            raise UsageError(f"unknown loader {loader!r} for transformers; use one of {', '.join(LOADERS)}")
        if loader == "to_device" and (
            config.tensor_parallel > 1 or config.options.get("tp_plan") is not None
        ):
            raise UsageError("loader to_device loads one process on one device: not with tensor_parallel > 1")

    def setup(self) -> EngineInfo:
        cfg = self.config
        self.check_config(cfg)
        attn = cfg.options.get("attn_implementation")
        if attn is not None and attn not in ATTN_IMPLEMENTATIONS:
            known = ", ".join(ATTN_IMPLEMENTATIONS)
            raise UsageError(f"unknown attn_implementation {attn!r}; use one of {known}")
        if attn == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
            raise MissingDependency("flash-attn", hint="pip install flash-attn --no-build-isolation")
        if cfg.device not in ("cuda", "cpu"):
            raise UsageError(f"unknown device {cfg.device!r}; use cuda or cpu")
        tp_plan = cfg.options.get("tp_plan") is not None
        if cfg.tensor_parallel > 1 and cfg.device != "cuda" and not tp_plan:
            raise UsageError("tensor_parallel > 1 without tp_plan splits the layers over GPUs: --device cuda")

        with marked(self.marks, STAGE_IMPORT):
            torch = require("torch", extra=self.extra)
            transformers = require("transformers", extra=self.extra)
            from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: F401 - loads lazy modules

        dtype = torch_dtype(cfg.dtype)
        with marked(self.marks, STAGE_ENGINE_INIT):
            if cfg.device == "cuda":
                init_cuda(cfg.tensor_parallel, int(os.environ.get("LOCAL_RANK", "0")) if tp_plan else 0)
            self.tokenizer = load_tokenizer(cfg.model)

        kwargs, parallel = self._placement()
        if attn is not None:
            kwargs["attn_implementation"] = attn
        kwargs[dtype_kwarg(transformers.__version__)] = dtype
        self._load_kwargs = (kwargs, parallel)
        with marked(self.marks, STAGE_MODEL_LOAD):
            model = self._load()

        compiled = bool(cfg.options.get("compile", False))
        if compiled:
            self._compile(model)
        self.model = model
        return EngineInfo(
            engine=self.name,
            version=transformers.__version__,
            details={
                "torch": torch.__version__,
                "device": str(model.device),
                "dtype": str(model.dtype).removeprefix("torch."),
                "attn_implementation": getattr(model.config, "_attn_implementation", None),
                "compile": compiled,
                "parallel": parallel,
            },
        )

    def _load(self) -> Any:
        """The model read from its folder and placed (setup, and waking from sleep level 2)."""
        import torch
        from transformers import AutoModelForCausalLM

        cfg = self.config
        kwargs, parallel = self._load_kwargs
        try:
            model: Any = AutoModelForCausalLM.from_pretrained(cfg.model, **kwargs)
        except OSError as exc:
            raise ModelError(f"cannot load model {cfg.model!r}: {first_line(exc)}") from exc
        if parallel == "to_device":
            model = model.to(torch.device(cfg.device))
        model.eval()
        if cfg.device == "cuda":
            torch.cuda.synchronize()
        return model

    @classmethod
    def sleep_levels(cls, config: EngineConfig) -> tuple[int, ...]:
        # Transformers has no sleep mode; joulebench's levels do what vLLM's do: 1 moves the weights to host
        # memory (nothing to move on a CPU), 2 drops them and reads them again on waking. One process on one
        # device, uncompiled: a sharded or compiled model is not put back by a reload.
        if cls.no_sleep_reason(config) != NO_REASON:
            return ()
        return (1, 2) if config.device == "cuda" else (2,)

    @classmethod
    def no_sleep_reason(cls, config: EngineConfig) -> str:
        if config.tensor_parallel > 1 or config.options.get("tp_plan") is not None:
            return "transformers sleeps in one process on one device: not with tensor_parallel > 1"
        if config.options.get("compile"):
            return "transformers sleeps uncompiled only: a reload would not bring back the compiled model"
        return NO_REASON

    def sleep(self, level: int) -> None:
        import torch

        if self.model is None:
            raise UsageError("sleep() before setup()")
        if level == 1:
            self.model = self.model.to(torch.device("cpu"))
            free_accelerator_memory()
        else:
            self.model = None
            free_accelerator_memory()

    def wake_up(self, level: int) -> None:
        import torch

        if level == 1:
            self.model = self.model.to(torch.device(self.config.device))
            torch.cuda.synchronize()
        else:
            self.model = self._load()

    def _placement(self) -> tuple[dict[str, Any], str]:
        """``from_pretrained`` placement arguments, and what the results call that placement."""
        cfg = self.config
        if cfg.options.get("tp_plan") is not None:
            return self._tp_plan(cfg.options["tp_plan"]), "tp_plan"
        if cfg.tensor_parallel > 1:
            import torch

            max_memory = {
                i: torch.cuda.get_device_properties(i).total_memory for i in range(cfg.tensor_parallel)
            }
            return {"device_map": "auto", "max_memory": max_memory}, "device_map_auto"
        if cfg.options.get("loader") == "to_device":
            return {}, "to_device"  # onto the CPU first, as a plain from_pretrained call
        return {"device_map": cfg.device}, "none"

    def _tp_plan(self, plan: Any) -> dict[str, Any]:
        import inspect

        import transformers

        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world != self.config.tensor_parallel or world < 2:
            raise UsageError(
                f"tp_plan runs as tensor_parallel ranks (at least 2), each a process that the runner starts; "
                f"tensor_parallel is {self.config.tensor_parallel} and this process has WORLD_SIZE={world}"
            )
        config_cls = getattr(transformers, "DistributedConfig", None)
        if config_cls is not None and "tp_plan" in inspect.signature(config_cls).parameters:
            return {"distributed_config": config_cls(tp_plan=plan)}
        return {"tp_plan": plan}

    def _compile(self, model: Any) -> None:
        """A static KV cache (fixed shapes) and a compiled forward, the way transformers does it."""
        import transformers

        default_mode = "reduce-overhead" if self.config.device == "cuda" else "default"
        mode = self.config.options.get("compile_mode", default_mode)
        model.generation_config.cache_implementation = "static"
        compile_config = getattr(transformers, "CompileConfig", None)
        if compile_config is None:  # transformers < 4.48: the older documented recipe
            import torch

            model.forward = torch.compile(model.forward, mode=mode, fullgraph=True)
            return
        # generate() compiles the decoding step itself when the cache is static. (Compiling model.forward
        # as well, the older recipe, breaks with CUDA graphs: outputs get overwritten by the next replay.)
        config = compile_config(mode=mode)
        if self.config.device != "cuda":
            config._compile_all_devices = True  # generate() compiles only on accelerators unless told
        model.generation_config.compile_config = config

    def generate(self, requests: Sequence[Request], sampling: SamplingSpec) -> list[Response]:
        from joulebench.engines.hf_generate import generate_batch

        if self.model is None:
            raise UsageError("generate() before setup()")
        return generate_batch(
            self.model,
            self.tokenizer,
            requests,
            sampling,
            device=self.model.device,
            static_cache=bool(self.config.options.get("compile", False)),
        )

    def close(self) -> None:
        self.model = None
        self.tokenizer = None
        free_accelerator_memory()


def free_accelerator_memory() -> None:
    import gc
    import sys

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
