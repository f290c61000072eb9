"""The report's time figures: throughput, latency and setup time per engine, model and workload.

They need no power source, so a report has figures on any machine, even one where energy was neither
measured nor estimated; beside the energy figures they show what each joule bought.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from joulebench.report.figures import new_figure
from joulebench.results.aggregate import Stat, StatIndex
from joulebench.results.tidy import SETUP_PARTS

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

LATENCIES = (("ttft_s", "TTFT"), ("tpot_s", "TPOT"), ("itl_s", "ITL"))
POOLED = "all models"  # engine-wide stages are pooled over models in the summary


def _generation_cells(summary: pd.DataFrame) -> list[tuple[str, str, str]]:
    rows = summary[
        (summary["kind"] == "generation")
        & (summary["stage"] == "generate")
        & (summary["metric"] == "tokens_per_s")
    ]
    return sorted(set(rows[["engine", "model", "workload"]].itertuples(index=False, name=None)))


def _bar_labels(cells: list[tuple[str, ...]]) -> list[str]:
    return ["\n".join(c) for c in cells]


def throughput(summary: pd.DataFrame) -> Figure | None:
    """Output tokens per second of each cell, with its 95 % CI over repeats."""
    index = StatIndex(summary)
    cells = _generation_cells(summary)
    stats = [index.get("generation", e, m, w, "generate", "", "tokens_per_s") for e, m, w in cells]
    drawn = [(c, s) for c, s in zip(cells, stats, strict=True) if s is not None]
    if not drawn:
        return None
    fig = new_figure(max(5.0, 0.8 * len(drawn) + 2.5), 4.0)
    ax = fig.add_subplot()
    for x, (_, s) in enumerate(drawn):
        ax.bar(x, s.mean, color="#4c72b0")
        if s.half_width is not None:
            ax.errorbar(x, s.mean, yerr=s.half_width, color="black", capsize=4, linewidth=1)
        ax.annotate(f"{s.mean:.3g}", (x, s.mean), ha="center", va="bottom", fontsize=7,
                    xytext=(0, 2), textcoords="offset points")  # fmt: skip
    ax.set_xticks(range(len(drawn)), _bar_labels([c for c, _ in drawn]), fontsize=7)
    ax.set_ylabel("tokens/s")
    ax.set_title("Throughput (output tokens per second)")
    ax.set_xlabel("error bar: 95 % CI over repeats", fontsize=8)
    return fig


def latency(summary: pd.DataFrame) -> Figure | None:
    """TTFT, TPOT and ITL of each cell side by side, on a log axis (they differ by orders of magnitude)."""
    index = StatIndex(summary)
    cells = _generation_cells(summary)
    table: list[tuple[tuple[str, str, str], list[Stat | None]]] = []
    for e, m, w in cells:
        stats = [index.get("generation", e, m, w, "generate", "", metric) for metric, _ in LATENCIES]
        if any(s is not None and s.mean > 0 for s in stats):
            table.append(((e, m, w), stats))
    if not table:
        return None
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    fig = new_figure(max(5.0, 1.0 * len(table) + 2.5), 4.0)
    ax = fig.add_subplot()
    width = 0.8 / len(LATENCIES)
    for k, (_, name) in enumerate(LATENCIES):
        xs, ys, errs = [], [], []
        for x, (_, stats) in enumerate(table):
            s = stats[k]
            if s is not None and s.mean > 0:
                xs.append(x + (k - 1) * width)
                ys.append(s.mean)
                errs.append(s.half_width or 0.0)
        if xs:
            ax.bar(xs, ys, width=width, yerr=errs, capsize=2, color=f"C{k}", label=name)
    ax.set_yscale("log")
    # plain numbers at 1, 2, 5 x 10^k, as the energy figures' log axes
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks(range(len(table)), _bar_labels([c for c, _ in table]), fontsize=7)
    ax.set_ylabel("seconds (log)")
    # the legend names the three; the whole phrase does not fit the narrowest figure
    ax.set_title("Latency per request: TTFT, TPOT, ITL")
    ax.legend(fontsize=8)
    return fig


def setup_time(summary: pd.DataFrame) -> Figure | None:
    """Each engine and model's setup, its stages stacked; the engine-wide stages come from all models."""
    index = StatIndex(summary)
    rows = summary[(summary["kind"] == "setup") & (summary["metric"] == "duration_s")]
    pairs = sorted(
        {(e, m) for e, m in rows[["engine", "model"]].itertuples(index=False, name=None) if m != POOLED}
    )
    bars = []
    for e, m in pairs:
        parts = []
        for stage in SETUP_PARTS:
            s = index.get("setup", e, m, "", stage, "", "duration_s") or index.get(
                "setup", e, POOLED, "", stage, "", "duration_s"
            )
            if s is not None:
                parts.append((stage, s))
        whole = index.get("setup", e, m, "", "setup", "", "duration_s")
        if parts or whole:
            bars.append(((e, m), parts, whole))
    if not bars:
        return None
    fig = new_figure(max(5.0, 0.9 * len(bars) + 3.0), 4.0)
    ax = fig.add_subplot()
    labelled: set[str] = set()
    for x, (_, parts, whole) in enumerate(bars):
        bottom = 0.0
        for k, (stage, s) in enumerate(parts):
            colour = f"C{SETUP_PARTS.index(stage) if stage in SETUP_PARTS else k}"
            ax.bar(x, s.mean, bottom=bottom, color=colour, label=None if stage in labelled else stage)
            labelled.add(stage)
            bottom += s.mean
        if whole is not None:
            ax.errorbar(x, whole.mean, yerr=whole.half_width or 0.0, fmt="_", color="black", capsize=4)
    ax.set_xticks(range(len(bars)), _bar_labels([c for c, _, _ in bars]), fontsize=7)
    ax.set_ylabel("seconds")
    ax.set_title("Setup time by stage")
    ax.set_xlabel("black mark: the whole setup, with its 95 % CI", fontsize=8)
    ax.legend(fontsize=8)
    return fig
