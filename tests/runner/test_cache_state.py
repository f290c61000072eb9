"""Page-cache residency through mincore on real files, and compile-cache folders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from joulebench.runner.cache_state import compile_cache_state, page_cache_state, resident_pages, weight_files


def _written(path: Path, size: int) -> Path:
    with open(path, "wb") as f:
        f.write(os.urandom(size))
        f.flush()
        os.fsync(f.fileno())  # clean pages can be evicted; dirty ones cannot
    return path


def _evict(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def test_cold_then_warm(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    weights = _written(model / "model.safetensors", 4 << 20)
    (model / "config.json").write_text("{}")
    assert weight_files(model) == [weights]
    _evict(weights)
    cold = page_cache_state(model)
    assert cold.state == "cold" and cold.resident_fraction is not None and cold.resident_fraction <= 0.1
    weights.read_bytes()
    warm = page_cache_state(model)
    assert warm.state == "warm" and warm.resident_fraction == pytest.approx(1.0)
    assert warm.bytes_total == 4 << 20 and warm.files == 1


def test_probing_does_not_load_the_file(tmp_path: Path) -> None:
    f = _written(tmp_path / "w.bin", 2 << 20)
    _evict(f)
    before = resident_pages(f)
    page_cache_state(f)
    assert resident_pages(f) == before


def test_unknown_without_local_weights(tmp_path: Path) -> None:
    assert page_cache_state(tmp_path).state == "unknown"
    assert page_cache_state(None).state == "unknown"


def test_compile_cache_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_CACHE_ROOT", str(tmp_path / "vllm"))
    assert compile_cache_state("vllm") == "cold"
    cache = tmp_path / "vllm" / "torch_compile_cache"
    cache.mkdir(parents=True)
    assert compile_cache_state("vllm") == "cold"
    (cache / "abc").mkdir()
    assert compile_cache_state("vllm") == "warm"
    assert compile_cache_state("transformers") == "none"


def test_compile_cache_state_reads_the_folder_the_engine_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plan's engine env that names the cache folder is what the engine's processes use: the state is
    read there, not in the folder this process's environment names."""
    monkeypatch.setenv("VLLM_CACHE_ROOT", str(tmp_path / "empty"))
    (tmp_path / "given" / "torch_compile_cache" / "abc").mkdir(parents=True)
    assert compile_cache_state("vllm") == "cold"
    assert compile_cache_state("vllm", {"VLLM_CACHE_ROOT": str(tmp_path / "given")}) == "warm"
