"""The steady-state window of a batch (ML.ENERGY's definition): the batch is fully occupied.

It begins when the last request has received its first token (every request admitted and decoding)
and ends when the first request finishes; ramp-up and ramp-down lie outside it. It needs per-request
first-token and finish times; without them, or when the batch never reaches full occupancy (the last
first token comes after the first finish), it is unavailable and says why.
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


def steady_window(responses: Sequence[Response]) -> SteadyWindow:
    ok = [r for r in responses if r.error is None]
    if not ok:
        return SteadyWindow(None, None, None, False, "no successful request")
    if any(r.first_token_s is None or r.finish_s is None for r in ok):
        return SteadyWindow(None, None, None, False, "engine gives no per-request token times")
    start = max(r.first_token_s for r in ok)  # type: ignore[type-var]
    end = min(r.finish_s for r in ok)  # type: ignore[type-var]
    if not end > start:
        return SteadyWindow(None, None, None, False, "batch never fully occupied (a request ended first)")
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


def _interpolated_tokens(r: Response, start: float, end: float) -> float:
    # Decode at the request's average rate between its first token and its finish.
    first, finish = r.first_token_s, r.finish_s
    assert first is not None and finish is not None
    if r.output_tokens < 2 or finish <= first:
        return 0.0
    rate = (r.output_tokens - 1) / (finish - first)
    lo, hi = max(start, first), min(end, finish)
    return max(0.0, hi - lo) * rate
