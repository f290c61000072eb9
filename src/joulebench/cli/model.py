"""`joulebench model create PRESET OUT_DIR` and `joulebench model list`: offline model folders."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

model_app = typer.Typer(
    name="model",
    help="Model folders that need no hub: real SmolLM2, or Llama 3 shapes with random weights.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add this command to the CLI."""
    app.add_typer(model_app, name="model")


@model_app.command("create")
def create(
    preset: Annotated[
        str, typer.Argument(help="smollm2-135m, llama-3.2-1b, llama-3.2-3b, llama-3.1-8b, llama-3.1-70b")
    ],
    out_dir: Annotated[Path, typer.Argument(help="The folder to write (must not exist unless --force).")],
    force: Annotated[bool, typer.Option("--force", help="Replace an existing model folder.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the random weights (Llama presets).")] = 0,
    dtype: Annotated[str, typer.Option(help="Weight dtype: bf16, fp16 or fp32.")] = "bf16",
) -> None:
    """Write a model folder that every engine loads as it loads the real checkpoint."""
    from joulebench.models.create import create_model

    start_s = time.monotonic()
    path = create_model(preset, out_dir, force=force, seed=seed, dtype=dtype)
    size_bytes = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
    print(f"{preset}: {path} ({size_bytes / 1e9:.2f} GB in {time.monotonic() - start_s:.1f} s)")


@model_app.command("list")
def list_presets() -> None:
    """List the model presets and what each one reproduces."""
    from joulebench.models.presets import LLAMA_PRESETS, SMOLLM2

    print(f"{SMOLLM2.name:<15} {SMOLLM2.hf_name} (real weights from the {SMOLLM2.distribution} package)")
    for arch in LLAMA_PRESETS.values():
        params_b = arch.num_parameters() / 1e9
        print(f"{arch.name:<15} {arch.hf_name} architecture, {params_b:.2f} B random parameters")
