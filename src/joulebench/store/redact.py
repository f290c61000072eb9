"""Secrets never reach a results database: what is stored is redacted here, at the one door it passes.

Results are shared, and a run's configuration holds what users typed: engine options (``api_key``), a
server's command line (``--api-key ...``), its environment (``HF_TOKEN``), the runtime variables a run
inherited. Two rules, both applied to everything a run, a trial or an update stores:

* inside the mappings users fill (engine options, server and engine environments, request bodies and
  headers), a text value whose name reads as a secret is replaced;
* in every stored text, what has the shape of a secret is replaced: the value after a secret-named flag
  (``--api-key X``, ``--hf-token=X``), a secret-named variable's assignment (``HF_TOKEN=X``), a bearer
  token, and keys of well-known forms (``sk-...``, ``hf_...``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "<redacted>"
# words of a name that make it a secret's (HF_TOKEN, VLLM_API_KEY), and endings that do (APITOKEN, ACCESSKEY)
SECRET_WORDS = frozenset(
    {
        "KEY", "KEYS", "APIKEY", "TOKEN", "SECRET", "SECRETS", "PASSWORD", "PASSWD", "PASSPHRASE",
        "CREDENTIAL", "CREDENTIALS", "AUTH", "AUTHORIZATION", "COOKIE",
    }
)  # fmt: skip
SECRET_ENDINGS = ("APIKEY", "ACCESSKEY", "SECRETKEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIALS")
# mappings whose entries users name and fill
USER_MAPPINGS = frozenset(
    {"engine_options", "options", "server_env", "engine_env", "env", "extra_body", "headers"}
)

_FLAG = re.compile(
    r"(?i)(--?[a-z0-9_-]*(?:key|token|secret|password|passwd|passphrase|credentials?|auth))(=|\s+)"
    r"('[^']*'|\"[^\"]*\"|\S+)"
)
_ASSIGNMENT = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)=('[^']*'|\"[^\"]*\"|\S+)")
_BEARER = re.compile(r"(?i)(bearer\s+)\S+")
_KEY_SHAPES = re.compile(r"\b(?:sk-[A-Za-z0-9_-]{8,}|hf_[A-Za-z0-9]{8,}|gh[pousr]_[A-Za-z0-9]{16,})")


def secret_name(name: str) -> bool:
    """Whether a variable or option of this name holds a secret (``HF_TOKEN``, ``api_key``,
    ``TORCH_APITOKEN``; not ``TOKENIZERS_PARALLELISM`` or ``max_tokens``)."""
    words = [w for w in re.split(r"[^A-Za-z0-9]+", name.upper()) if w]
    return any(w in SECRET_WORDS or w.endswith(SECRET_ENDINGS) for w in words)


def scrub(text: str) -> str:
    """``text`` with every secret-shaped part replaced."""
    text = _FLAG.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    text = _ASSIGNMENT.sub(
        lambda m: f"{m.group(1)}={REDACTED}" if secret_name(m.group(1)) else m.group(0), text
    )
    text = _BEARER.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
    return _KEY_SHAPES.sub(REDACTED, text)


def redact(value: Any, user_filled: bool = False) -> Any:
    """``value`` (a record about to be stored) with its secrets replaced; the input is not changed."""
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            name = str(key)
            if user_filled and isinstance(item, str) and secret_name(name):
                out[key] = REDACTED
            else:
                out[key] = redact(item, user_filled or name in USER_MAPPINGS)
        return out
    if isinstance(value, (list, tuple)):
        return [redact(v, user_filled) for v in value]
    if isinstance(value, str):
        return scrub(value)
    return value
