"""The real Llama 3 tokenizer, converted on use from Meta's ``llama-models`` package.

Meta ships it as a tiktoken BPE file (128,000 ranks) plus 256 special tokens defined in code. The Llama 3
license does not allow redistributing a converted copy, so joulebench converts it into each model folder it
creates: ``tokenizer.json`` (with a BOS-adding post-processor, as in Meta's hub checkpoints),
``tokenizer_config.json`` with the Llama 3.1 chat template, and ``special_tokens_map.json``.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from joulebench.errors import MissingDependency, require
from joulebench.models.llama3_chat import LLAMA31_CHAT_TEMPLATE

# Meta's Llama 3 pre-tokenizer pattern (llama_models.llama3.tokenizer.Tokenizer.pat_str).
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
NUM_BASE_TOKENS = 128_000
NUM_SPECIAL_TOKENS = 256
_NAMED_SPECIAL_TOKENS = (
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>",
    "<|step_id|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eom_id|>",
    "<|eot_id|>",
    "<|python_tag|>",
    "<|image|>",
)
# The special tokens in ID order from 128000, as Meta's llama_models.llama3.tokenizer defines them.
SPECIAL_TOKENS: tuple[str, ...] = _NAMED_SPECIAL_TOKENS + tuple(
    f"<|reserved_special_token_{2 + i}|>" for i in range(NUM_SPECIAL_TOKENS - len(_NAMED_SPECIAL_TOKENS))
)
BOS_TOKEN = "<|begin_of_text|>"
EOS_TOKEN = "<|eot_id|>"  # the Instruct models end a turn with eot_id
MODEL_MAX_LENGTH = 131_072


def tokenizer_model_path() -> Path:
    """``llama_models/llama3/tokenizer.model``, found without importing the package."""
    spec = importlib.util.find_spec("llama_models")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency("llama-models", extra="models")
    path = Path(next(iter(spec.submodule_search_locations))) / "llama3" / "tokenizer.model"
    if not path.is_file():
        raise MissingDependency("llama-models", hint="pip install --force-reinstall llama-models==0.3.0")
    return path


def special_token_id(token: str) -> int:
    return NUM_BASE_TOKENS + SPECIAL_TOKENS.index(token)


def write_llama3_tokenizer(out_dir: Path) -> None:
    """Convert Meta's tokenizer.model into a transformers tokenizer folder at ``out_dir``."""
    model_path = tokenizer_model_path()
    require("tiktoken", extra="models")
    convert = require("transformers.convert_slow_tokenizer", extra="hf", package="transformers")
    processors = require("tokenizers.processors", extra="hf", package="tokenizers")

    converter = convert.TikTokenConverter(
        vocab_file=str(model_path), pattern=LLAMA3_PATTERN, extra_special_tokens=list(SPECIAL_TOKENS)
    )
    backend = converter.converted()
    bos_id = special_token_id(BOS_TOKEN)
    backend.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single=f"{BOS_TOKEN} $A",
                pair=f"{BOS_TOKEN} $A {BOS_TOKEN}:1 $B:1",
                special_tokens=[(BOS_TOKEN, bos_id)],
            ),
        ]
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    backend.save(str(out_dir / "tokenizer.json"))
    # Written as Meta's hub checkpoints have them (not in the installed transformers' own layout), so any
    # transformers version and every engine reads the folder as it reads the real one.
    _write_json(out_dir / "tokenizer_config.json", tokenizer_config())
    _write_json(out_dir / "special_tokens_map.json", special_tokens_map())


def tokenizer_config() -> dict[str, Any]:
    flags = {"lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": True}
    return {
        "added_tokens_decoder": {
            str(NUM_BASE_TOKENS + i): {"content": token, **flags} for i, token in enumerate(SPECIAL_TOKENS)
        },
        "bos_token": BOS_TOKEN,
        "chat_template": LLAMA31_CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": True,
        "eos_token": EOS_TOKEN,
        "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": MODEL_MAX_LENGTH,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }


def special_tokens_map() -> dict[str, Any]:
    def entry(token: str) -> dict[str, Any]:
        return {"content": token, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}

    return {"bos_token": entry(BOS_TOKEN), "eos_token": entry(EOS_TOKEN)}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
