"""The steady-state window of a batch (ML.ENERGY's definition): the batch is fully occupied.

It begins when the last request has received its first token (every request admitted and decoding)
and ends when the first request finishes; ramp-up and ramp-down lie outside it. It needs per-request
first-token and finish times; without them, or when the batch never reaches full occupancy (the last
first token comes after the first finish), it is unavailable and says why.

With a concurrency limit C (a server fed at most C requests at a time) full occupancy means C requests
decoding: the window begins when C first decode together and ends when the count last falls from C (the
queue has run dry; the last requests drain outside the window). Between the two, a finished request's
successor is in its prefill for a moment: those short dips are part of serving at that load and stay in.
For a batch sent at once (C = the batch size) this is the definition above.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from joulebench.workloads.spec import Response


@dataclass(frozen=True)
class SteadyWindow:
    start_s: float | None
    end_s: float | None
    output_tokens: float | None  # tokens generated inside the window
    tokens_interpolated: bool  # True when counted from each request's average rate, not token times
    reason: str | None = None  # why the window is unavailable

    @property
    def available(self) -> bool:
        return self.start_s is not None and self.end_s is not None

    @property
    def duration_s(self) -> float | None:
        if self.start_s is None or self.end_s is None:
            return None
        return self.end_s - self.start_s


def steady_window(responses: Sequence[Response], concurrency: int | None = None) -> SteadyWindow:
    """``concurrency``: the most requests the engine was given at once (None: all of them)."""
    ok = [r for r in responses if r.error is None]
    if not ok:
        return SteadyWindow(None, None, None, False, "no successful request")
    if any(r.first_token_s is None or r.finish_s is None for r in ok):
        return SteadyWindow(None, None, None, False, "engine gives no per-request token times")
    full = len(ok) if concurrency is None else min(concurrency, len(ok))
    start, end = _full_occupancy(ok, full)
    if start is None or end is None or not end > start:
        why = "a request ended first" if full == len(ok) else f"never {full} requests decoding at once"
        return SteadyWindow(None, None, None, False, f"batch never fully occupied ({why})")
    tokens = 0.0
    interpolated = False
    for r in ok:
        if r.token_times_s:
            # A token arriving at t was produced by the step that ends at t: those in (start, end] were
            # made inside the window. A token at exactly ``start`` (the last request's first token, or
            # every first token of a static batch) was made before it; counting it would disagree with
            # the interpolated count below, (n - 1) tokens between first token and finish.
            tokens += sum(1 for t in r.token_times_s if start < t <= end)
        else:
            tokens += _interpolated_tokens(r, start, end)
            interpolated = True
    return SteadyWindow(start, end, tokens, interpolated)


def _full_occupancy(ok: Sequence[Response], full: int) -> tuple[float | None, float | None]:
    """First time ``full`` requests decode at once, and the last time the count falls from ``full``."""
    # at one instant a finish counts before a first token: a request replaced at once never overlaps
    events = sorted([(r.finish_s, -1) for r in ok] + [(r.first_token_s, 1) for r in ok])
    decoding, start, end = 0, None, None
    for t, step in events:
        if step < 0 and decoding == full and start is not None:
            end = t
        decoding += step
        if step > 0 and decoding == full and start is None:
            start = t
    return start, end


def _interpolated_tokens(r: Response, start: float, end: float) -> float:
    # Decode at the request's average rate between its first token and its finish.
    first, finish = r.first_token_s, r.finish_s
    assert first is not None and finish is not None
    if r.output_tokens < 2 or finish <= first:
        return 0.0
    rate = (r.output_tokens - 1) / (finish - first)
    lo, hi = max(start, first), min(end, finish)
    return max(0.0, hi - lo) * rate
