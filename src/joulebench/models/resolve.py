"""From what the user typed (a preset name, a local folder or a hub ID) to what an engine loads."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from joulebench.errors import ModelError
from joulebench.models.presets import PRESET_NAMES

ModelSource = Literal["preset", "path", "hub"]
# owner/name as the Hugging Face hub spells repository IDs
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")


@dataclass(frozen=True)
class ResolvedModel:
    """``path`` is a local folder, or for ``source == "hub"`` the hub ID as a path (``str(path)`` gives the
    ID back, which engines download by); ``ref`` is the string to hand an engine either way."""

    path: Path
    label: str
    source: ModelSource
    tokenizer_path: Path

    @property
    def ref(self) -> str:
        return self.label if self.source == "hub" else str(self.path)


def cache_dir() -> Path:
    """``$JOULEBENCH_CACHE`` or ``~/.cache/joulebench``."""
    env = os.environ.get("JOULEBENCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "joulebench"


def is_hub_id(name: str) -> bool:
    return bool(_HUB_ID.match(name)) and ".." not in name and "--" not in name and not name.endswith(".")


def resolve_model(name_or_path: str) -> ResolvedModel:
    """A preset is prepared once into the cache and reused; a local folder is used as it is; a hub ID is
    passed through for the engine to download. Anything else raises :class:`ModelError`."""
    if name_or_path in PRESET_NAMES:
        path = prepare_preset(name_or_path)
        return ResolvedModel(path, name_or_path, "preset", path)
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelError(f"{name_or_path} is a file; pass the model's folder (with config.json)")
        if not (path / "config.json").is_file():
            raise ModelError(f"{name_or_path} is not a model folder (no config.json)")
        path = path.absolute()
        from joulebench.models.integrity import check_weights

        check_weights(path)  # a truncated file fails here, in one line, not in the engine minutes later
        return ResolvedModel(path, path.name, "path", path)
    if is_hub_id(name_or_path) and not name_or_path.startswith((".", "~")):
        return ResolvedModel(Path(name_or_path), name_or_path, "hub", Path(name_or_path))
    presets = ", ".join(PRESET_NAMES)
    raise ModelError(f"model {name_or_path!r} is not a folder, a hub ID (owner/name) or a preset ({presets})")


def prepare_preset(name: str) -> Path:
    """The preset's folder in the cache, created on first use (seed 0, bf16). A lock keeps two processes
    from preparing the same preset at once; the folder appears only when complete."""
    from joulebench.models.create import create_model

    root = cache_dir() / "models"
    path = root / name
    if path.is_dir():
        return path
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        where = "JOULEBENCH_CACHE" if os.environ.get("JOULEBENCH_CACHE") else "the cache"
        raise ModelError(f"{where} cannot hold models at {root} ({exc.strerror}): use a folder") from None
    with _locked(root / f".{name}.lock"):
        if not path.is_dir():
            create_model(name, path)
    return path


class _locked:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        import fcntl

        self._fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        import fcntl

        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
