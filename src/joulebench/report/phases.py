"""Prefill and decode apart, per engine, model and workload: what a prompt token costs against an output
token (runner/phases.py)."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from joulebench.report.tables import CI_NOTE, Table, format_stat
from joulebench.results.aggregate import StatIndex
from joulebench.results.energy import TOTAL, TOTAL_INCL_ESTIMATED
from joulebench.results.tidy import DECODE, PREFILL

if TYPE_CHECKING:
    import pandas as pd

NOTES = (
    CI_NOTE,
    "Prefill: the spans of a repeat when some request is in prefill, per prompt token; decode: the spans "
    "when every request in flight is decoding, per output token after each request's first. (est.): from "
    "an estimated total, where nothing was measured. J/request: each request's share of its repeat's "
    "energy (every moment shared by the requests in flight; docs/phases.md), median and 90th percentile "
    "over a repeat's requests, then the mean over repeats.",
)


def phase_table(summary: pd.DataFrame) -> Table | None:
    """``None`` where no repeat reported per-request times."""
    index = StatIndex(summary)
    phases = summary[(summary["kind"] == "generation") & summary["stage"].isin([PREFILL, DECODE])]
    rows = []
    for engine, model, workload in sorted(
        set(phases[["engine", "model", "workload"]].itertuples(index=False))
    ):
        get = partial(index.get, "generation", engine, model, workload)
        # the measured total; the estimated one only where nothing was measured, said so
        total = TOTAL if get(PREFILL, TOTAL, "energy_j") is not None else TOTAL_INCL_ESTIMATED
        pre, dec = get(PREFILL, total, "energy_j"), get(DECODE, total, "energy_j")
        share = f"{pre.mean / (pre.mean + dec.mean):.1%}" if pre and dec and pre.mean + dec.mean > 0 else "-"
        median, p90 = (
            get("generate", "", "request_energy_median_j"),
            get("generate", "", "request_energy_p90_j"),
        )
        rows.append(
            (engine, model, workload, format_stat(get(PREFILL, "", "duration_s")),
             format_stat(get(PREFILL, total, "j_per_prompt_token")),
             format_stat(get(DECODE, "", "duration_s")), format_stat(get(DECODE, total, "j_per_token")),
             share, format_stat(median), format_stat(p90))
        )  # fmt: skip
    if not rows:
        return None
    columns = ("Engine", "Model", "Workload", "Prefill (s)", "J/prompt token", "Decode (s)", "Decode J/token",
               "Prefill share of energy", "J/request, median", "J/request, p90")  # fmt: skip
    return Table("Prefill and decode", columns, tuple(rows), NOTES)
