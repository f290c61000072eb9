"""Building a model folder beside its destination and moving it into place."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from joulebench.errors import ModelError
from joulebench.models.folders import build_into, check_free_space


def _writer(text: str) -> Callable[[Path], None]:
    def build(tmp: Path) -> None:
        (tmp / "config.json").write_text(text)

    return build


def test_new_folder(tmp_path: Path) -> None:
    build_into(tmp_path / "a" / "m", _writer("1"), force=False)
    assert (tmp_path / "a" / "m" / "config.json").read_text() == "1"


def test_force_replaces_a_model_folder(tmp_path: Path) -> None:
    out = tmp_path / "m"
    build_into(out, _writer("1"), force=False)
    (out / "stale.safetensors").write_bytes(b"x")
    with pytest.raises(ModelError, match="already exists"):
        build_into(out, _writer("2"), force=False)
    build_into(out, _writer("2"), force=True)
    assert sorted(p.name for p in out.iterdir()) == ["config.json"]
    assert (out / "config.json").read_text() == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_failed_build_leaves_nothing_and_keeps_the_old_folder(tmp_path: Path) -> None:
    out = tmp_path / "m"
    build_into(out, _writer("old"), force=False)

    def crash(tmp: Path) -> None:
        (tmp / "config.json").write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_into(out, crash, force=True)
    assert (out / "config.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_empty_existing_folder_is_fine(tmp_path: Path) -> None:
    build_into(tmp_path, _writer("1"), force=False)
    assert (tmp_path / "config.json").read_text() == "1"


def test_not_enough_space(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="GB free; the model needs"):
        check_free_space(tmp_path, 10**18)
