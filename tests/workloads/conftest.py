from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def llama3_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real Llama 3 tokenizer, converted from the llama-models package (a few seconds)."""
    pytest.importorskip("transformers")
    pytest.importorskip("llama_models")
    from joulebench.models.llama3_tokenizer import write_llama3_tokenizer

    out = tmp_path_factory.mktemp("llama3-tokenizer")
    write_llama3_tokenizer(out)
    return out


@pytest.fixture(scope="session")
def llama3_tokenizer(llama3_tokenizer_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(llama3_tokenizer_dir))
