"""What `joulebench run` shows while it runs (a live line on a terminal, a line per step in a log) and the
summary tables at the end."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

_PHASES = {
    "idle": "idle baseline",
    "setup": "setup trial",
    "engine_start": "starting the engine for repeat",
    "warmup": "warm-up batch before repeat",
    "generate": "repeat",
    "park": "parked engine",
    "sleep": "sleep and wake",
}
# A trial kind, and the phase that names its trials; the other phases come before a generation trial.
_TRIAL_PHASE = {"idle": "idle", "setup": "setup", "generation": "generate", "park": "park", "sleep": "sleep"}
_PHASE_TRIAL = {phase: kind for kind, phase in _TRIAL_PHASE.items()}
_ENERGY_ORDER = ("gpu", "cpu", "dram", "node", "other", "platform", "total", "total_incl_estimated")
_LABELS = {"total_incl_estimated": "total incl. est."}


def _label(component: str) -> str:
    return _LABELS.get(component, component)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _stat(s: dict[str, Any] | None) -> str:
    if not s or s.get("mean") is None:
        return "-"
    half = s.get("ci_half_width")
    return f"{_fmt(s['mean'])} ± {_fmt(half)}" if half is not None else _fmt(s["mean"])


def duration_text(seconds: float) -> str:
    """``45 s``, ``12 min``, ``2 h 05 min``: as precise as a person reads a time left."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    hours, rest = divmod(round(seconds / 60), 60)
    return f"{hours} h {rest:02d} min"


class TimeLeft:
    """The time a run still needs: the trials left of each kind times the mean of that kind's finished
    ones, each timed from its own start (an engine start or a warm-up before a repeat is not a repeat's
    pace). Unknown until a trial of each kind still to come has finished once: a setup trial says
    nothing of a repeat."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.left: dict[str, int] = {}
        self.took: dict[str, list[float]] = {}
        self.began: dict[str, float] = {}
        self.total = 0

    def start(self, prepared: Any) -> None:
        from joulebench.runner.run import repeat_plan

        c = prepared.config
        parked = c.lifecycle_cycles
        self.left = {
            "idle": 1 if c.idle_s > 0 else 0,
            "setup": c.setup_trials,
            "generation": len(repeat_plan(c.repeats, c.unmonitored_repeats)),
            "park": parked,
            "sleep": parked * len(c.sleep_levels),
        }
        self.took = {}  # a sweep's next run has its own shape, so its own pace
        self.began = {}
        self.total = sum(self.left.values())

    def phase(self, phase: str) -> None:
        """A phase began now; ``setup``, ``generate`` and ``idle`` are the trials that are counted."""
        kind = _PHASE_TRIAL.get(phase)
        if kind is not None:
            self.began[kind] = self.clock()

    def trial(self, kind: str) -> None:
        """A trial of ``kind`` ended now."""
        if kind not in self.left:
            return
        self.left[kind] = max(self.left[kind] - 1, 0)
        began = self.began.pop(kind, None)
        if began is not None:
            self.took.setdefault(kind, []).append(self.clock() - began)

    def done_of(self) -> tuple[int, int]:
        """(trials finished, trials in all) of the counted kinds."""
        total = self.total
        return total - sum(self.left.values()), total

    def seconds(self) -> float | None:
        total = 0.0
        for kind, n in self.left.items():
            if n == 0:
                continue
            took = self.took.get(kind)
            if not took:
                return None
            total += n * sum(took) / len(took)
        return total

    def text(self) -> str:
        s = self.seconds()
        if s is None:
            return ""
        return "done" if s == 0 else f"about {duration_text(s)} left"


class RunProgress:
    """Passes each event on (to a display, or nowhere) and keeps the run's ID once it exists."""

    def __init__(
        self, inner: Callable[[dict[str, Any]], None] | None, warn: Callable[[str], None] | None = None
    ) -> None:
        self.inner = inner
        self.warn = warn  # where a warning goes when no display shows it (--json, --quiet)
        self.run_id: Any = None

    def __call__(self, event: dict[str, Any]) -> None:
        if event["event"] == "run_start":
            self.run_id = event.get("run_id")
        if self.inner is not None:
            self.inner(event)
        elif self.warn is not None and event["event"] in ("idle_busy", "db_busy"):
            self.warn(event["message"])

    def stop(self) -> None:
        stop = getattr(self.inner, "stop", None)
        if stop is not None:
            stop()


class LiveProgress:
    """A progress callback for :func:`~joulebench.runner.run.execute` that keeps one live status line:
    trial k of n, the last repeat's tokens/s, the monitor's latest watts per component."""

    def __init__(self, console: Any) -> None:
        self.console = console
        self.live: Any = None
        self.monitor: Any = None
        self.phase = "starting"
        self.last = ""
        self.failed = 0
        self.time_left = TimeLeft()

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "run_start":
            from rich.live import Live

            self.monitor = event.get("monitor")
            self.run_id = event.get("run_id")
            if event.get("prepared") is not None:
                self.time_left.start(event["prepared"])
            self.live = Live(self, console=self.console, refresh_per_second=4, transient=True)
            self.live.start()
        elif kind == "phase":
            self.time_left.phase(event["phase"])
            self.phase = (
                f"{_PHASES.get(event['phase'], event['phase'])} {event['index'] + 1} of {event['total']}"
            )
        elif kind == "trial":
            self.time_left.trial(event["kind"])
            if event["status"] != "ok":
                self.failed += 1
                first = (event.get("error") or "").strip().splitlines()[:1]
                self.console.print(
                    f"{event['kind']} {event['index'] + 1} failed: {first[0] if first else ''}",
                    markup=False,
                    highlight=False,
                )
            metrics = event.get("metrics") or {}
            if metrics.get("tokens_per_s") is not None:
                self.last = f"last repeat {metrics['tokens_per_s']:.1f} tok/s"
        elif kind in ("idle_busy", "db_busy"):
            from rich.text import Text

            self.console.print(Text.assemble(("warning", "yellow"), f": {event['message']}"))
        elif kind == "run_end":
            self.stop()

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def __rich__(self) -> Any:
        from rich.text import Text

        parts = [f"run {self.run_id}: {self.phase}"]
        if self.last:
            parts.append(self.last)
        watts = self.monitor.latest_power_w() if self.monitor is not None else {}
        if watts:
            parts.append(" ".join(f"{k} {v:.0f} W" for k, v in sorted(watts.items())))
        if self.failed:
            parts.append(f"{self.failed} failed")
        if left := self.time_left.text():
            parts.append(left)
        done, total = self.time_left.done_of()
        if not total:
            return Text(" · ".join(parts))
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        # a bar of the run's trials, then the words
        line = Table.grid(padding=(0, 1))
        line.add_row(ProgressBar(total=total, completed=done, width=24), Text(f"{done}/{total}"),
                     Text(" · ".join(parts)))  # fmt: skip
        return line


class LineProgress:
    """A progress callback that writes one line per step that ends, with the time of day: for logs, where a
    live line cannot redraw. A cell of long repeats (minutes each) then shows when its engine started, when
    its warm-up ended and what each repeat measured while the rest still runs."""

    def __init__(self, write: Callable[[str], None], clock: Callable[[], float] = time.time) -> None:
        self.write = write
        self.clock = clock
        self.run_id: Any = None
        self.totals: dict[str, int] = {}
        self.time_left = TimeLeft()

    def stop(self) -> None:
        """Nothing to take down: every line written is final."""

    def _say(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S", time.localtime(self.clock()))
        self.write(f"{stamp} run {self.run_id}: {text}")

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["event"]
        if kind == "run_start":
            self.run_id = event.get("run_id")
            self.totals = {}
            p = event.get("prepared")
            if p is not None:
                self.time_left.start(p)
                engine = f"{p.engine}:{p.config.label}" if p.config.label else p.engine
                w = p.workload
                tokens = f"{w.output_tokens}" if w.length_mode == "fixed" else f"up to {w.output_tokens}"
                self._say(f"{engine} {p.model_label} {w.name} ({w.batch_size} × {tokens} tokens)")
        elif kind == "phase":
            phase = event["phase"]
            self.time_left.phase(phase)
            self.totals[_PHASE_TRIAL.get(phase, "generation")] = event["total"]
            if phase in ("engine_start", "warmup"):  # the long silent steps; the others end in a trial line
                self._say(f"{_PHASES[phase]} {event['index'] + 1} of {event['total']}")
        elif kind == "warmed":
            duration_s, tokens = event["duration_s"], event["output_tokens"]
            rate = f", {tokens / duration_s:,.1f} tokens/s" if duration_s > 0 else ""
            self._say(f"warm-up done in {duration_s:.1f} s ({tokens:,} tokens{rate})")
        elif kind == "trial":
            self.time_left.trial(event["kind"])
            if event["kind"] != "warmup":  # the "warmed" line says it, with its tokens
                left = self.time_left.text()
                self._say(self._trial(event) + (f" ({left})" if left and left != "done" else ""))
        elif kind in ("idle_busy", "db_busy"):
            self._say(f"warning: {event['message']}")
        elif kind == "time_limit":
            self._say(event["message"])

    def _trial(self, event: dict[str, Any]) -> str:
        what = _PHASES.get(_TRIAL_PHASE.get(event["kind"], ""), event["kind"])
        total = self.totals.get(event["kind"])
        name = (
            what
            if event["kind"] == "idle"
            else f"{what} {event['index'] + 1}" + (f" of {total}" if total else "")
        )
        if event["status"] != "ok":
            first = (event.get("error") or "").strip().splitlines()[:1]
            return f"{name} {event['status']}: {first[0] if first else 'no error recorded'}"
        parts = [f"{name} ok" + (f" in {event['duration_s']:.1f} s" if event.get("duration_s") else "")]
        metrics = event.get("metrics") or {}
        if metrics.get("tokens_per_s") is not None:
            parts.append(f"{metrics['tokens_per_s']:,.1f} tokens/s")
        estimated = set(metrics.get("estimated_components") or ())
        per_token = [
            f"{_label(c)} {_fmt(metrics[f'j_per_token.{c}'])}" + (" (est.)" if c in estimated else "")
            for c in _components(metrics, "j_per_token.")
        ]
        if per_token:
            parts.append("J/token " + ", ".join(per_token))
        return ", ".join(parts)


def _components(stats: dict[str, Any], prefix: str) -> list[str]:
    found = {k[len(prefix) :] for k in stats if k.startswith(prefix)}
    return [c for c in _ENERGY_ORDER if c in found]


def setup_tables(summary: dict[str, Any]) -> list[Any]:
    """The setup table of the run, or of each combination of setup-factor levels where it ran more than
    one: a mean and CI over cold and warm trials together would describe neither."""
    from joulebench.results.tidy import stage_holds

    setup = summary["setup"]
    holds = stage_holds(summary["engine"])
    groups = setup.get("by_factors") or []
    if len(groups) < 2:
        return [setup_table(setup, holds=holds)] if setup["trials"] else []
    levels = [", ".join(f"{k}={v}" for k, v in g["factors"].items()) for g in groups]
    return [setup_table(g, level, holds) for g, level in zip(groups, levels, strict=True)]


def setup_table(setup: dict[str, Any], levels: str = "", holds: Mapping[str, str] | None = None) -> Any:
    """``holds``: stages that hold what other engines report apart (Engine.stage_holds), said so."""
    from rich.table import Table

    stages = setup["stages"]
    comps = [c for c in _ENERGY_ORDER if any(c in st["energy_j"] for st in stages.values())]
    within = f" with {levels}" if levels else ""
    table = Table(title=f"Setup{within} ({setup['ok']} of {setup['trials']} trials ok; mean ± 95 % CI)")
    table.add_column("stage")
    table.add_column("s", justify="right")
    for c in comps:
        est = " (est.)" if c in setup["estimated_components"] else ""
        table.add_column(f"{_label(c)} J{est}", justify="right")
    order = ["spawn", "import", "engine_init", "model_load", "first_token", "setup"]
    for stage in sorted(stages, key=lambda s: order.index(s) if s in order else len(order)):
        st = stages[stage]
        bounds = st.get("bound_j", {})
        held = (holds or {}).get(stage)
        table.add_row(
            f"{stage} (incl. {held})" if held else stage,
            _stat(st["duration_s"]),
            *(_stat(st["energy_j"].get(c)) + _bound(bounds.get(c)) for c in comps),
        )
    table.caption = "[±b]: the measurement's own bound (docs/counters.md)"
    return table


def lifecycle_lines(summary: dict[str, Any]) -> list[str]:
    """The warm engine parked and asleep, above idle, a line per state (docs/lifecycle.md)."""
    lines = []
    for state in summary["generation"].get("lifecycle", []):
        stages, est = state["stages"], " (est.)" if state["estimated"] else ""
        if state["state"] == "parked":
            parts = [_held(stages.get("park"), est)]
        else:
            parts = [_call(stages.get("sleep_enter"), "to sleep", est), _held(stages.get("sleep"), est),
                     _call(stages.get("wake"), "waking", est)]  # fmt: skip
        n = state["trials"]
        lines.append(f"{state['state']}: {'; '.join(parts)} above idle ({n} trial{'s' if n != 1 else ''})")
    return lines


def _held(stage: dict[str, Any] | None, est: str) -> str:
    power = (stage or {}).get("above_idle_w")
    return f"held {_stat(power)} W{est}" if power else "held: no idle baseline to compare with"


def _call(stage: dict[str, Any] | None, what: str, est: str) -> str:
    st = stage or {}
    energy = f", {_stat(st['above_idle_j'])} J{est}" if st.get("above_idle_j") else ""
    return f"{what} {_stat(st.get('duration_s'))} s{energy}"


def factor_lines(summary: dict[str, Any]) -> list[str]:
    """The whole setup of each combination of setup-factor levels, one line each (the report has its
    stages)."""
    lines = []
    for group in summary["setup"].get("by_factors", []):
        levels = ", ".join(f"{k}={v}" for k, v in group["factors"].items())
        whole = group["stages"].get("setup")
        if whole is None:
            lines.append(f"setup with {levels}: {group['ok']} of {group['trials']} trials ok, not measured")
            continue
        energy = whole["energy_j"]
        key = next((k for k in ("total", "total_incl_estimated", "gpu") if k in energy), None)
        joules = f", {_stat(energy[key])} J {_label(key)}" if key else ""
        trials = f"{group['ok']} trial" + ("s" if group["ok"] != 1 else "")
        lines.append(f"setup with {levels}: {_stat(whole['duration_s'])} s{joules} ({trials})")
    return lines


def _bound(value: float | None) -> str:
    return f" [±{_fmt(value)}]" if value is not None else ""


def generation_table(summary: dict[str, Any]) -> Any:
    from rich.table import Table

    gen = summary["generation"]
    m = gen["metrics"]
    table = Table(title=f"Token generation ({gen['ok']} of {gen['repeats']} repeats ok; mean ± 95 % CI)")
    columns = (
        ("metric", "left"),
        ("mean ± CI", "right"),
        ("bound ±", "right"),
        ("CV", "right"),
        ("n", "right"),
    )
    for col, justify in columns:
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    table.caption = "bound: the measurement's own, mean over repeats (docs/counters.md); CI: over repeats"
    rows: list[tuple[str, str]] = []
    for prefix, label in (("j_per_token.", "J/token"), ("j_per_response.", "J/response"), ("power_w.", "W")):
        rows += [(f"{prefix}{c}", f"{label} {_label(c)}") for c in _components(m, prefix)]
    rows += [("tokens_per_s", "tokens/s"), ("output_tokens", "output tokens"), ("duration_s", "duration s")]
    rows += [("ttft_s", "TTFT s"), ("tpot_s", "TPOT s"), ("itl_s", "ITL s")]
    rows += [
        (f"steady.j_per_token.{c}", f"steady J/token {_label(c)}")
        for c in _components(m, "steady.j_per_token.")
    ]
    rows += [("steady.tokens_per_s", "steady tokens/s")]
    rows += [
        (f"prefill.j_per_prompt_token.{c}", f"prefill J/prompt token {_label(c)}")
        for c in _components(m, "prefill.j_per_prompt_token.")
    ]
    rows += [
        (f"decode.j_per_token.{c}", f"decode J/token {_label(c)}")
        for c in _components(m, "decode.j_per_token.")
    ]
    rows += [("prefill.duration_s", "prefill s"), ("decode.duration_s", "decode s")]
    for key, label in rows:
        s = m.get(key)
        if not s or s.get("mean") is None:
            continue
        cv = f"{s['cv']:.1%}" if s.get("cv") is not None else "-"
        bound = m.get(f"bound.{key}") or {}
        table.add_row(
            label, _stat(s), _fmt(bound.get("mean")) if bound.get("n") == s["n"] else "-", cv, str(s["n"])
        )
    return table


def render_summary(summary: dict[str, Any], console: Any) -> None:
    from rich.text import Text

    model = summary["model_label"] or summary["model"]
    s = summary
    console.print(
        f"run {s['run_id']} [{s['status']}]: {s['engine']} {s['engine_version'] or ''} · {model}"
        f" · {s['workload']} (batch {s['batch_size']}, {s['output_tokens']} tokens, {s['length_mode']})"
        f" · {s['device']}",
        highlight=False,
        markup=False,
    )
    for table in setup_tables(summary):
        console.print(table)
    for line in factor_lines(summary):
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    if summary["generation"]["repeats"]:
        console.print(generation_table(summary))
    for line in warmup_lines(summary):
        console.print(line, highlight=False, markup=False)
    for line in lifecycle_lines(summary):
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    overhead = summary["generation"].get("monitor_overhead")
    if overhead:
        on, off = overhead["tokens_per_s_monitored"], overhead["tokens_per_s_unmonitored"]
        console.print(
            f"monitor's cost: {overhead['throughput_cost']:+.2%} throughput ({_stat(on)} tokens/s measured, "
            f"{_stat(off)} with the sampler paused, {off['n']} repeats)",
            highlight=False,
            markup=False,
        )
    for line in energy_lines(summary):
        console.print(line, highlight=False, markup=False, soft_wrap=True)  # one line each, for grep
    floor = floor_line(summary.get("floor"))
    if floor:
        console.print(floor, highlight=False, markup=False, soft_wrap=True)
    for reason in summary["generation"]["steady_unavailable"]:
        console.print(f"steady-state window unavailable: {reason}", highlight=False, markup=False)
    for w in summary["warnings"]:
        console.print(Text.assemble(("warning", "yellow"), f": {w}"))
    for f in summary["failures"]:
        console.print(Text.assemble(("failed", "red"), f" {f['kind']} {f['repeat_index'] + 1}: {f['error']}"))


def energy_lines(summary: dict[str, Any]) -> list[str]:
    """What the totals hold, how the estimates were made, and the fix that would measure them instead."""
    lines = []
    hold = summary.get("totals_hold") or {}
    if hold:
        lines.append("totals: " + "; ".join(f"{_label(k)} = {v}" for k, v in hold.items()))
    lines += [
        f"estimated (never in a measured total): {e.removeprefix('estimated: ')}"
        for e in summary.get("estimates", [])
    ]
    lines += [f"to measure it instead: {f}" for f in summary.get("fixes", [])]
    return lines


def floor_line(floor: dict[str, Any] | None) -> str | None:
    """The measured GPU J/token against the floor of its card (docs/roofline.md)."""
    if not floor:
        return None
    bound = floor.get("bound_j_per_token")
    limit = f"{_fmt(floor['floor_j_per_token'])}" + (f" ± {_fmt(bound)}" if bound else "")
    where = f"floor {limit} J/token on {floor['card']} (joulebench roofline)"
    if floor.get("pct_of_floor") is None:
        return f"{where}; no GPU J/token measured to compare"
    return f"GPU {_fmt(floor['gpu_j_per_token'])} J/token = {floor['pct_of_floor']:.0f} % of the {where}"


def warmup_lines(summary: dict[str, Any]) -> list[str]:
    """One line per measured warm-up batch, against the repeats' mean J/token where both are known."""
    m = summary["generation"]["metrics"]
    repeats = m.get("j_per_token.total") or m.get("j_per_token.total_incl_estimated") or {}
    lines = []
    for w in summary["generation"].get("warmups", []):
        what = f"warm-up before repeat {w['before_repeat'] + 1}: {_fmt(w['duration_s'])} s"
        what += f", {w['output_tokens']} tokens"
        if w["j_per_token"] is None:
            lines.append(f"{what}, energy not measured")
            continue
        what += f", {_fmt(w['j_per_token'])} J/token" + (" (est.)" if w.get("estimated") else "")
        if repeats.get("mean"):
            what += f" ({w['j_per_token'] / repeats['mean']:.3g}x the repeats' mean)"
        lines.append(what)
    return lines
