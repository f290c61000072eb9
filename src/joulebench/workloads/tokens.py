"""Token counting and chat rendering with the model's own tokenizer (a transformers tokenizer)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from joulebench.errors import ModelError, require


def load_tokenizer(path_or_id: str | Path) -> Any:
    """A model's tokenizer through ``AutoTokenizer``, as the engines load it."""
    transformers = require("transformers", extra="hf")
    try:
        return transformers.AutoTokenizer.from_pretrained(str(path_or_id))
    except (OSError, ValueError, AttributeError, TypeError, KeyError) as exc:
        # a config.json transformers cannot read (an unknown dtype raises AttributeError from torch)
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ModelError(f"cannot load a tokenizer from {path_or_id}: {first}") from exc


def as_tokenizer(tokenizer: Any) -> Any:
    """Accept a tokenizer object, or a folder / hub ID to load one from."""
    if isinstance(tokenizer, (str, Path)):
        return load_tokenizer(tokenizer)
    return tokenizer


def _adds_bos(tokenizer: Any) -> bool:
    bos_id = getattr(tokenizer, "bos_token_id", None)
    if bos_id is None:
        return False
    ids = tokenizer("a")["input_ids"]
    return bool(ids) and ids[0] == bos_id


def render_chat(tokenizer: Any, prompts: Sequence[str]) -> list[str]:
    """Each prompt as one user turn in the model's chat template, ready for the assistant's reply.

    A template that writes the BOS token itself (Llama 3) would get a second one when an engine encodes
    the text with its default settings, so a leading BOS is dropped where the tokenizer adds it anyway:
    the text then encodes to exactly the template's token IDs.
    """
    if not getattr(tokenizer, "chat_template", None):
        raise ModelError("the tokenizer has no chat template; run without the chat template")
    bos = tokenizer.bos_token if _adds_bos(tokenizer) else None
    rendered: list[str] = []
    for prompt in prompts:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        if bos and text.startswith(bos):
            text = text[len(bos) :]
        rendered.append(text)
    return rendered


def count_tokens(tokenizer: Any, texts: Sequence[str]) -> list[int]:
    """Prompt lengths as an engine sees them: the default encoding, special tokens (BOS) included."""
    if not texts:
        return []
    return [len(ids) for ids in tokenizer(list(texts))["input_ids"]]
