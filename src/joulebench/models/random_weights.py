"""Seeded random weights for a Llama architecture, scaled like a trained model's and streamed to sharded
safetensors files exactly as a hub checkpoint lays them out (``model-0000i-of-0000n.safetensors`` plus
``model.safetensors.index.json``, or one ``model.safetensors`` when it fits a single shard).

Each tensor has its own generator, so tensors are generated side by side in threads (numpy's generators and
array arithmetic release the GIL) while the file is written in order: the bytes are the same whatever the
thread count, and an 8B model is made in about the time its 16 GB take to write rather than the time one
core takes to draw 8 billion normals."""

from __future__ import annotations

import json
import os
import zlib
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from joulebench.errors import require
from joulebench.models.presets import MAX_SHARD_BYTES, LlamaArchitecture
from joulebench.models.safetensors_stream import StreamingWriter, tensor_bytes

INIT_STD = 0.02  # the architecture's initializer_range; trained Llama weights have a similar spread
CHUNK_ELEMENTS = 1 << 23  # 8 Mi values (32 MiB as float32) generated at a time
AHEAD_BYTES = 2 << 30  # generated tensors waiting to be written: the memory bound, beside one tensor
MAX_WORKERS = 32  # past this the disk, not the generators, sets the pace

Shard = list[tuple[str, tuple[int, ...]]]


def plan_shards(arch: LlamaArchitecture, dtype: str, max_shard_bytes: int = MAX_SHARD_BYTES) -> list[Shard]:
    """Tensors split greedily into shards of at most ``max_shard_bytes``, in model order (as
    transformers' ``save_pretrained`` splits them)."""
    shards: list[Shard] = [[]]
    size = 0
    for name, shape in arch.tensor_shapes():
        nbytes = tensor_bytes(shape, dtype)
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append((name, shape))
        size += nbytes
    return shards


def shard_file_names(count: int) -> list[str]:
    if count == 1:
        return ["model.safetensors"]
    return [f"model-{i:05d}-of-{count:05d}.safetensors" for i in range(1, count + 1)]


def _chunks(name: str, shape: tuple[int, ...], dtype: str, seed: int) -> Iterator[memoryview]:
    """One tensor's bytes: RMSNorm weights are 1, everything else N(0, INIT_STD); the generator is keyed
    by (seed, tensor name), so each tensor is reproducible on its own, whatever the shard layout."""
    np = require("numpy", extra="models")
    count = 1
    for d in shape:
        count *= d
    if name.endswith("norm.weight"):
        yield memoryview(_convert(np.ones(count, dtype=np.float32), dtype, np)).cast("B")
        return
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    for start in range(0, count, CHUNK_ELEMENTS):
        values = rng.standard_normal(min(CHUNK_ELEMENTS, count - start), dtype=np.float32)
        values *= INIT_STD
        yield memoryview(_convert(values, dtype, np)).cast("B")


def _generate(name: str, shape: tuple[int, ...], dtype: str, seed: int) -> list[memoryview]:
    return list(_chunks(name, shape, dtype, seed))


def default_workers() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(MAX_WORKERS, cpus))


def _generated(
    tensors: Iterable[tuple[str, tuple[int, ...]]], dtype: str, seed: int, workers: int
) -> Iterator[list[memoryview]]:
    """Each tensor's chunks in the given order, generated ahead in ``workers`` threads while the caller
    writes, with at most AHEAD_BYTES (or a single tensor) waiting."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="weights") as pool:
        pending: deque[tuple[Future[list[memoryview]], int]] = deque()
        ahead = 0
        for name, shape in tensors:
            nbytes = tensor_bytes(shape, dtype)
            while pending and ahead + nbytes > AHEAD_BYTES:
                done, done_bytes = pending.popleft()
                ahead -= done_bytes
                yield done.result()
            pending.append((pool.submit(_generate, name, shape, dtype, seed), nbytes))
            ahead += nbytes
        while pending:
            yield pending.popleft()[0].result()


def _convert(values: Any, dtype: str, np: Any) -> Any:
    if dtype == "F32":
        return values
    if dtype == "F16":
        return values.astype(np.float16)
    # float32 -> bfloat16 with round-to-nearest-even on the upper 16 bits (no NaNs here to preserve)
    bits = values.view(np.uint32)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def write_random_weights(
    arch: LlamaArchitecture,
    out_dir: Path,
    *,
    dtype: str,
    seed: int,
    max_shard_bytes: int = MAX_SHARD_BYTES,
    workers: int | None = None,
) -> list[Path]:
    """Write every shard (and the index when there are several) into ``out_dir``; returns the shard paths.
    ``workers`` threads generate the tensors (default: one per usable CPU, at most MAX_WORKERS)."""
    shards = plan_shards(arch, dtype, max_shard_bytes)
    names = shard_file_names(len(shards))
    weight_map: dict[str, str] = {}
    total_bytes = 0
    generated = _generated((t for shard in shards for t in shard), dtype, seed, workers or default_workers())
    for shard, file_name in zip(shards, names, strict=True):
        with StreamingWriter(out_dir / file_name, shard, dtype) as writer:
            for name, shape in shard:
                writer.write(name, next(generated))
                weight_map[name] = file_name
                total_bytes += tensor_bytes(shape, dtype)
    if len(names) > 1:
        index = {"metadata": {"total_size": total_bytes}, "weight_map": dict(sorted(weight_map.items()))}
        (out_dir / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    return [out_dir / n for n in names]
