"""The report's figures (the paper's Figs. 1-5), drawn on matplotlib ``Figure`` objects with the Agg canvas.

No pyplot: a figure built directly owns no global state, so building a report never touches the user's
backend or leaks open figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from joulebench.errors import require
from joulebench.results.aggregate import Stat, StatIndex
from joulebench.results.energy import TOTAL, TOTAL_INCL_ESTIMATED

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.colors import Colormap
    from matplotlib.figure import Figure

STACK = ("gpu", "cpu", "dram", "other")
COLOURS = {"gpu": "#4c72b0", "cpu": "#dd8452", "dram": "#55a868", "other": "#8c8c8c", "node": "#8172b3"}
PER = {
    "j_per_token": ("Energy per token", "J/token"),
    "j_per_response": ("Energy per response", "J/response"),
    "power_w": ("Energy per second", "J/s (W)"),
}


@dataclass(frozen=True)
class FigureFiles:
    name: str
    title: str
    png: Path
    svg: Path


def new_figure(width_in: float, height_in: float) -> Figure:
    require("matplotlib", extra="report")
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), dpi=100, layout="constrained")


def save_figure(fig: Figure, out_dir: Path, name: str, title: str) -> FigureFiles:
    import matplotlib

    png, svg = out_dir / f"{name}.png", out_dir / f"{name}.svg"
    fig.savefig(png, format="png")
    # the same data gives the same SVG: no date, and element ids from a fixed salt instead of a random one
    with matplotlib.rc_context({"svg.hashsalt": name}):
        fig.savefig(svg, format="svg", metadata={"Date": None})
    for path in (png, svg):
        path.chmod(0o600)  # owner-only, like the report they belong to
    return FigureFiles(name, title, png, svg)


def _cells(summary: pd.DataFrame) -> tuple[list[str], list[tuple[str, str]]]:
    gen = summary[(summary["kind"] == "generation") & (summary["stage"] == "generate")]
    # engines with no energy at all (run unmonitored, for the monitor's cost) have nothing to draw
    engines = sorted(set(gen[gen["component"].isin([TOTAL, TOTAL_INCL_ESTIMATED])]["engine"]))
    columns = sorted(set(gen[["model", "workload"]].itertuples(index=False, name=None)))
    return engines, columns


def _get(
    index: StatIndex, engine: str, model: str, workload: str, component: str, metric: str
) -> Stat | None:
    return index.get("generation", engine, model, workload, "generate", component, metric)


def _headline(index: StatIndex, e: str, m: str, w: str, metric: str) -> Stat | None:
    """The measured total; only where nothing was measured, the estimated one (its Stat says estimated)."""
    return _get(index, e, m, w, TOTAL, metric) or _get(index, e, m, w, TOTAL_INCL_ESTIMATED, metric)


def heatmap(summary: pd.DataFrame) -> Figure | None:
    """Fig. 1: measured total J/token, engines x (model, workload); lower is better (green)."""
    import numpy as np

    index = StatIndex(summary)
    engines, columns = _cells(summary)
    if not engines:
        return None
    stats = [[_headline(index, e, m, w, "j_per_token") for (m, w) in columns] for e in engines]
    values = np.array([[s.mean if s else np.nan for s in row] for row in stats])
    fig = new_figure(max(4.5, 1.6 * len(columns) + 2), max(2.5, 0.6 * len(engines) + 1.5))
    ax = fig.add_subplot()
    cmap = _colormap("RdYlGn_r")
    masked = np.ma.masked_invalid(values)  # type: ignore[no-untyped-call]
    image = ax.imshow(masked, cmap=cmap, aspect="auto")
    for i, row in enumerate(stats):
        for j, s in enumerate(row):
            text = (
                "n/a" if s is None else f"{s.mean:.3g}" + (f"\n± {s.half_width:.2g}" if s.half_width else "")
            )
            text += "\n(est.)" if s is not None and s.estimated else ""
            ax.text(j, i, text, ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(columns)), [f"{m}\n{w}" for m, w in columns], fontsize=8)
    ax.set_yticks(range(len(engines)), engines)
    ax.set_title("Energy per token (J/token)")
    fig.colorbar(image, ax=ax, label="J/token")
    return fig


def _colormap(name: str) -> Colormap:
    import matplotlib

    return matplotlib.colormaps[name].with_extremes(bad="#dddddd")


def component_bars(summary: pd.DataFrame, metric: str) -> Figure | None:
    """Figs. 2-4: component-stacked bars per (engine, model, workload); error bar = CI of the total."""
    index = StatIndex(summary)
    engines, columns = _cells(summary)
    bars = [(e, m, w) for (m, w) in columns for e in engines if _headline(index, e, m, w, metric)]
    if not bars:
        return None
    title, unit = PER[metric]
    fig = new_figure(max(5.0, 0.8 * len(bars) + 2.5), 4.2)
    ax = fig.add_subplot()
    labelled: set[str] = set()
    for x, (e, m, w) in enumerate(bars):
        bottom = 0.0
        for comp, s in _stack(index, e, m, w, metric):
            label = f"{comp} (estimated)" if s.estimated else comp
            hatch = "//" if s.estimated else None
            ax.bar(x, s.mean, bottom=bottom, color=COLOURS[comp], hatch=hatch, edgecolor="white",
                   label=None if label in labelled else label)  # fmt: skip
            labelled.add(label)
            bottom += s.mean
        total = _headline(index, e, m, w, metric)
        if total is not None and total.half_width is not None:
            ax.errorbar(x, total.mean, yerr=total.half_width, color="black", capsize=4, linewidth=1)
    ax.set_xticks(range(len(bars)), [f"{e}\n{m}\n{w}" for e, m, w in bars], fontsize=7)
    ax.set_ylabel(unit)
    ax.set_title(f"{title} by component")
    ax.set_xlabel("error bar: 95 % CI of the measured total (of the estimated one where none)", fontsize=8)
    ax.legend(fontsize=8)
    return fig


def _stack(index: StatIndex, e: str, m: str, w: str, metric: str) -> list[tuple[str, Stat]]:
    """The segments of one bar: measured parts, then estimated ones; they add up to what is drawn."""
    total = _headline(index, e, m, w, metric)
    assert total is not None
    stats = [(c, _get(index, e, m, w, c, metric)) for c in STACK]
    measured = [(c, s) for c, s in stats if s is not None and not s.estimated]
    estimated = [(c, s) for c, s in stats if s is not None and s.estimated]
    if total.method != "node":
        return measured + estimated
    # The node contains every part, estimated ones too: draw the measured parts and the rest as "other".
    rest = total.mean - sum(s.mean for _, s in measured)
    if not measured:
        return [("node", total)]
    if "other" not in dict(measured) and rest > 0:
        measured.append(("other", Stat(rest, None, total.n, False, "derived")))
    return measured


def efficiency(summary: pd.DataFrame) -> Figure | None:
    """Fig. 5: J/token against tokens/s; iso-power curves W = J/token x tokens/s."""
    import numpy as np

    index = StatIndex(summary)
    engines, columns = _cells(summary)
    points = []
    for e in engines:
        for m, w in columns:
            jt, tps = _headline(index, e, m, w, "j_per_token"), _get(index, e, m, w, "", "tokens_per_s")
            if jt and tps and jt.mean > 0 and tps.mean > 0:
                points.append((e, m, w, jt, tps))
    if not points:
        return None
    from matplotlib.lines import Line2D

    fig = new_figure(6.5, 4.5)
    ax = fig.add_subplot()
    # colour: the engine; marker: the model; the label beside a point: its workload
    colours = {e: f"C{i % 10}" for i, e in enumerate(engines)}
    models = sorted({p[1] for p in points})
    markers = {m: "osD^vP*Xh"[i] if i < 9 else "o" for i, m in enumerate(models)}
    for e, m, w, jt, tps in points:
        ax.errorbar(tps.mean, jt.mean, xerr=tps.half_width, yerr=jt.half_width, fmt=markers[m],
                    color=colours[e], capsize=3)  # fmt: skip
        est = " (est.)" if jt.estimated else ""
        ax.annotate(f"{w}{est}", (tps.mean, jt.mean), fontsize=7, xytext=(4, 4), textcoords="offset points")
    x_lo = min(p[4].mean for p in points) / 2
    x_hi = max(p[4].mean for p in points) * 2
    xs = np.geomspace(x_lo, x_hi, 100)
    for watts in iso_power_levels([p[3].mean * p[4].mean for p in points]):
        ax.plot(xs, watts / xs, linestyle=":", color="grey", linewidth=1)
        ax.annotate(f"{watts:g} W", (xs[-1], watts / xs[-1]), fontsize=7, color="grey", ha="right")
    _log_axes(ax)
    ax.set_xlabel("Throughput (tokens/s)")
    # as fig. 2-4 say: the measured total, the estimated one only where nothing was measured
    ax.set_ylabel(
        "Energy per token (J/token, measured total"
        + ("; (est.): estimated)" if any(p[3].estimated for p in points) else ")")
    )
    ax.set_title("Energy per token against throughput (dotted: constant power)")
    handles = [Line2D([], [], color=colours[e], marker="s", linestyle="", label=e) for e in engines]
    handles += [
        Line2D([], [], color="grey", marker=markers.get(m, "o"), linestyle="", label=m) for m in models
    ]
    ax.legend(handles=handles, fontsize=8)
    return fig


def _log_axes(ax: Axes) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.set_yscale("log")
    # Labels at 1, 2, 5 x 10^k: a narrow log range otherwise gets no label or overlapping ones.
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())


def iso_power_levels(powers_w: list[float], count: int = 4) -> list[float]:
    """A few round power levels (1, 2, 5 x 10^k W) spanning the measured powers."""
    lo, hi = min(powers_w) / 2, max(powers_w) * 2
    levels = [m * 10**k for k in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
              for m in (1, 2, 5)]  # fmt: skip
    inside = [v for v in levels if lo <= v <= hi]
    step = max(1, math.ceil(len(inside) / count))
    return inside[::step]
