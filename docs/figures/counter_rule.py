"""Draw docs/figures/counter-rule.svg: the counter rule of docs/counters.md on one made-up trace.

    python docs/figures/counter_rule.py

A counter updating every 100 ms, read every 40 ms, under 300 W that drops to 0 W, and one window: the
reads, the update each change proves (between the read that saw it and the one before), the span each
increment is spread over, the held stretch that gets no energy, and the window's share of each.
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from joulebench.measurement.counter import CounterSeries, counter_window

PERIOD_S, READ_S = 0.1, 0.04
LOAD_END_S = 0.53


def power_w(t: float) -> float:
    return 300.0 if t < LOAD_END_S else 0.0


def published_j(t: float) -> float:
    """What the counter shows at t: the energy up to its last update (updates at 0.02 + k x 0.1 s)."""
    update = 0.02 + int((t - 0.02) / PERIOD_S + 1e-9) * PERIOD_S
    return 300.0 * min(max(update, 0.0), LOAD_END_S)


def main(out: Path) -> None:
    reads = [0.005 + k * READ_S for k in range(27)]
    series = CounterSeries()
    for t in reads:
        series.add(t, published_j(t))
    window = (0.23, 0.86)
    result = counter_window(series, *window, period_s=PERIOD_S, resolution_j=0.001, max_power_w=700.0)
    assert result is not None
    true_j = 300.0 * (LOAD_END_S - window[0])

    fig, (ax_p, ax_e) = plt.subplots(2, 1, figsize=(9, 5.4), sharex=True, height_ratios=(1, 2))
    ts = [k / 1000 for k in range(0, 1090)]
    ax_p.plot(ts, [power_w(t) for t in ts], color="black", lw=1.2)
    ax_p.set_ylabel("power (W)")
    ax_p.set_title("true power: 300 W, then nothing from 0.53 s", fontsize=9, loc="left")
    ax_e.step(
        ts, [published_j(t) for t in ts], where="post", color="0.75", lw=1, label="counter (as published)"
    )
    ax_e.plot(reads, [published_j(t) for t in reads], "o", ms=3.5, color="black", label="reads")
    for k in range(1, len(series)):
        lo, hi = series.before_s[k], series.t_s[k]
        ax_e.axvspan(lo, hi, ymin=0, ymax=0.05, color="tab:blue", alpha=0.5)
        ax_e.annotate(
            "",
            (hi, series.energy_j[k]),
            (lo, series.energy_j[k - 1]),
            arrowprops={"arrowstyle": "-", "color": "tab:blue", "lw": 1.4},
        )
    last_change = series.t_s[-1]
    ax_e.axvspan(last_change, reads[-1], ymin=0.05, ymax=0.12, color="tab:green", alpha=0.35)
    ax_e.text(
        (last_change + reads[-1]) / 2,
        0.15 * ax_e.get_ylim()[1],
        "held: no energy",
        ha="center",
        fontsize=8,
        color="darkgreen",
    )
    ax_e.axvspan(*window, color="tab:orange", alpha=0.12)
    ax_e.text(
        0.6,
        0.5 * published_j(1.0),
        f"window: {result.energy_j:.1f} ± {result.uncertainty_j:.1f} J (true {true_j:.1f} J)",
        fontsize=9,
    )
    ax_e.set_xlabel("time (s)")
    ax_e.set_ylabel("energy (J)")
    ax_e.legend(loc="upper left", fontsize=8)
    ax_e.set_title(
        "blue bars: where each update lies (after the last read that showed the old value, at or before\n"
        "the first that shows the new); each increment is spread over the period before that bar's middle",
        fontsize=8,
        loc="left",
    )
    fig.tight_layout()
    fig.savefig(out)
    print(f"{out}: window {result.energy_j:.2f} ± {result.uncertainty_j:.2f} J, true {true_j:.2f} J")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("counter-rule.svg"))
