"""Weights that cannot load are found before anything runs: a truncated or damaged safetensors file (an
interrupted download or copy) is one line naming the file, not an engine's failure minutes later.

Only the layout is read: an 8-byte little-endian header length, the JSON header with each tensor's byte
range, then the data, which must end exactly where the last range ends.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from joulebench.errors import ModelError

#: a header larger than this is no safetensors header (real ones are kilobytes to a few megabytes)
MAX_HEADER_BYTES = 100_000_000


def check_safetensors(path: Path) -> None:
    """Raise :class:`ModelError` unless ``path`` holds a whole safetensors file."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise ModelError(
                    f"{path} is not a safetensors file ({size} bytes): copy or download it again"
                )
            (length,) = struct.unpack("<Q", head)
            if length > min(MAX_HEADER_BYTES, size - 8):
                raise ModelError(f"{path} is truncated or not a safetensors file: copy or download it again")
            header = json.loads(f.read(length))
    except OSError as exc:
        raise ModelError(f"{path} cannot be read: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError):
        raise ModelError(f"{path} has a damaged header: copy or download it again") from None
    ends = [
        v["data_offsets"][1]
        for k, v in header.items()
        if k != "__metadata__" and isinstance(v, dict) and isinstance(v.get("data_offsets"), list)
    ]
    need = 8 + length + max(ends, default=0)
    if size < need:
        raise ModelError(
            f"{path} is truncated: {size:,} of {need:,} bytes (an interrupted download or copy?): "
            "copy or download it again"
        )


def check_weights(folder: Path) -> None:
    """Every safetensors file of a model folder, whole."""
    for path in sorted(folder.glob("*.safetensors")):
        check_safetensors(path)
