"""DeepSpeed inference: a Hugging Face model wrapped by ``deepspeed.init_inference``, generating through
the wrapped model's ``generate`` (the code shared with the transformers adapter).

Stages of ``setup()``:

* ``import``: importing torch, transformers (with its model and tokenizer classes) and deepspeed.
* ``engine_init``: DeepSpeed's accelerator detection; on CUDA, the device's context; with more than one
  rank, ``deepspeed.init_distributed`` (a single rank needs no process group and DeepSpeed starts none);
  then the tokenizer load.
* ``model_load``: ``from_pretrained`` (to host memory) and ``init_inference``, which injects kernels or
  shards the layers and moves the model to the device. When kernel injection fails, the failed attempt
  stays inside ``model_load`` (it is also reported as the sub-stage ``kernel_inject_attempt``), followed by
  a fresh load for the fallback, because a failed injection can leave the model half replaced.

The code path taken is ``details["path"]``:

* ``kernel-inject``: ``replace_with_kernel_inject=True`` worked (DeepSpeed's fused inference kernels).
* ``auto-tp``: kernel injection is off or failed and ``tensor_parallel > 1``: DeepSpeed's automatic tensor
  parallelism shards the linear layers. Llama 3 (grouped-query attention) fails kernel injection with
  "Merging tensors is not allowed here" and lands here.
* ``plain``: kernel injection is off or failed with one rank: the model runs as transformers runs it, inside
  DeepSpeed's wrapper (on DeepSpeed's CPU accelerator, which has no inference kernels, the path of one rank).

Options: ``kernel_inject``: ``"auto"`` (default: try, fall back), ``True`` (fail if it fails) or ``False``.
More than one rank (``tensor_parallel > 1``): the runner starts one worker per rank, as the ``deepspeed``
launcher would (:mod:`joulebench.runner.ranks`); the adapter refuses to run as fewer ranks than asked.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from joulebench.engines.base import (
    STAGE_ENGINE_INIT,
    STAGE_IMPORT,
    STAGE_MODEL_LOAD,
    TORCH_COMPILE_CACHE_VARS,
    Engine,
    EngineConfig,
    EngineInfo,
    cache_dir,
    check_options,
    first_line,
)
from joulebench.engines.transformers import (
    dtype_kwarg,
    free_accelerator_memory,
    load_tokenizer,
    torch_dtype,
)
from joulebench.errors import EngineError, ModelError, UsageError, require
from joulebench.measurement.markers import marked
from joulebench.workloads.spec import Request, Response, SamplingSpec

if TYPE_CHECKING:
    from joulebench.measurement.markers import StageMarks

OPTIONS = ("kernel_inject",)
STAGE_KERNEL_INJECT_ATTEMPT = "kernel_inject_attempt"


def inference_path(kernel_inject: bool, tp_size: int) -> str:
    if kernel_inject:
        return "kernel-inject"
    return "auto-tp" if tp_size > 1 else "plain"


class DeepSpeedEngine(Engine):
    name: ClassVar[str] = "deepspeed"
    extra: ClassVar[str] = "deepspeed"
    package: ClassVar[str] = "deepspeed"
    typical_setup_s: ClassVar[float] = 45.0

    compile_cache_vars = (*TORCH_COMPILE_CACHE_VARS, "TORCH_EXTENSIONS_DIR")

    @classmethod
    def compile_cache_dirs(cls, environ: Mapping[str, str] | None = None) -> list[Path]:
        return [cache_dir("TORCH_EXTENSIONS_DIR", "torch_extensions", environ)]

    def __init__(self, config: EngineConfig, marks: StageMarks) -> None:
        super().__init__(config, marks)
        self.engine: Any = None
        self.tokenizer: Any = None

    @classmethod
    def ranks(cls, config: EngineConfig) -> int:
        return config.tensor_parallel  # one process per shard: the runner starts them as the launcher would

    @classmethod
    def rank_leftovers(cls, config: EngineConfig, addr: str, port: int) -> list[str]:
        # DeepSpeed's all-reduce on CPUs (ops/csrc/cpu/comm/shm.cpp) gives each rank a POSIX shared-memory
        # segment (its allreduce_workspace: 2 x 1 MiB + 2 x 32 MiB buffers), named after the user, the
        # rendezvous and the rank, and never unlinks it: each run would leave 66 MiB per rank in /dev/shm,
        # in memory, until the host has none left.
        if config.device != "cpu":
            return []
        prefix = f"/dev/shm/deepspeed_allreduce_buffer_{os.getuid()}_{addr}_{port}"
        return [f"{prefix}_{rank}" for rank in range(cls.ranks(config))]

    @classmethod
    def check_config(cls, config: EngineConfig) -> None:
        check_options(config.options, OPTIONS, cls.name)

    def setup(self) -> EngineInfo:
        cfg = self.config
        self.check_config(cfg)
        inject = cfg.options.get("kernel_inject", "auto")
        if inject not in ("auto", True, False):
            raise UsageError(f"kernel_inject must be auto, true or false, not {inject!r}")
        if cfg.device not in ("cuda", "cpu"):
            raise UsageError(f"unknown device {cfg.device!r}; use cuda or cpu")
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if cfg.tensor_parallel > 1 and world != cfg.tensor_parallel:
            raise UsageError(
                f"tensor_parallel={cfg.tensor_parallel} needs as many ranks, started by the deepspeed "
                f"launcher or torchrun; this process has WORLD_SIZE={world}"
            )

        with marked(self.marks, STAGE_IMPORT):
            torch = require("torch", extra=self.extra)
            transformers = require("transformers", extra=self.extra)
            from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: F401 - loads lazy modules

            deepspeed = require("deepspeed", extra=self.extra)

        dtype = torch_dtype(cfg.dtype)
        with marked(self.marks, STAGE_ENGINE_INIT):
            accelerator = self._init_accelerator(deepspeed, world)
            self.tokenizer = load_tokenizer(cfg.model)

        details: dict[str, Any] = {"torch": torch.__version__, "transformers": transformers.__version__}
        with marked(self.marks, STAGE_MODEL_LOAD):
            engine, injected = self._load(deepspeed, dtype, inject, details)
            if cfg.device == "cuda":
                torch.cuda.synchronize()
        self.engine = engine
        details.update(
            path=inference_path(injected, cfg.tensor_parallel),
            accelerator=accelerator,
            device=str(engine.module.device),
            dtype=str(engine.module.dtype).removeprefix("torch."),
            world_size=world,
        )
        return EngineInfo(engine=self.name, version=deepspeed.__version__, details=details)

    def _init_accelerator(self, deepspeed: Any, world: int) -> str:
        from deepspeed.accelerator import get_accelerator

        accelerator = get_accelerator()
        name = accelerator.device_name()
        if self.config.device == "cuda":
            if name != "cuda":
                raise UsageError(f"DeepSpeed found no CUDA device (accelerator {name!r}); use --device cpu")
            import torch

            accelerator.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            torch.zeros(1, device=accelerator.current_device_name())
            torch.cuda.synchronize()
        elif name != "cpu":
            # DeepSpeed picks its accelerator itself; DS_ACCELERATOR=cpu forces the CPU one
            raise UsageError(f"DeepSpeed chose accelerator {name!r}; set DS_ACCELERATOR=cpu for --device cpu")
        if world > 1:
            # DeepSpeed's CPU accelerator asks for oneCCL; gloo ships with torch
            deepspeed.init_distributed(dist_backend="gloo" if self.config.device == "cpu" else None)
        return str(name)

    def _load(self, deepspeed: Any, dtype: Any, inject: Any, details: dict[str, Any]) -> tuple[Any, bool]:
        """``from_pretrained`` + ``init_inference``, with the kernel-injection fallback."""
        if inject is False:
            return self._init_inference(deepspeed, self._from_pretrained(dtype), False), False
        start_s = time.monotonic()
        try:
            return self._init_inference(deepspeed, self._from_pretrained(dtype), True), True
        except ModelError:
            raise
        except Exception as exc:  # DeepSpeed fails injection with assertions, ValueError, NotImplementedError
            self.marks.span(STAGE_KERNEL_INJECT_ATTEMPT, start_s, time.monotonic())
            if inject is True:
                raise EngineError(f"DeepSpeed kernel injection failed: {first_line(exc)}") from exc
            details["kernel_inject_error"] = f"{type(exc).__name__}: {first_line(exc)}"
        free_accelerator_memory()
        return self._init_inference(deepspeed, self._from_pretrained(dtype), False), False

    def _from_pretrained(self, dtype: Any) -> Any:
        import transformers
        from transformers import AutoModelForCausalLM

        try:
            model = AutoModelForCausalLM.from_pretrained(
                self.config.model, **{dtype_kwarg(transformers.__version__): dtype}
            )
        except OSError as exc:
            raise ModelError(f"cannot load model {self.config.model!r}: {first_line(exc)}") from exc
        return model.eval()  # type: ignore[no-untyped-call]

    def _init_inference(self, deepspeed: Any, model: Any, kernel_inject: bool) -> Any:
        return deepspeed.init_inference(
            model,
            dtype=model.dtype,
            tensor_parallel={"tp_size": self.config.tensor_parallel},
            replace_with_kernel_inject=kernel_inject,
        )

    def generate(self, requests: Sequence[Request], sampling: SamplingSpec) -> list[Response]:
        from joulebench.engines.hf_generate import generate_batch

        if self.engine is None:
            raise UsageError("generate() before setup()")
        module = self.engine.module
        return generate_batch(
            module,
            self.tokenizer,
            requests,
            sampling,
            device=module.device,
            generate=getattr(self.engine, "generate", None) or module.generate,
        )

    def close(self) -> None:
        self.engine = None
        self.tokenizer = None
        free_accelerator_memory()
