"""`joulebench advise`: rank engines by energy per day for a load, and say where the ranking flips."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from joulebench.store.frames import DEFAULT_DB_PATH

if TYPE_CHECKING:
    import pandas as pd

    from joulebench.report.advisor import Advice, Crossover


def register(app: typer.Typer) -> None:
    """Add this command to the CLI."""
    app.command()(advise)


def advise(
    requests_per_day: Annotated[
        float | None, typer.Option(help="Requests served per day (N); not needed for a latency target alone.")
    ] = None,
    cold_starts_per_day: Annotated[
        float | None, typer.Option(help="Engine starts per day, each a full setup (K).")
    ] = None,
    max_tpot_ms: Annotated[
        float | None, typer.Option(help="A latency target: the mean time per output token at most, ms.")
    ] = None,
    max_ttft_ms: Annotated[
        float | None, typer.Option(help="A latency target: the mean time to first token at most, ms.")
    ] = None,
    tokens_per_request: Annotated[
        float | None, typer.Option(help="Output tokens per request (T); default: the measured mean.")
    ] = None,
    db: Annotated[Path, typer.Option(help="The results database.")] = DEFAULT_DB_PATH,
    runs: Annotated[str | None, typer.Option(help="Which runs, as for `joulebench report --runs`.")] = None,
    model: Annotated[
        str | None, typer.Option(help="The model (label) to advise for; needed if several.")
    ] = None,
    workload: Annotated[
        str | None, typer.Option(help="The workload to advise for; needed if several.")
    ] = None,
    grid_gco2_per_kwh: Annotated[
        float | None, typer.Option(help="Grid carbon intensity, to add gCO2 per day.")
    ] = None,
    price_per_kwh: Annotated[
        float | None, typer.Option(help="Electricity price, to add a cost per day.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the advice as JSON.")] = False,
    policy: Annotated[
        bool,
        typer.Option(
            "--policy",
            help="What a warm engine should do between requests (stay parked, sleep, or stop and restart "
            "after T idle seconds) for an arrival pattern: --requests-per-day [--burstiness] or --arrivals.",
        ),
    ] = False,
    burstiness: Annotated[
        float, typer.Option(help="With --policy: the gaps' coefficient of variation (1: Poisson arrivals).")
    ] = 1.0,
    arrivals: Annotated[
        Path | None, typer.Option(help="With --policy: a file of request times in seconds, one a line.")
    ] = None,
    engine: Annotated[
        str | None, typer.Option(help="With --policy: the engine (label) to advise for; needed if several.")
    ] = None,
    figure: Annotated[
        Path | None, typer.Option(help="With --policy: also draw energy against T per policy (.png or .svg).")
    ] = None,
) -> None:
    """Rank engines by daily energy ((E_setup + E_first) x K + J/token x N x T) from measured data, with
    crossovers; E_first is the first batch's extra cost after a restart (its measured warm-up)."""
    from joulebench.errors import UsageError
    from joulebench.report.advisor import advise as compute
    from joulebench.results.aggregate import summarize_metrics
    from joulebench.results.tidy import trial_metrics
    from joulebench.store.frames import load_frames

    for name, value in (("--grid-gco2-per-kwh", grid_gco2_per_kwh), ("--price-per-kwh", price_per_kwh)):
        if value is not None and not (value >= 0 and math.isfinite(value)):
            raise UsageError(f"{name} must be a number >= 0, got {value}")
    for name, value in (("--max-tpot-ms", max_tpot_ms), ("--max-ttft-ms", max_ttft_ms)):
        if value is not None and not (value > 0 and math.isfinite(value)):
            raise UsageError(f"{name} must be a number > 0, got {value}")
    if policy:
        others = {"--cold-starts-per-day": cold_starts_per_day, "--max-tpot-ms": max_tpot_ms,
                  "--max-ttft-ms": max_ttft_ms, "--tokens-per-request": tokens_per_request}  # fmt: skip
        for name, number in others.items():
            if number is not None:
                raise UsageError(f"{name} does not go with --policy (the policy decides when to restart)")
        _policy(db, runs, requests_per_day, burstiness, arrivals, engine, model, workload, figure, as_json)
        return
    policy_only: dict[str, object] = {"--arrivals": arrivals, "--engine": engine, "--figure": figure}
    for name, given in policy_only.items():
        if given is not None:
            raise UsageError(f"{name} goes with --policy")
    latency_only = requests_per_day is None and cold_starts_per_day is None
    if latency_only and max_tpot_ms is None and max_ttft_ms is None:
        raise UsageError(
            "give --requests-per-day and --cold-starts-per-day, or a latency target (--max-tpot-ms)"
        )
    if not latency_only and (requests_per_day is None or cold_starts_per_day is None):
        raise UsageError("--requests-per-day and --cold-starts-per-day go together")
    frames = load_frames(db, runs)
    metrics = trial_metrics(frames)
    if model is not None:
        # A hub ID or path names the same model as its label; tables and the advisor use the label.
        from joulebench.results.tidy import model_label

        labels = {r["model"]: model_label(r) for r in frames.runs.to_dict("records")}
        model = labels.get(model, model)
    summary = summarize_metrics(metrics)
    if max_tpot_ms is not None or max_ttft_ms is not None:
        _latency(summary, max_tpot_ms, max_ttft_ms, model, as_json, exit_when_none=latency_only)
        if latency_only:
            return
    assert requests_per_day is not None and cold_starts_per_day is not None
    advice = compute(
        summary, metrics, requests_per_day, cold_starts_per_day, tokens_per_request,
        model, workload, grid_gco2_per_kwh, price_per_kwh,
    )  # fmt: skip
    print(json.dumps(advice.to_dict(), indent=2) if as_json else format_advice(advice))


def _latency(
    summary: pd.DataFrame,
    max_tpot_ms: float | None,
    max_ttft_ms: float | None,
    model: str | None,
    as_json: bool,
    exit_when_none: bool,
) -> None:
    """The least-energy measured cell within the latency target, and the frontier."""
    from joulebench.report.latency import choose

    ms = 1000.0
    choice = choose(summary, None if max_tpot_ms is None else max_tpot_ms / ms,
                    None if max_ttft_ms is None else max_ttft_ms / ms, model)  # fmt: skip

    def row(c: object) -> dict[str, object]:
        keys = ("engine", "model", "workload", "j_per_token", "tpot_s", "ttft_s", "pct_of_floor")
        return {k: getattr(c, k) for k in keys}

    if as_json:
        print(json.dumps({"target": {"max_tpot_ms": max_tpot_ms, "max_ttft_ms": max_ttft_ms},
                          "chosen": row(choice.chosen) if choice.chosen else None,
                          "meeting": [row(c) for c in choice.meeting],
                          "frontier": [row(c) for c in choice.frontier]}, indent=2))  # fmt: skip
    else:
        target = ", ".join(
            f"{name} <= {v:g} ms"
            for name, v in (("TPOT", max_tpot_ms), ("TTFT", max_ttft_ms))
            if v is not None
        )
        lines = [f"Latency target: {target} (means over requests and repeats; measured J/token only)"]
        for c in choice.cells:
            ok = "meets" if c in choice.meeting else "misses"
            tpot = "-" if c.tpot_s is None else f"{c.tpot_s * ms:.4g} ms"
            ttft = "-" if c.ttft_s is None else f"{c.ttft_s * ms:.4g} ms"
            mark = " <- least energy within the target" if c == choice.chosen else ""
            floor = "" if c.pct_of_floor is None else f" (GPU {c.pct_of_floor:.0f} % of floor)"
            lines.append(
                f"  {ok:6} {c.name}: {c.j_per_token:.4g} J/token{floor}, TPOT {tpot}, TTFT {ttft}{mark}"
            )
        lines.append("Frontier (no cell beats these on both TPOT and J/token): "
                     + "; ".join(c.name for c in choice.frontier))  # fmt: skip
        print("\n".join(lines))
    if choice.chosen is None and exit_when_none:
        raise typer.Exit(1)


def _ci(mean: float, half: float | None, digits: int = 4) -> str:
    from joulebench.report.tables import plain

    return (
        f"{plain(mean, digits)} ± {plain(half, 2)}" if half is not None else f"{plain(mean, digits)} (no CI)"
    )


def _policy(
    db: Path,
    runs: str | None,
    requests_per_day: float | None,
    burstiness: float,
    arrivals_file: Path | None,
    engine: str | None,
    model: str | None,
    workload: str | None,
    figure: Path | None,
    as_json: bool,
) -> None:
    from joulebench.errors import UsageError
    from joulebench.report.policy import Arrivals, advise_policy
    from joulebench.results.aggregate import summarize_metrics
    from joulebench.results.tidy import trial_metrics
    from joulebench.store.frames import load_frames

    if (requests_per_day is None) == (arrivals_file is None):
        raise UsageError(
            "--policy needs one arrival pattern: --requests-per-day N [--burstiness C] or --arrivals FILE"
        )
    if figure is not None and figure.suffix not in (".png", ".svg"):
        raise UsageError(f"--figure {figure}: give a .png or .svg file")
    if figure is not None and figure.exists() and not figure.is_file():
        raise UsageError(f"--figure {figure} exists and is not a file")
    if figure is not None and not figure.parent.is_dir():
        raise UsageError(f"--figure {figure}: no folder {figure.parent}")
    pattern = (
        Arrivals.from_file(arrivals_file)
        if arrivals_file is not None
        else Arrivals.from_rate(float(requests_per_day or 0), burstiness)
    )
    summary = summarize_metrics(trial_metrics(load_frames(db, runs)))
    advice = advise_policy(summary, pattern, engine, model, workload)
    if figure is not None:
        from joulebench.report.policy import policy_figure

        fig = policy_figure(advice)
        tmp = figure.with_name(figure.name + ".tmp")
        fig.savefig(
            tmp, format=figure.suffix[1:], metadata={"Date": None} if figure.suffix == ".svg" else None
        )
        tmp.replace(figure)
    if as_json:
        print(json.dumps(_policy_dict(advice), indent=2))
    else:
        print(format_policy(advice) + (f"\nFigure: {figure}" if figure is not None else ""))


def _policy_dict(advice: object) -> dict[str, object]:
    from joulebench.report.policy import PolicyAdvice

    assert isinstance(advice, PolicyAdvice)
    return {
        "engine": advice.engine,
        "model": advice.model,
        "workload": advice.workload,
        "arrivals": advice.arrivals.description,
        "requests_per_day": advice.arrivals.per_day,
        "policies": [
            {
                "policy": r.policy.name,
                "timeout_s": None if math.isinf(r.timeout_s) else r.timeout_s,
                # false: no gap is as long as T, so the policy is always warm by another name
                "timeout_reached": r.waits_per_day > 0,
                "energy_kwh_per_day": r.energy_j_per_day / 3.6e6,
                "waits_per_day": r.waits_per_day,
                "added_latency_s": r.added_latency_s,
                "wait_s": r.policy.back_s,
            }
            for r in advice.results
        ],
        "inputs": [
            {
                "name": i.name,
                "mean": i.stat.mean,
                "ci_half_width": i.stat.half_width,
                "unit": i.unit,
                "estimated": i.stat.estimated,
                "source": i.source,
            }
            for i in advice.inputs
        ],
        "not_weighed": list(advice.missing),
    }


def _timeout_text(seconds: float) -> str:
    """An idle timeout of the grid (0 s to a day): 447 s, 3,162 s, 31,623 s (8.78 h)."""
    if seconds < 1000:
        return f"{seconds:.3g} s"
    hours = f" ({seconds / 3600:.3g} h)" if seconds >= 3600 else ""
    return f"{seconds:,.0f} s{hours}"


def format_policy(advice: object) -> str:
    from joulebench.report.policy import PolicyAdvice

    assert isinstance(advice, PolicyAdvice)
    workload = f", workload {advice.workload}" if advice.workload else ""
    lines = [
        f"Engine {advice.engine}, model {advice.model}{workload}",
        f"Arrivals: {advice.arrivals.description}",
        "",
    ]
    rows = [["Policy", "Idle timeout T", "Energy/day above idle (kWh)", "Requests that wait/day", "Wait (s)",
             "Added latency, mean (s)"]]  # fmt: skip
    for r in advice.results:
        t = "never" if math.isinf(r.timeout_s) else _timeout_text(r.timeout_s)
        if not math.isinf(r.timeout_s) and not r.waits_per_day:
            # its least energy is never to leave the parked state: any T beyond the longest gap
            t = f"{t} or more: no gap that long"
        rows.append([r.policy.name, t, f"{r.energy_j_per_day / 3.6e6:.4g}", f"{r.waits_per_day:.4g}",
                     f"{r.policy.back_s:.3g}", f"{r.added_latency_s:.3g}"])  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    best = advice.results[0]
    after = "" if math.isinf(best.timeout_s) else f", T = {_timeout_text(best.timeout_s)}"
    lines += ["", f"Least energy: {best.policy.name}{after}."]
    lines += ["", "Inputs, from the database (mean ± 95 % CI half-width):"]
    for i in advice.inputs:
        half = f" ± {i.stat.half_width:.3g}" if i.stat.half_width is not None else " (n=1, no CI)"
        est = " (estimated)" if i.stat.estimated else ""
        below = " (below the idle baseline: counted as 0)" if i.stat.mean < 0 else ""
        lines.append(f"  {i.name}: {i.stat.mean:.4g}{half} {i.unit}{est}{below}, from {i.source}")
    if any(i.stat.estimated for i in advice.inputs):
        lines.append("Some inputs are estimated, not measured: the choice is only as good as the estimate.")
    lines += [f"not weighed: {m}" for m in advice.missing]
    lines.append(
        "Above idle: the machine's idle baseline and the serving itself cost the same under every policy and "
        "are left out (docs/lifecycle.md)."
    )
    return "\n".join(lines)


def format_advice(advice: Advice) -> str:
    from joulebench.report.tables import plain

    load = advice.load
    t_from = "measured mean" if load.tokens_measured else "given"
    lines = [
        f"Model {advice.model}, workload {advice.workload}",
        f"Load: {load.requests_per_day:g} requests/day x {load.tokens_per_request:.4g} tokens ({t_from}) = "
        f"{load.tokens_per_day:.6g} tokens/day; {load.cold_starts_per_day:g} cold starts/day",
        "",
    ]
    first = any(d.first_batch_n for d in advice.ranking)
    header = ["Rank", "Engine", "Energy/day (kWh)", "Setup (J/start)"]
    header += ["First batch (J/start)"] if first else []
    floor = any(d.pct_of_floor is not None for d in advice.ranking)
    header += ["J/token"]
    header += ["GPU % of floor"] if floor else []
    header += ["gCO2/day"] if advice.grid_gco2_per_kwh is not None else []
    header += ["Cost/day"] if advice.price_per_kwh is not None else []
    rows = [header]
    for rank, d in enumerate(advice.ranking, 1):
        half_kwh = None if d.energy_half_width_j is None else d.energy_half_width_j / 3.6e6
        row = [str(rank), d.engine, _ci(d.kwh, half_kwh), _ci(d.setup_energy_j, d.setup_half_width_j)]
        if first:
            n = d.first_batch_n
            row.append(f"{plain(d.first_batch_j, 4)} (n={n})" if n else "not measured")
        row.append(_ci(d.j_per_token, d.j_per_token_half_width))
        if floor:
            row.append("-" if d.pct_of_floor is None else f"{d.pct_of_floor:.0f} %")
        row += [f"{d.gco2:.4g}"] if d.gco2 is not None else []
        row += [f"{d.cost:.4g}"] if d.cost is not None else []
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    if advice.crossovers:
        lines += ["", "Crossovers (range: from the 95 % CIs of both engines):"]
        lines += [f"  {_crossover(c, advice)}" for c in advice.crossovers]
    for better, worse in advice.dominance:
        lines.append(
            f"{better} uses less energy than {worse} at any load (lower restart and per-token energy)."
        )
    for a, b in advice.ties:
        lines.append(
            f"{a} and {b}: their daily energies' CIs overlap at this load; more repeats would settle it."
        )
    for d in advice.ranking:
        if d.setup_from:
            lines.append(
                f"{d.engine}: setup energy from the trials '{d.setup_from}' (a restart finds its caches)."
            )
    if first:
        lines.append(
            "First batch: the first batch of this shape after an engine start (its measured warm-up) above "
            "the same tokens at the warm J/token, added to every cold start; n engine starts, not in the CIs."
        )
    for engine, why in advice.excluded:
        lines.append(f"not ranked: {engine}: {why}")
    if floor:
        lines.append(
            "GPU % of floor: the GPU's J/token over the least its card allows for this model and batch "
            "(`joulebench roofline`; 100 % would be at the limit)."
        )
    lines.append("Only measured totals are used (estimated components never rank an engine).")
    return "\n".join(lines)


def _crossover(c: Crossover, advice: Advice) -> str:
    high = "inf" if math.isinf(c.high) else f"{c.high:.4g}"
    if c.variable == "requests_per_day":
        unit, held = "requests/day", f"{advice.load.cold_starts_per_day:g} cold starts/day"
    else:
        unit, held = "cold starts/day", f"{advice.load.requests_per_day:g} requests/day"
    return (
        f"{c.engine_a} vs {c.engine_b}: {c.cheaper_below} is cheaper below {c.value:.4g} {unit} "
        f"(range {c.low:.4g} to {high}), {c.cheaper_above} above, at {held}"
    )
