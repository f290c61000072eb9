from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def llama_1b_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Llama-3.2-1B-shaped checkpoint made by `joulebench model create` (about 30 s, 2.5 GB)."""
    pytest.importorskip("numpy")
    pytest.importorskip("transformers")
    pytest.importorskip("llama_models")
    from joulebench.models.create import create_model

    return create_model("llama-3.2-1b", tmp_path_factory.mktemp("models") / "llama-3.2-1b")


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("joulebench-cache")
