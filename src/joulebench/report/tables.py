"""Display tables: the setup stage (the paper's Table 1) and token generation per workload.

Every cell is ``mean ± half-width of the 95 % CI`` across repeats. A component that was not measured
reads "n/a (not measured)", never 0; an estimated one carries "(est.)" and never enters a measured total.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from joulebench.results.aggregate import Stat, StatIndex
from joulebench.results.energy import TOTAL, TOTAL_INCL_ESTIMATED
from joulebench.results.tidy import PARTS, SETUP_PARTS, stage_holds

if TYPE_CHECKING:
    import pandas as pd

NOT_MEASURED = "n/a (not measured)"
PHASES = {
    "spawn": "Process spawn",
    "import": "Import",
    "engine_init": "Engine initialisation (E_IE)",
    "model_load": "Model loading (E_LM)",
    "first_token": "First token",
    "setup": "Setup total, until the first token",
}
COMPONENT_NAMES = {
    "gpu": "GPU",
    "cpu": "CPU",
    "dram": "DRAM",
    "other": "Other (node - parts)",
    "node": "Node",
    "platform": "Platform (psys)",
    TOTAL: "Measured total",
    TOTAL_INCL_ESTIMATED: "Total incl. estimated",
}
CI_NOTE = (
    "Each cell: mean ± half-width of the 95 % CI (Student t) across n repeats; [±b]: the measurement's own "
    "bound (counter resolution, update period at both edges, gaps), mean over the repeats."
)
STEADY_NOTE = (
    "TPOT: time per output token after the first, per request. Steady J/token: the measured total over the "
    "window where every request is decoding (ramp-up and ramp-down left out, as ML.ENERGY defines it); '-' "
    "where the engine gives no per-request token times or the batch never runs fully occupied."
)
TOTAL_NOTE = (
    "Measured total: the node (IPMI) where it was measured, else the sum of the measured GPU, CPU and DRAM "
    "('covers' names which); estimated components (est.) are only in 'incl. estimated'."
)


@dataclass(frozen=True)
class Table:
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    notes: tuple[str, ...] = field(default=())


def format_stat(stat: Stat | None) -> str:
    """``mean ± half-width``, the mean rounded where the half-width's second significant digit ends."""
    if stat is None:
        return NOT_MEASURED
    half = stat.half_width
    if half is None:
        text = f"{plain(stat.mean)} (n=1, no CI)"
    elif half <= 1e-9 * abs(stat.mean):  # identical repeats; what is left is floating-point noise
        text = f"{plain(stat.mean)} ± 0"
    else:
        decimals = max(0, 1 - math.floor(math.log10(half)))
        text = f"{stat.mean:.{decimals}f} ± {half:.{decimals}f}"
    if stat.bound is not None:
        text += f" [±{plain(stat.bound, 2)}]"
    return text + (" (est.)" if stat.estimated else "")


def plain(value: float, digits: int = 4) -> str:
    """``digits`` significant digits without an exponent (22600, not 2.26e+04)."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def setup_table(summary: pd.DataFrame) -> Table | None:
    """Latency and energy per component of each setup phase: per engine, or per engine x model."""
    index = StatIndex(summary)
    setup = summary[summary["kind"] == "setup"]
    if setup.empty:
        return None
    has_est = bool((setup["component"] == TOTAL_INCL_ESTIMATED).any())
    columns = ["Phase", "Engine", "Model", "n", "Latency (s)", "Measured total (J)"]
    columns += ["Total incl. estimated (J)"] if has_est else []
    columns += ["Covers", "GPU (J)", "CPU (J)", "DRAM (J)", "Other (J)"]
    rows = []
    holding: dict[str, list[str]] = {}  # "engine initialisation holds model loading" -> engines
    present = set(setup["stage"])
    # In the order they happen (the runner's process spawn first, as `run` prints them); stages of an
    # engine beyond these come by name, then the whole setup.
    known = [s for s in SETUP_PARTS if s in present]
    stages = known + sorted(present - {*SETUP_PARTS, "setup"}) + (["setup"] if "setup" in present else [])
    for stage in stages:
        pairs = setup[setup["stage"] == stage][["engine", "model"]].drop_duplicates()
        for engine, model in sorted(pairs.itertuples(index=False, name=None)):

            def get(
                component: str, metric: str = "energy_j", _e: str = engine, _m: str = model, _s: str = stage
            ) -> Stat | None:
                return index.get("setup", _e, _m, "", _s, component, metric)

            latency, total = get("", "duration_s"), get(TOTAL)
            phase = PHASES.get(stage, stage.replace("_", " ").capitalize())
            held = stage_holds(engine).get(stage)
            if held:
                phase += f", incl. {held}"
                holding.setdefault(f"{PHASES.get(stage, stage)} holds {held}", []).append(engine)
            row = [
                phase,
                engine,
                model,
                str(latency.n if latency else 0),
            ]
            row += [format_stat(latency), format_stat(total)]
            row += [format_stat(get(TOTAL_INCL_ESTIMATED))] if has_est else []
            row += [total.method if total else "-"]
            row += [format_stat(get(c)) for c in (*PARTS, "other")]
            rows.append(tuple(row))
    notes = [CI_NOTE, TOTAL_NOTE]
    notes += [
        f"{', '.join(sorted(set(engines)))}: {what}, not reported apart (docs/engines.md); compare the "
        "setup total, not this stage, with other engines'."
        for what, engines in holding.items()
    ]
    return Table("Setup stage: latency and energy", tuple(columns), tuple(rows), tuple(notes))


def _or_dash(stat: Stat | None) -> str:
    # a latency or window the engine does not expose is unavailable, not an unmeasured component
    return format_stat(stat) if stat is not None else "-"


def generation_tables(summary: pd.DataFrame) -> list[Table]:
    """Per workload: a headline table (measured totals) and a per-component breakdown."""
    index = StatIndex(summary)
    gen = summary[(summary["kind"] == "generation") & (summary["stage"] == "generate")]
    tables = []
    for workload in sorted(set(gen["workload"])):
        part = gen[gen["workload"] == workload]
        pairs = sorted(part[["engine", "model"]].drop_duplicates().itertuples(index=False, name=None))
        components = [c for c in ("node", "platform") if c in set(part["component"])]
        components = [*PARTS, "other", *components, TOTAL]
        has_est = bool((part["component"] == TOTAL_INCL_ESTIMATED).any())
        if has_est:
            components.append(TOTAL_INCL_ESTIMATED)
        head, breakdown = [], []
        for engine, model in pairs:

            def get(
                component: str, metric: str, _e: str = engine, _m: str = model, _w: str = workload
            ) -> Stat | None:
                return index.get("generation", _e, _m, _w, "generate", component, metric)

            tokens, total = get("", "tokens_per_s"), get(TOTAL, "j_per_token")
            steady = index.get("generation", engine, model, workload, "steady", TOTAL, "j_per_token")
            head.append(
                (
                    engine,
                    model,
                    str(tokens.n if tokens else 0),
                    format_stat(total),
                    format_stat(get(TOTAL, "j_per_response")),
                    format_stat(get(TOTAL, "power_w")),
                    format_stat(tokens),
                    format_stat(get("", "ttft_s")),
                    _or_dash(get("", "tpot_s")),
                    _or_dash(steady),
                    total.method if total else "-",
                    *([format_stat(get(TOTAL_INCL_ESTIMATED, "j_per_token"))] if has_est else []),
                )
            )
            for c in components:
                cells = [format_stat(get(c, m)) for m in ("j_per_token", "j_per_response", "power_w")]
                breakdown.append((engine, model, COMPONENT_NAMES[c], *cells))
        cols: tuple[str, ...] = (
            "Engine",
            "Model",
            "n",
            "J/token",
            "J/response",
            "J/s (W)",
            "tokens/s",
            "TTFT (s)",
            "TPOT (s)",
        )
        cols += ("Steady J/token", "Covers")
        cols += ("J/token incl. estimated",) if has_est else ()
        notes = (CI_NOTE, TOTAL_NOTE, STEADY_NOTE)
        tables.append(Table(f"Token generation: {workload}", cols, tuple(head), notes))
        cols = ("Engine", "Model", "Component", "J/token", "J/response", "J/s (W)")
        tables.append(Table(f"Token generation by component: {workload}", cols, tuple(breakdown), (CI_NOTE,)))
    return tables
