"""One exception hierarchy for joulebench.

The CLI turns every :class:`JoulebenchError` into one line on stderr and an exit code
(:attr:`JoulebenchError.exit_code`, 2 for bad input), never a traceback.
"""

from __future__ import annotations

from types import ModuleType


class JoulebenchError(Exception):
    """Base of every error joulebench raises on purpose."""

    exit_code: int = 1


class UsageError(JoulebenchError):
    """Bad input from the user: a flag, a path, a name, a file's content."""

    exit_code = 2


class SourceUnavailable(JoulebenchError):
    """A power source cannot be read on this machine (the message says why and how to fix it)."""


class MissingDependency(UsageError):
    """An optional package is not installed; the message carries the ``pip install`` line."""

    def __init__(self, package: str, extra: str | None = None, hint: str | None = None) -> None:
        fix = hint or (f"pip install 'joulebench[{extra}]'" if extra else f"pip install {package}")
        super().__init__(f"{package} is not installed: {fix}")
        self.package = package
        self.extra = extra


class DatasetError(UsageError):
    """A dataset or workload file is missing or malformed (the message names the record)."""


class ModelError(UsageError):
    """A model path, preset or tokenizer cannot be used."""


class EngineError(JoulebenchError):
    """An engine failed while running (crash, out of memory, timeout)."""


class StoreError(JoulebenchError):
    """The results database cannot be used."""

    exit_code = 2


OUT_OF_MEMORY_HINT = (
    "the batch does not fit in device memory: try a smaller batch, more GPUs (tensor_parallel), or, for "
    "PyTorch engines whose error shows much memory reserved but unallocated, the engine environment "
    "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True"
)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether an engine's error is a device running out of memory (``torch.OutOfMemoryError``, "CUDA error:
    out of memory"), anywhere in its chain of causes."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if type(current).__name__ == "OutOfMemoryError" or "out of memory" in str(current).lower():
            return True
        current = current.__cause__ or current.__context__
    return False


class JoulebenchWarning(UserWarning):
    """Warnings about result quality (too few repeats, high variation, short windows)."""


def require(module: str, extra: str | None = None, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependency` with the install hint."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependency(package or module.split(".")[0], extra) from exc
