"""`joulebench run`: one benchmark (setup trials + token-generation repeats) into the results database."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from joulebench.errors import UsageError
from joulebench.runner.engine_env import parse_pairs

ENGINE_OPT_HELP = "Engine-specific option KEY=VALUE (repeatable); VALUE is parsed as JSON when it can be."

ENGINE_ENV_HELP = (
    "Environment variable KEY=VALUE of the engine's processes (repeatable); stored with the run."
)


def _levels(text: str | None) -> list[int]:
    try:
        return [int(x) for x in (text or "").replace(" ", "").split(",") if x]
    except ValueError:
        raise UsageError(f"--sleep-levels {text!r}: give levels as numbers, e.g. 1,2") from None


def _factors(texts: list[str] | None) -> dict[str, list[str]]:
    from joulebench.runner.setup_factors import parse_factors

    return parse_factors(texts or [])


def parse_engine_opts(items: list[str]) -> dict[str, object]:
    import json

    out: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--engine-opt {item!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


Opt = typer.Option


def run(
    engine: Annotated[
        str, Opt(help="transformers, vllm, deepspeed, tensorrt-llm, sglang, sglang-server or openai.")
    ] = "transformers",
    model: Annotated[str, Opt(help="A model preset, a local folder or a hub ID.")] = "smollm2-135m",
    workload: Annotated[str, Opt(help="A workload preset or a YAML file.")] = "smoke",
    batch_size: Annotated[int | None, Opt(help="Override the workload's batch size.")] = None,
    output_tokens: Annotated[int | None, Opt(help="Override the workload's output tokens.")] = None,
    length_mode: Annotated[str | None, Opt(help="fixed (ignore EOS) or natural (stop at EOS).")] = None,
    dataset: Annotated[str | None, Opt(help="Override the workload's dataset (name or path).")] = None,
    repeats: Annotated[int, Opt(help="Token-generation repeats in one warm engine (0: setup only).")] = 3,
    unmonitored_repeats: Annotated[
        int,
        Opt(
            min=0,
            help="Extra repeats with sampling paused, alternating with measured ones: the monitor's cost.",
        ),
    ] = 0,
    setup_repeats: Annotated[int, Opt(help="Setup trials, each in a fresh process (0 skips them).")] = 1,
    device: Annotated[str, Opt(help="auto, cpu or cuda.")] = "auto",
    dtype: Annotated[str, Opt(help="auto, bfloat16, float16 or float32.")] = "auto",
    tensor_parallel: Annotated[int, Opt(help="GPUs per engine.")] = 1,
    engine_opt: Annotated[list[str] | None, Opt(help=ENGINE_OPT_HELP)] = None,
    engine_env: Annotated[list[str] | None, Opt(help=ENGINE_ENV_HELP)] = None,
    endpoint: Annotated[str | None, Opt(help="--engine openai: the server's base URL.")] = None,
    server_cmd: Annotated[str | None, Opt(help="--engine openai: a command that starts the server.")] = None,
    max_concurrency: Annotated[int | None, Opt(help="--engine openai: requests in flight at once.")] = None,
    request_rate: Annotated[float | None, Opt(help="--engine openai: requests per second (Poisson).")] = None,
    db: Annotated[str, Opt(help="The results database (SQLite).")] = "joulebench.db",
    json_out: Annotated[
        bool, Opt("--json", help="Print the summary as JSON on stdout; no live display.")
    ] = False,
    estimate: Annotated[
        bool,
        Opt(
            "--estimate/--no-estimate",
            help="Estimate CPU and DRAM where no source measures them, labelled estimated (the default).",
        ),
    ] = True,
    cpu_tdp_w: Annotated[
        float | None, Opt("--cpu-tdp-w", help="The CPU estimate's TDP per socket, watts (default: by model).")
    ] = None,
    no_monitor: Annotated[bool, Opt("--no-monitor", help="Sample nothing (the monitor's own cost).")] = False,
    idle_s: Annotated[float, Opt(help="Idle baseline before the trials, seconds (0 skips it).")] = 5.0,
    timeout_s: Annotated[float, Opt(help="Per-trial timeout, seconds (engine start, each repeat).")] = 1800.0,
    warmup: Annotated[bool, Opt("--warmup/--no-warmup", help="One warm-up batch before the repeats.")] = True,
    label: Annotated[
        str | None, Opt(help="A name that tells this run apart from others of its engine in reports.")
    ] = None,
    warmup_tokens: Annotated[
        int | None, Opt(min=1, help="Output tokens of the warm-up batch (default: as many as measured).")
    ] = None,
    drop_caches: Annotated[
        bool, Opt("--drop-caches", help="Drop the page cache before setup trials.")
    ] = False,
    park_s: Annotated[
        float,
        Opt(
            "--park-s",
            help="After the repeats, hold the loaded engine idle this long (and asleep, with "
            "--sleep-levels), each repeat: its energy per second, above idle.",
        ),
    ] = 0.0,
    sleep_levels: Annotated[
        str | None,
        Opt(
            "--sleep-levels",
            help="Sleep levels to measure after the repeats, e.g. 1,2: vLLM on a GPU (1, 2), Transformers "
            "(2 on a CPU, 1 and 2 on a GPU).",
        ),
    ] = None,
    setup_factors: Annotated[
        list[str] | None,
        Opt(
            "--setup-factors",
            help="Setup factors to cross, NAME=LEVEL,LEVEL (repeatable): cache=cold,warm compile=cold,warm "
            "loader=... cuda_graphs=on,off; --setup-repeats trials per combination.",
        ),
    ] = None,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress; the summary only.")] = False,
    verbose: Annotated[
        bool, Opt("--verbose", "-v", help="Show the engines' own output too, instead of only logging it.")
    ] = False,
) -> None:
    """Measure one engine, model and workload: setup trials and token-generation repeats."""
    import json
    import sys

    from joulebench.runner.config import RunConfig
    from joulebench.runner.run import execute

    if length_mode is not None and length_mode not in ("fixed", "natural"):
        raise UsageError(f"--length-mode must be fixed or natural, got {length_mode!r}")
    config = RunConfig(
        engine=engine,
        model=model,
        workload=workload,
        batch_size=batch_size,
        output_tokens=output_tokens,
        length_mode=length_mode,  # type: ignore[arg-type]  # checked above
        dataset=dataset,
        repeats=repeats,
        unmonitored_repeats=unmonitored_repeats,
        setup_repeats=setup_repeats,
        warmup=warmup,
        warmup_tokens=warmup_tokens,
        label=label,
        device=device,
        dtype=dtype,
        tensor_parallel=tensor_parallel,
        engine_options=parse_engine_opts(engine_opt or []),
        engine_env=parse_pairs(engine_env or []),
        estimate=estimate,
        cpu_tdp_w=cpu_tdp_w,
        monitor=not no_monitor,
        idle_s=idle_s,
        trial_timeout_s=timeout_s,
        endpoint=endpoint,
        server_cmd=server_cmd,
        max_concurrency=max_concurrency,
        request_rate=request_rate,
        drop_caches=drop_caches,
        setup_factors=_factors(setup_factors),
        park_s=park_s,
        sleep_levels=_levels(sleep_levels),
    )
    if quiet and verbose:
        raise UsageError("--quiet and --verbose: choose one")
    from rich.console import Console

    from joulebench.cli.capture import new_log_dir, to_log
    from joulebench.cli.signals import terminate_as_interrupt
    from joulebench.runner.display import RunProgress

    log_dir = new_log_dir(db, "run")
    started = RunProgress(None)  # sees whether a run row was made: else the logs hold nothing of use
    try:
        with to_log(log_dir / "joulebench.log", enabled=not verbose) as streams:
            err = Console(file=streams.err)
            started = RunProgress(
                _progress(err, streams.out, json_out or quiet),
                warn=lambda m: print(f"joulebench: warning: {m}", file=streams.err, flush=True),
            )
            try:
                with terminate_as_interrupt():
                    result = execute(config, db, progress=started, log_dir=log_dir)
            finally:
                started.stop()
            if json_out:
                streams.out.write(json.dumps(result.summary, indent=2, default=str) + "\n")
            else:
                from joulebench.runner.display import render_summary

                render_summary(result.summary, Console(file=streams.out))
            print(f"logs: {log_dir}", file=streams.err, flush=True)
    except KeyboardInterrupt:
        # typer turns Ctrl-C (and here SIGTERM) into a silent exit 130; say what was kept.
        print(f"joulebench: interrupted; finished trials are kept in {db}; logs: {log_dir}", file=sys.stderr)
        raise typer.Exit(130) from None
    except BaseException:
        if not started.run_id:
            from joulebench.cli.capture import remove_log_dir

            remove_log_dir(log_dir)
        raise
    if result.status == "failed":
        # said on stderr too, where a script looks for why (the summary went to stdout)
        first = next((f for f in result.summary["failures"] if f.get("error")), None)
        why = f": {first['kind']} {first['repeat_index'] + 1}: {first['error']}" if first else ""
        print(f"joulebench: error: run {result.run_id} failed{why}; logs: {log_dir}", file=sys.stderr)
        raise typer.Exit(1)


def _progress(err: Any, out: Any, silent: bool) -> Any:
    """A live line on a terminal; a line per step in a log (where a live line cannot redraw); nothing
    with --json (stdout holds the JSON alone) or --quiet."""
    if silent:
        return None
    from joulebench.runner.display import LineProgress, LiveProgress

    if err.is_terminal:
        return LiveProgress(err)
    return LineProgress(lambda line: print(line, file=out, flush=True))


def register(app: typer.Typer) -> None:
    """Add this command to the CLI."""
    app.command(name="run")(run)
