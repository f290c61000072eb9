"""The least energy that meets a latency target: from measured cells only, which configuration (engine,
model, workload shape) has the lowest J/token with its mean TPOT and TTFT within the target, and the
energy-latency frontier (the cells no other cell beats on both J/token and TPOT).

Only measured totals take part, as in the advisor: an estimated J/token never chooses a configuration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from joulebench.results.aggregate import StatIndex
from joulebench.results.energy import TOTAL
from joulebench.results.tidy import GENERATE

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class Cell:
    engine: str
    model: str
    workload: str
    j_per_token: float
    tpot_s: float | None
    ttft_s: float | None
    pct_of_floor: float | None = None  # its GPU J/token against its card's floor (docs/roofline.md)

    @property
    def name(self) -> str:
        return f"{self.engine} {self.model} {self.workload}"


@dataclass(frozen=True)
class LatencyChoice:
    cells: tuple[Cell, ...]  # every measured cell, least J/token first
    meeting: tuple[Cell, ...]  # those within the target, least J/token first
    frontier: tuple[Cell, ...]  # by TPOT, fastest first

    @property
    def chosen(self) -> Cell | None:
        return self.meeting[0] if self.meeting else None


def cells(summary: pd.DataFrame, model: str | None = None) -> list[Cell]:
    """Every cell with a measured J/token, least first."""
    index = StatIndex(summary)
    gen = summary[(summary["kind"] == "generation") & (summary["stage"] == GENERATE)]
    out = []
    for engine, m, workload in sorted(set(gen[["engine", "model", "workload"]].itertuples(index=False))):
        if model is not None and m != model:
            continue
        jt = index.get("generation", engine, m, workload, GENERATE, TOTAL, "j_per_token")
        if jt is None or jt.estimated:
            continue
        tpot = index.get("generation", engine, m, workload, GENERATE, "", "tpot_s")
        ttft = index.get("generation", engine, m, workload, GENERATE, "", "ttft_s")
        floor = index.get("generation", engine, m, workload, GENERATE, "gpu", "pct_of_floor")
        out.append(
            Cell(engine, m, workload, jt.mean, tpot.mean if tpot else None, ttft.mean if ttft else None,
                 floor.mean if floor else None)
        )  # fmt: skip
    return sorted(out, key=lambda c: c.j_per_token)


def choose(summary: pd.DataFrame, max_tpot_s: float | None, max_ttft_s: float | None,
           model: str | None = None) -> LatencyChoice:  # fmt: skip
    """The cells meeting every given limit (a cell without the measured latency does not meet it)."""
    every = cells(summary, model)

    def meets(c: Cell) -> bool:
        if max_tpot_s is not None and (c.tpot_s is None or c.tpot_s > max_tpot_s):
            return False
        return not (max_ttft_s is not None and (c.ttft_s is None or c.ttft_s > max_ttft_s))

    return LatencyChoice(tuple(every), tuple(c for c in every if meets(c)), tuple(frontier(every)))


def frontier(every: list[Cell]) -> list[Cell]:
    """Cells that no other beats on both TPOT and J/token, fastest first."""
    timed = sorted((c for c in every if c.tpot_s is not None), key=lambda c: (c.tpot_s, c.j_per_token))
    out: list[Cell] = []
    for c in timed:
        if not out or c.j_per_token < out[-1].j_per_token:
            out.append(c)
    return out


def frontier_figure(summary: pd.DataFrame) -> Figure | None:
    """J/token against TPOT for every measured cell, the frontier joined."""
    from joulebench.report.figures import new_figure

    every = [c for c in cells(summary) if c.tpot_s is not None]
    if len(every) < 2:
        return None
    edge = frontier(every)
    fig = new_figure(6.5, 4.5)
    ax = fig.add_subplot()
    engines = sorted({c.engine for c in every})
    for k, engine in enumerate(engines):
        mine = [c for c in every if c.engine == engine]
        ax.scatter([c.tpot_s * 1000 for c in mine], [c.j_per_token for c in mine], color=f"C{k % 10}",  # type: ignore[operator]
                   label=engine)  # fmt: skip
    ax.plot([c.tpot_s * 1000 for c in edge], [c.j_per_token for c in edge], color="black", linewidth=1,  # type: ignore[operator]
            linestyle="--", label="frontier")  # fmt: skip
    for c in edge:
        ax.annotate(c.workload, (c.tpot_s * 1000, c.j_per_token), fontsize=7, xytext=(4, 4),  # type: ignore[operator]
                    textcoords="offset points")  # fmt: skip
    ax.set_xlabel("TPOT (ms), mean over requests and repeats")
    ax.set_ylabel("J/token (measured total)")
    ax.set_title("Energy against latency: the frontier no cell beats on both")
    ax.legend(fontsize=8)
    return fig
