"""Prefill and decode of a batch, as spans of its generate window, from the engine's per-request times.

A request is in *prefill* from its submission until its first token, and in *decode* from its first token
until it finishes. The batch is in prefill while any request is (the engine is then computing prompts,
whatever else it does), and in decode while every request in flight is decoding. Time when no request is in
flight (before the first submission reaches the engine, after the last finish) is neither. The energy of a
phase is the sum of its spans' windows, each with its own bound (docs/counters.md); a static batch (HF
``generate``) has one prefill span and one decode span, a server fed over time has many.

Tokens: the first token of a request comes out of its prefill, so J per prompt token is the prefill
energy over the prompt tokens, and the decode J/token is the decode energy over the other output tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise

from joulebench.measurement.records import StageResult
from joulebench.results.energy import TOTAL_INCL_ESTIMATED, component_energies, headline_key, stage_items
from joulebench.workloads.spec import Response

Span = tuple[float, float]


@dataclass(frozen=True)
class Phases:
    prefill: tuple[Span, ...]
    decode: tuple[Span, ...]
    reason: str | None = None  # why there are none

    @property
    def available(self) -> bool:
        return self.reason is None

    @staticmethod
    def seconds(spans: Sequence[Span]) -> float:
        return sum(e - s for s, e in spans)


def phase_spans(responses: Sequence[Response], begin_s: float, end_s: float) -> Phases:
    """The prefill and decode spans inside ``[begin_s, end_s]``."""
    ok = [r for r in responses if r.error is None]
    if not ok:
        return Phases((), (), "no successful request")
    if any(r.first_token_s is None or r.finish_s is None or r.submit_s is None for r in ok):
        return Phases((), (), "engine gives no per-request submit, first-token and finish times")
    # +1/-1 events of the two counts; at one instant ends come before starts
    events: list[tuple[float, int, int, int]] = []  # (t, order, d_prefill, d_decode)
    for r in ok:
        submit = max(min(float(r.submit_s), end_s), begin_s)  # type: ignore[arg-type]
        first = max(min(float(r.first_token_s), end_s), submit)  # type: ignore[arg-type]
        finish = max(min(float(r.finish_s), end_s), first)  # type: ignore[arg-type]
        events += [(submit, 1, 1, 0), (first, 0, -1, 1), (finish, 0, 0, -1)]
    events.sort()
    prefill: list[Span] = []
    decode: list[Span] = []
    in_prefill = in_decode = 0
    last = begin_s
    for t, _, d_prefill, d_decode in events:
        if t > last:
            if in_prefill > 0:
                _extend(prefill, last, t)
            elif in_decode > 0:
                _extend(decode, last, t)
            last = t
        in_prefill += d_prefill
        in_decode += d_decode
    return Phases(tuple(prefill), tuple(decode))


def _extend(spans: list[Span], start: float, end: float) -> None:
    """Append, joining a span that begins where the last one ended."""
    if spans and spans[-1][1] == start:
        spans[-1] = (spans[-1][0], end)
    else:
        spans.append((start, end))


def request_shares(
    responses: Sequence[Response], begin_s: float, end_s: float, energy: Callable[[float, float], float]
) -> list[float | None]:
    """Each request's share of the window's energy: the window is cut at every submission and finish, each
    piece is shared equally by the requests in flight in it, and a piece with none in flight (between
    arrivals, before the first, after the last) by every successful request alike; so the shares add up to
    the window's energy. ``energy(start, end)`` is the measured energy of a piece. ``None`` for a failed
    request or one without times.

    In one pass: a running sum of energy per request in flight, read at each request's submission and
    finish, gives its share; a thousand requests cost two thousand pieces, not a million look-ups."""
    spans = {
        i: (max(float(r.submit_s), begin_s), min(float(r.finish_s), end_s))
        for i, r in enumerate(responses)
        if r.error is None and r.submit_s is not None and r.finish_s is not None
    }
    shares: list[float | None] = [None] * len(responses)
    if not spans:
        return shares
    cuts = sorted({begin_s, end_s, *(t for s, e in spans.values() for t in (s, e) if begin_s < t < end_s)})
    starts: dict[float, int] = {}
    ends: dict[float, int] = {}
    for s, e in spans.values():
        if e > s:
            starts[s] = starts.get(s, 0) + 1
            ends[e] = ends.get(e, 0) + 1
    per_request = {cuts[0]: 0.0}  # at each cut: the energy so far of one request in flight all along
    running, idle, in_flight = 0.0, 0.0, 0
    for a, b in pairwise(cuts):
        in_flight += starts.get(a, 0) - ends.get(a, 0)
        e = energy(a, b)
        if in_flight > 0:
            running += e / in_flight
        else:
            idle += e
        per_request[b] = running
    for i, (s, e) in spans.items():
        shares[i] = (per_request[e] - per_request[s] if e > s else 0.0) + idle / len(spans)
    return shares


def request_energies(
    window_of: Callable[[str, float, float], StageResult],
    responses: Sequence[Response],
    begin_s: float,
    end_s: float,
    window: StageResult,
) -> tuple[list[float | None], bool] | None:
    """Each request's share of the repeat's total energy (runner/phases.py's rule; ``window`` is the
    repeat's, ``window_of(name, start, end)`` measures any piece of it), and whether that total is
    estimated; ``None`` where nothing was measured or estimated."""
    key = headline_key(component_energies(stage_items(window)))
    if key is None:
        return None

    def energy(start: float, end: float) -> float:
        piece = component_energies(stage_items(window_of("request-piece", start, end)))
        return piece[key][0] if key in piece else 0.0

    return request_shares(responses, begin_s, end_s, energy), key == TOTAL_INCL_ESTIMATED
