"""Writing a safetensors file one tensor (and one chunk) at a time.

The format is an 8-byte little-endian header length, a JSON header mapping each tensor name to its dtype,
shape and byte range, then the raw bytes. Shapes are known before any weight exists, so the header is
written first and each tensor streamed after it: the writer holds nothing beyond the chunk it is given.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO

DTYPE_BYTES = {"BF16": 2, "F16": 2, "F32": 4}


def tensor_bytes(shape: Sequence[int], dtype: str) -> int:
    count = 1
    for d in shape:
        count *= d
    return count * DTYPE_BYTES[dtype]


def header(tensors: Sequence[tuple[str, tuple[int, ...]]], dtype: str) -> bytes:
    """The length-prefixed JSON header for ``tensors`` laid out back to back in the given order."""
    entries: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in tensors:
        size = tensor_bytes(shape, dtype)
        entries[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(entries, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the data section starts 8-byte aligned
    return struct.pack("<Q", len(raw)) + raw


class StreamingWriter:
    """``with StreamingWriter(path, tensors, dtype) as w: w.write(name, chunks)`` for each tensor in order;
    closing checks that every tensor got exactly its declared bytes."""

    def __init__(self, path: Path, tensors: Sequence[tuple[str, tuple[int, ...]]], dtype: str) -> None:
        self.path = path
        self.tensors = list(tensors)
        self.dtype = dtype
        self._next = 0
        self._file: BinaryIO | None = None

    def __enter__(self) -> StreamingWriter:
        self._file = self.path.open("wb")
        self._file.write(header(self.tensors, self.dtype))
        return self

    def write(self, name: str, chunks: Iterable[memoryview | bytes]) -> None:
        assert self._file is not None, "use StreamingWriter as a context manager"
        expected_name, shape = self.tensors[self._next]
        if name != expected_name:
            raise ValueError(f"{self.path.name}: expected tensor {expected_name}, got {name}")
        written = 0
        for chunk in chunks:
            written += self._file.write(chunk)
        if written != tensor_bytes(shape, self.dtype):
            raise ValueError(f"{name}: wrote {written} bytes, declared {tensor_bytes(shape, self.dtype)}")
        self._next += 1

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        assert self._file is not None
        self._file.close()
        if exc_type is None and self._next != len(self.tensors):
            raise ValueError(f"{self.path.name}: {len(self.tensors) - self._next} tensor(s) never written")
