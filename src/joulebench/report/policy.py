"""What a warm engine should do between requests: the least-energy policy for an arrival pattern, from
measured rows only (docs/lifecycle.md).

Between two requests the engine is idle for a gap ``g``. Each policy waits ``T`` seconds parked (loaded,
serving nothing, at the parked power above idle), then, if the gap goes on:

- **sleep at level L**: the sleep call's energy, the asleep power for the rest of the gap, and the wake
  call's energy; the next request waits for the wake;
- **stop and restart**: nothing above idle for the rest of the gap, then a whole setup (cold or warm caches,
  as measured); the next request waits for the setup;
- **always warm** is waiting forever: parked for every gap.

Energies are above the machine's idle baseline: the machine is on either way, and serving the requests
costs the same under every policy, so both are left out. A day's energy is the sum over its gaps; ``T`` is
chosen from 0 s to a day on a logarithmic grid for the least energy.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass, replace
from itertools import accumulate, pairwise
from pathlib import Path
from typing import TYPE_CHECKING

from joulebench.errors import UsageError
from joulebench.results.aggregate import Stat, StatIndex
from joulebench.results.energy import TOTAL, TOTAL_INCL_ESTIMATED
from joulebench.results.tidy import restart_setup_label

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

DAY_S = 86_400.0
MAX_GAPS = 100_000  # a sample this long gives a day's energy to well under a per cent
TIMEOUTS_S = (0.0, *(10 ** (k / 20) for k in range(0, 100)), DAY_S)  # 0, 1 s ... ~ 0.9 day, a day


@dataclass(frozen=True)
class Arrivals:
    gaps_s: tuple[float, ...]  # sorted
    per_day: float  # gaps a day stands for (the sample is scaled to it)
    description: str

    @classmethod
    def from_rate(
        cls, requests_per_day: float, burstiness: float = 1.0, seed: int = 0, flags: str = "--"
    ) -> Arrivals:
        """``flags``: how the two inputs' options begin, for the message that refuses them. Gaps drawn from
        a gamma distribution of the mean a rate gives and coefficient of variation
        ``burstiness`` (1: Poisson arrivals; above 1: bursts and long lulls), the same for the same seed."""
        if not (requests_per_day > 0 and math.isfinite(requests_per_day)):
            raise UsageError(f"{flags}requests-per-day must be > 0, got {requests_per_day}")
        if not (burstiness > 0 and math.isfinite(burstiness)):
            raise UsageError(f"{flags}burstiness must be > 0, got {burstiness}")
        mean, shape = DAY_S / requests_per_day, 1.0 / burstiness**2
        rng = random.Random(seed)
        n = max(1, min(MAX_GAPS, math.ceil(requests_per_day)))
        gaps = sorted(rng.gammavariate(shape, mean / shape) for _ in range(n))
        what = f"{requests_per_day:g} requests/day, gaps of CV {burstiness:g} (gamma; 1 = Poisson)"
        return cls(tuple(gaps), requests_per_day, what)

    @classmethod
    def from_file(cls, path: Path) -> Arrivals:
        """Request times, seconds, one a line (any origin; sorted here): their gaps, scaled to a day by the
        span they cover."""
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--arrivals {path}: {exc.strerror}") from None
        times = []
        for k, line in enumerate(text.splitlines(), 1):
            if line.strip() and not line.lstrip().startswith("#"):
                try:
                    times.append(float(line.split(",")[0]))
                except ValueError:
                    raise UsageError(
                        f"--arrivals {path}:{k}: not a time in seconds: {line.strip()!r}"
                    ) from None
        times.sort()
        if len(times) < 2 or times[-1] <= times[0] or not all(map(math.isfinite, times)):
            raise UsageError(f"--arrivals {path}: give at least two different request times (seconds)")
        gaps = sorted(b - a for a, b in pairwise(times))
        per_day = len(gaps) * DAY_S / (times[-1] - times[0])
        return cls(tuple(gaps), per_day, f"{len(times)} request times from {path.name} ({per_day:.4g}/day)")


@dataclass(frozen=True)
class Input:
    """One measured figure a policy uses, and the rows it comes from."""

    name: str
    stat: Stat
    unit: str
    source: str


@dataclass(frozen=True)
class Policy:
    name: str
    enter_j: float  # what leaving the parked state costs (a sleep call; nothing for a stop)
    after_w: float  # power above idle for the rest of the gap (asleep; 0 when stopped)
    enter_s: float  # how long the leaving takes (the after power starts then)
    back_j: float  # what coming back costs (a wake; a whole setup)
    back_s: float  # what the next request waits for it


@dataclass(frozen=True)
class PolicyResult:
    policy: Policy
    timeout_s: float  # the best T (inf: always warm)
    energy_j_per_day: float
    waits_per_day: float  # requests that wait for the engine to come back
    added_latency_s: float  # the mean over all requests
    curve: tuple[tuple[float, float], ...]  # (T, J/day) over the grid


@dataclass(frozen=True)
class PolicyAdvice:
    engine: str
    model: str
    workload: str
    arrivals: Arrivals
    parked_w: float
    inputs: tuple[Input, ...]
    results: tuple[PolicyResult, ...]  # least energy first
    missing: tuple[str, ...]  # policies that could not be weighed, and why


def advise_policy(
    summary: pd.DataFrame, arrivals: Arrivals, engine: str | None, model: str | None, workload: str | None
) -> PolicyAdvice:
    index = StatIndex(summary)
    parked = summary[(summary["kind"] == "park") & (summary["metric"] == "above_idle_power_w")]
    cells = sorted(set(parked[["engine", "model", "workload"]].itertuples(index=False)))
    cells = [c for c in cells if (engine or c[0], model or c[1], workload or c[2]) == tuple(c)]
    if not cells:
        raise UsageError(
            "no parked engine measured for this selection: run it with --park-s (and --sleep-levels) first"
        )
    if len(cells) > 1:
        names = "; ".join(" / ".join(map(str, c)) for c in cells)
        raise UsageError(
            f"several engines were parked ({names}): pick one with --engine, --model, --workload"
        )
    engine, model, workload = (str(x) for x in cells[0])
    inputs: list[Input] = []

    def measured(kind: str, stage: str, metric: str, unit: str, name: str, on: str = "") -> Stat | None:
        # setup trials are pooled over workloads (workload ""), as in Table 1
        where = (kind, on or engine, model, "" if kind == "setup" else workload)
        stat = index.get(*where, stage, TOTAL, metric) or index.get(
            *where, stage, TOTAL_INCL_ESTIMATED, metric
        )
        if stat is not None:
            cell = " / ".join(x for x in where[1:] if x)
            inputs.append(
                Input(name, stat, unit, f"{kind} trials of {cell}, stage {stage}, {metric} (n={stat.n})")
            )
        return stat

    def timed(kind: str, stage: str) -> Stat | None:
        return index.get(kind, engine, model, workload, stage, "", "duration_s")

    found = measured("park", "park", "above_idle_power_w", "W", "parked power")
    assert found is not None  # the selection above found it
    park = _at_least_idle(found)
    policies: list[Policy] = []
    missing: list[str] = []
    mine = summary[(summary["engine"] == engine) & (summary["model"] == model)]
    levels = sorted({str(k) for k in mine["kind"] if str(k).startswith("sleep-")})
    for kind in levels:
        level = kind.removeprefix("sleep-")
        enter = measured(kind, "sleep_enter", "above_idle_energy_j", "J", f"sleep level {level}: the call")
        held = measured(kind, "sleep", "above_idle_power_w", "W", f"sleep level {level}: asleep")
        wake = measured(kind, "wake", "above_idle_energy_j", "J", f"sleep level {level}: waking")
        enter_s, wake_s = timed(kind, "sleep_enter"), timed(kind, "wake")
        if None in (enter, held, wake, enter_s, wake_s):
            missing.append(f"sleep level {level}: not every part measured above idle (an idle baseline?)")
            continue
        assert enter and held and wake and enter_s and wake_s
        enter, held, wake = _at_least_idle(enter), _at_least_idle(held), _at_least_idle(wake)
        policies.append(Policy(f"sleep level {level} after T", enter.mean, held.mean, enter_s.mean, wake.mean,
                               wake_s.mean))  # fmt: skip
    setups = sorted({str(e) for e in summary[summary["kind"] == "setup"]["engine"]})
    # a restart finds its caches warm (the setups the report calls warm), unless they were cleared: cold
    restarts = [restart_setup_label(engine, set(setups))]
    restarts += [s for s in setups if s.startswith(f"{engine} (") and "cold" in s][:1]
    for label in restarts:
        if label not in setups:
            missing.append(f"stop and restart: no setup trials of {engine} (run with --setup-repeats)")
            break
        name = f"stop after T, restart ({label})" if label != engine else "stop after T, restart"
        setup = measured("setup", "setup", "above_idle_energy_j", "J", f"restart: setup of {label}", on=label)
        setup_s = index.get("setup", label, model, "", "setup", "", "duration_s")
        if setup is None or setup_s is None:
            missing.append(f"{name}: its setup not measured above idle (an idle baseline?)")
            continue
        if any(p.name == name for p in policies):
            continue
        policies.append(Policy(name, 0.0, 0.0, 0.0, _at_least_idle(setup).mean, setup_s.mean))
    warm = Policy("always warm", 0.0, 0.0, 0.0, 0.0, 0.0)
    results = [
        _weigh(warm, park.mean, arrivals, only=math.inf),
        *(_weigh(p, park.mean, arrivals) for p in policies),
    ]
    results.sort(key=lambda r: r.energy_j_per_day)
    return PolicyAdvice(
        engine, model, workload, arrivals, park.mean, tuple(inputs), tuple(results), tuple(missing)
    )


def _at_least_idle(stat: Stat) -> Stat:
    """Nothing costs less than the machine idle: a mean below the baseline (noise, or an estimate that
    follows utilisation) counts as 0 above idle. The inputs list shows the measured mean."""
    return stat if stat.mean >= 0 else replace(stat, mean=0.0)


def _weigh(policy: Policy, parked_w: float, arrivals: Arrivals, only: float | None = None) -> PolicyResult:
    gaps = arrivals.gaps_s
    sums = [0.0, *accumulate(gaps)]
    scale = arrivals.per_day / len(gaps)

    def day(t: float) -> tuple[float, float]:
        """(J per day, waits per day) with timeout ``t``."""
        k = bisect.bisect_right(gaps, t)  # gaps[:k] end before the timeout
        beyond = len(gaps) - k
        if not beyond:  # every gap ends parked (always warm: t is infinite)
            return parked_w * sums[k] * scale, 0.0
        energy = parked_w * (sums[k] + beyond * t) + beyond * (policy.enter_j + policy.back_j)
        if policy.after_w:
            j = bisect.bisect_right(gaps, t + policy.enter_s)
            energy += policy.after_w * ((sums[-1] - sums[j]) - (len(gaps) - j) * (t + policy.enter_s))
        return energy * scale, beyond * scale

    grid = (only,) if only is not None else TIMEOUTS_S
    curve = [(t, day(t)[0]) for t in grid]
    best_t, best_j = min(curve, key=lambda c: c[1])
    waits = day(best_t)[1]
    latency = waits * policy.back_s / arrivals.per_day
    return PolicyResult(policy, best_t, best_j, waits, latency, tuple(curve))


def policy_figure(advice: PolicyAdvice) -> Figure:
    """Energy per day against the timeout T, a line per policy (always warm: flat)."""
    from joulebench.report.figures import new_figure

    fig = new_figure(7.0, 4.2)
    ax = fig.add_subplot()
    for r in advice.results:
        if math.isinf(r.timeout_s):
            ax.axhline(r.energy_j_per_day / 3.6e6, linestyle="--", color="grey", label=r.policy.name)
            continue
        ts = [max(t, 0.5) for t, _ in r.curve]  # T = 0 drawn at the left edge of the log axis
        ax.plot(ts, [j / 3.6e6 for _, j in r.curve], label=r.policy.name)
        ax.plot([max(r.timeout_s, 0.5)], [r.energy_j_per_day / 3.6e6], marker="o", color="black")
    ax.set_xscale("log")
    ax.set_xlabel("idle timeout T (s)")
    # an estimate (CPU by utilisation, say) among the inputs makes every curve one
    estimated = any(i.stat.estimated for i in advice.inputs)
    ax.set_ylabel("energy above idle per day (kWh" + (", estimated)" if estimated else ")"))
    ax.set_title(f"{advice.engine} · {advice.model} · {advice.arrivals.description}", fontsize=9)
    ax.legend(fontsize=8)
    return fig
