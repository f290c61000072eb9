from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from joulebench.engines.base import STAGE_ENGINE_INIT, STAGE_IMPORT, STAGE_MODEL_LOAD
from joulebench.workloads.spec import Request, Response

PROMPTS = (
    "Give three tips for staying healthy.",
    "What are the three primary colors?",
    "Describe the structure of an atom.",
)


def _cuda_present() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    gpu_items = [i for i in items if i.get_closest_marker("gpu") and here in Path(str(i.fspath)).parents]
    if gpu_items and not _cuda_present():
        skip = pytest.mark.skip(reason="needs an NVIDIA GPU (torch sees no CUDA device)")
        for item in gpu_items:
            item.add_marker(skip)


def requests(n: int = len(PROMPTS)) -> list[Request]:
    return [Request(index=i, prompt=PROMPTS[i % len(PROMPTS)]) for i in range(n)]


def spans_named(spans: list[tuple[str, float, float]], name: str) -> list[tuple[float, float]]:
    return [(s, e) for n, s, e in spans if n == name]


def assert_sequential_setup(spans: list[tuple[str, float, float]]) -> None:
    """import, engine_init, model_load: each once, in that order, without overlap."""
    (imp,) = spans_named(spans, STAGE_IMPORT)
    (init,) = spans_named(spans, STAGE_ENGINE_INIT)
    (load,) = spans_named(spans, STAGE_MODEL_LOAD)
    assert imp[0] < imp[1] <= init[0] < init[1] <= load[0] < load[1]


def assert_request_times(response: Response, before_s: float, after_s: float) -> None:
    assert response.submit_s is not None and response.first_token_s is not None
    assert response.finish_s is not None
    assert before_s <= response.submit_s <= response.first_token_s <= response.finish_s <= after_s


@pytest.fixture(scope="session")
def stopping_llama(tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Llama changed so that greedy decoding of PROMPTS[0] emits EOS by its third token.

    A random model almost never samples EOS. Here the EOS row of the output layer is the row of the token
    greedy decoding picks at step 2, scaled by 1.5: at that step EOS has the largest logit.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32).eval()
    ids = tok(PROMPTS[0], return_tensors="pt").input_ids
    with torch.inference_mode():
        out = model.generate(ids, max_new_tokens=3, min_new_tokens=3, do_sample=False)
        logits = model(out[:, :-1]).logits[0, -1]
    step2 = int(out[0, -1])
    assert logits[step2] > 0, "the fixture needs a positive winning logit to scale"
    with torch.no_grad():
        model.lm_head.weight[tok.eos_token_id] = 1.5 * model.lm_head.weight[step2]
    target = tmp_path_factory.mktemp("stopping-llama")
    shutil.copytree(tiny_llama, target, dirs_exist_ok=True)
    model.save_pretrained(target)
    return target
