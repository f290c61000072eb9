"""The report's first answer: which engine generated tokens for the least energy, per model and workload.

An engine wins a cell outright only where its 95 % CI lies wholly below the next engine's; overlapping
intervals are a tie at this many repeats, and the table says so rather than crown a winner by noise. Totals
that cover different components (GPU only for one engine, GPU + CPU + DRAM for another) are not compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from joulebench.report.tables import Table, format_stat, plain
from joulebench.results.aggregate import Stat, StatIndex
from joulebench.results.energy import TOTAL
from joulebench.results.tidy import GENERATE

if TYPE_CHECKING:
    import pandas as pd

NOTES = (
    "Energy per output token while generating (the measured total, 'covers' as in the tables below), the "
    "lowest first; setup energy is in the setup table. For a daily load with engine restarts, "
    "`joulebench advise` adds each restart's setup and first batch.",
    "Resolved: the cheapest engine's 95 % CI lies wholly below the next one's. Otherwise the two are a tie "
    "at this many repeats.",
)


@dataclass(frozen=True)
class _Entry:
    engine: str
    j_per_token: Stat
    tokens_per_s: Stat | None


def ranking_table(summary: pd.DataFrame) -> Table | None:
    """One row per model and workload that two or more engines ran; ``None`` when there is none."""
    index = StatIndex(summary)
    gen = summary[
        (summary["kind"] == "generation")
        & (summary["stage"] == GENERATE)
        & (summary["component"] == TOTAL)
        & (summary["metric"] == "j_per_token")
    ]
    rows = []
    for (model, workload), part in sorted(gen.groupby(["model", "workload"])):
        entries = []
        for engine in sorted(set(part["engine"])):
            stat = index.get("generation", engine, model, workload, GENERATE, TOTAL, "j_per_token")
            if stat is not None:
                speed = index.get("generation", engine, model, workload, GENERATE, "", "tokens_per_s")
                entries.append(_Entry(engine, stat, speed))
        if len(entries) < 2:
            continue
        entries.sort(key=lambda e: e.j_per_token.mean)
        best, runner_up = entries[0], entries[1]
        fastest = max(entries, key=lambda e: e.tokens_per_s.mean if e.tokens_per_s else float("-inf"))
        rows.append(
            (
                str(model),
                str(workload),
                best.engine,
                format_stat(best.j_per_token),
                runner_up.engine,
                format_stat(runner_up.j_per_token),
                f"{plain(runner_up.j_per_token.mean / best.j_per_token.mean, 3)}×",
                _verdict(best.j_per_token, runner_up.j_per_token),
                fastest.engine if fastest.tokens_per_s else "-",
                best.j_per_token.method,
                " < ".join(e.engine for e in entries),
            )
        )
    if not rows:
        return None
    columns = (
        "Model",
        "Workload",
        "Least energy",
        "J/token",
        "Next",
        "J/token",
        "Next / least",
        "Resolved",
        "Fastest",
        "Covers",
        "All, least first",
    )
    return Table("Least energy per token, by model and workload", columns, tuple(rows), NOTES)


def _verdict(best: Stat, runner_up: Stat) -> str:
    if best.method != runner_up.method:
        return f"not comparable: covers {best.method} against {runner_up.method}"
    if best.half_width is None or runner_up.half_width is None:
        return "no CI (n=1)"
    if best.mean + best.half_width < runner_up.mean - runner_up.half_width:
        return "yes"
    return "tie: CIs overlap"
