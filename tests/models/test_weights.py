"""Streaming safetensors writer and seeded random weights, read back with the safetensors library."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from joulebench.models.presets import LLAMA_PRESETS
from joulebench.models.random_weights import INIT_STD, plan_shards, write_random_weights
from joulebench.models.safetensors_stream import StreamingWriter

np = pytest.importorskip("numpy")
torch = pytest.importorskip("torch")
safetensors = pytest.importorskip("safetensors")

# The 1B layout with tiny widths: every tensor name and shape rule of the real preset, 1 MB of weights.
TINY = replace(
    LLAMA_PRESETS["llama-3.1-8b"],
    name="tiny",
    hidden_size=8,
    intermediate_size=16,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=1,
)


def test_streamed_file_reads_back(tmp_path: Path) -> None:
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([1.5, -2.0], dtype=np.float32)
    path = tmp_path / "x.safetensors"
    with StreamingWriter(path, [("a", (2, 3)), ("b", (2,))], "F32") as w:
        w.write("a", [a[:1].tobytes(), a[1:].tobytes()])  # in two chunks
        w.write("b", [b.tobytes()])
    with safetensors.safe_open(str(path), "np") as f:
        assert sorted(f.keys()) == ["a", "b"]
        np.testing.assert_array_equal(f.get_tensor("a"), a)
        np.testing.assert_array_equal(f.get_tensor("b"), b)


def test_writer_rejects_wrong_sizes_order_and_missing_tensors(tmp_path: Path) -> None:
    with (
        pytest.raises(ValueError, match="wrote 4 bytes, declared 8"),
        StreamingWriter(tmp_path / "a.safetensors", [("a", (2,))], "F32") as w,
    ):
        w.write("a", [b"\0" * 4])
    with (
        pytest.raises(ValueError, match="expected tensor a, got b"),
        StreamingWriter(tmp_path / "b.safetensors", [("a", (2,))], "F32") as w,
    ):
        w.write("b", [b"\0" * 8])
    with (
        pytest.raises(ValueError, match="1 tensor\\(s\\) never written"),
        StreamingWriter(tmp_path / "c.safetensors", [("a", (2,))], "F32"),
    ):
        pass


def _read_all(folder: Path) -> dict[str, object]:
    tensors = {}
    for f in sorted(folder.glob("*.safetensors")):
        with safetensors.safe_open(str(f), "pt") as st:
            tensors.update({k: st.get_tensor(k) for k in st.keys()})  # noqa: SIM118 - safe_open has no iterator
    return tensors


def test_sharded_weights_with_index(tmp_path: Path) -> None:
    max_bytes = 1_200_000  # the embedding alone is 2 MB: several shards
    count = len(plan_shards(TINY, "BF16", max_bytes))
    assert count > 1
    written = write_random_weights(TINY, tmp_path, dtype="BF16", seed=0, max_shard_bytes=max_bytes)
    assert [p.name for p in written] == [
        f"model-{i:05d}-of-{count:05d}.safetensors" for i in range(1, count + 1)
    ]
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    tensors = _read_all(tmp_path)
    assert set(index["weight_map"]) == set(tensors) == {n for n, _ in TINY.tensor_shapes()}
    assert index["metadata"]["total_size"] == TINY.num_parameters() * 2
    for name, file_name in index["weight_map"].items():
        with safetensors.safe_open(str(tmp_path / file_name), "pt") as st:
            assert name in st.keys()  # noqa: SIM118 - safe_open has no __contains__
    for name, shape in TINY.tensor_shapes():
        t = tensors[name]
        assert tuple(t.shape) == shape and t.dtype == torch.bfloat16
        if name.endswith("norm.weight"):
            assert torch.all(t == 1)
    embed = tensors["model.embed_tokens.weight"].float()
    assert embed.mean().item() == pytest.approx(0.0, abs=1e-3)
    assert embed.std().item() == pytest.approx(INIT_STD, rel=0.01)


def test_weights_are_seeded_and_independent_of_the_layout(tmp_path: Path) -> None:
    for name in "abc":
        (tmp_path / name).mkdir()
    single = write_random_weights(TINY, tmp_path / "a", dtype="BF16", seed=0)
    write_random_weights(TINY, tmp_path / "b", dtype="BF16", seed=0, max_shard_bytes=1_200_000)
    write_random_weights(TINY, tmp_path / "c", dtype="BF16", seed=1)
    assert single == [tmp_path / "a" / "model.safetensors"]
    assert not (tmp_path / "a" / "model.safetensors.index.json").exists()
    a, b, c = (_read_all(tmp_path / x) for x in "abc")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["lm_head.weight"], c["lm_head.weight"])
    assert not torch.equal(a["model.layers.0.mlp.up_proj.weight"], a["model.layers.1.mlp.up_proj.weight"])


@pytest.mark.parametrize(
    ("dtype", "torch_dtype"), [("BF16", "bfloat16"), ("F16", "float16"), ("F32", "float32")]
)
def test_dtype_conversion_matches_torch(dtype: str, torch_dtype: str, tmp_path: Path) -> None:
    """Our float32 -> bf16 rounding equals torch's (round to nearest even)."""
    from joulebench.models.random_weights import _convert

    values = np.random.default_rng(0).standard_normal(100_000, dtype=np.float32) * INIT_STD
    ours = torch.frombuffer(
        bytearray(_convert(values.copy(), dtype, np).tobytes()), dtype=getattr(torch, torch_dtype)
    )
    assert torch.equal(ours, torch.from_numpy(values).to(getattr(torch, torch_dtype)))


@pytest.mark.parametrize("workers", [1, 4])
def test_threads_write_the_bytes_one_generator_would(
    workers: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Generated ahead in threads, with a look-ahead bound small enough to hold back every other tensor,
    the file is byte for byte the tensors' own generators in model order."""
    from joulebench.models import random_weights

    monkeypatch.setattr(random_weights, "AHEAD_BYTES", 300_000)
    (path,) = write_random_weights(TINY, tmp_path, dtype="BF16", seed=3, workers=workers)
    data = path.read_bytes()
    start = 8 + int.from_bytes(data[:8], "little")
    expected = b"".join(
        bytes(chunk)
        for name, shape in TINY.tensor_shapes()
        for chunk in random_weights._chunks(name, shape, "BF16", 3)
    )
    assert data[start:] == expected
