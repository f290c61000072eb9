"""Creating a model folder safely: build it beside its destination, then move it into place, so an
interrupted create never leaves a half-written folder under the final name."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from joulebench.errors import ModelError

# Files that mark a folder as a model folder joulebench may replace with --force.
MODEL_MARKERS = ("config.json", "model.safetensors", "model.safetensors.index.json")


def check_destination(out_dir: Path, *, force: bool) -> None:
    if out_dir.exists():
        if not out_dir.is_dir():
            raise ModelError(f"{out_dir} exists and is not a folder")
        if any(out_dir.iterdir()):
            if not force:
                raise ModelError(f"{out_dir} already exists: choose another folder or pass --force")
            if not any((out_dir / m).exists() for m in MODEL_MARKERS):
                raise ModelError(f"{out_dir} is not a model folder; refusing to replace it even with --force")


def check_free_space(parent: Path, needed_bytes: int) -> None:
    free = shutil.disk_usage(parent).free
    if free < needed_bytes:
        raise ModelError(
            f"{parent} has {free / 1e9:.1f} GB free; the model needs {needed_bytes / 1e9:.1f} GB"
        )


def build_into(out_dir: Path, build: Callable[[Path], None], *, force: bool) -> None:
    """Run ``build(tmp)`` on a fresh sibling folder, then put it at ``out_dir`` (replacing it if forced)."""
    check_destination(out_dir, force=force)
    tmp = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    except OSError as exc:  # a file in the way, no permission, a read-only file system
        raise ModelError(f"cannot create {out_dir}: {exc.strerror or exc}") from exc
    try:
        build(tmp)
        if out_dir.exists():
            old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
            out_dir.rename(old)
            tmp.rename(out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
