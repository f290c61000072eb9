"""The first batch after an engine start against a warm one: part of what a restart costs.

The runner warms every engine start up with one batch of the measured shape before the first repeat and
keeps it out of the statistics; its window is still measured. A restarted server pays that first, slower
batch again (allocator growth, compilation, CUDA graphs), on top of the setup stage.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from joulebench.report.tables import CI_NOTE, Table, format_stat, plain
from joulebench.results.aggregate import StatIndex
from joulebench.results.energy import TOTAL
from joulebench.results.tidy import GENERATE, WARMUP

if TYPE_CHECKING:
    import pandas as pd

NOTES = (
    CI_NOTE + " n: engine starts, each with one warm-up batch.",
    "Warm-up / repeat: the warm-up's J/token over the repeats'. A warm-up cut short (warmup_tokens) "
    "generates fewer tokens per request than a repeat, so its J/token is for a shorter answer.",
)


def warmup_table(summary: pd.DataFrame) -> Table | None:
    """Per engine, model and workload with a measured warm-up: its J/token and speed against the repeats'."""
    index = StatIndex(summary)
    warm = summary[(summary["kind"] == "generation") & (summary["stage"] == WARMUP)]
    rows = []
    for engine, model, workload in sorted(set(warm[["engine", "model", "workload"]].itertuples(index=False))):
        get = partial(index.get, "generation", engine, model, workload)
        warm_j, repeat_j = get(WARMUP, TOTAL, "j_per_token"), get(GENERATE, TOTAL, "j_per_token")
        warm_tokens, repeat_tokens = get(WARMUP, "", "output_tokens"), get(GENERATE, "", "output_tokens")
        warm_speed, repeat_speed = get(WARMUP, "", "tokens_per_s"), get(GENERATE, "", "tokens_per_s")
        if warm_j is None and warm_speed is None:
            continue
        ratio = "-"
        if warm_j is not None and repeat_j is not None and repeat_j.mean > 0:
            ratio = f"{plain(warm_j.mean / repeat_j.mean, 3)}×"
        rows.append(
            (
                str(engine),
                str(model),
                str(workload),
                str(warm_speed.n if warm_speed else warm_j.n if warm_j else 0),
                plain(warm_tokens.mean) if warm_tokens else "-",
                plain(repeat_tokens.mean) if repeat_tokens else "-",
                format_stat(warm_j),
                format_stat(repeat_j) if repeat_tokens else "-",  # "-": no repeat ran (a run cut off)
                ratio,
                format_stat(warm_speed) if warm_speed else "-",
                format_stat(repeat_speed) if repeat_speed else "-",
            )
        )
    if not rows:
        return None
    columns = (
        "Engine",
        "Model",
        "Workload",
        "n",
        "Warm-up tokens",
        "Repeat tokens",
        "Warm-up J/token",
        "Repeat J/token",
        "Warm-up / repeat",
        "Warm-up tokens/s",
        "Repeat tokens/s",
    )
    title = "First batch after an engine start (warm-up) against a warm batch"
    return Table(title, columns, tuple(rows), NOTES)
