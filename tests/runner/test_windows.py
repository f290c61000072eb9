"""The steady-state window and the per-repeat metrics, from real Response and StageResult records."""

from __future__ import annotations

import pytest

from joulebench.measurement.records import Component, ComponentEnergy, Method, StageResult
from joulebench.results.energy import component_energies, stage_items
from joulebench.runner.metrics import repeat_metrics
from joulebench.runner.steady import steady_window
from joulebench.workloads.spec import Response


def _resp(i: int, first: float, finish: float, n: int, times: tuple[float, ...] = ()) -> Response:
    return Response(
        index=i, output_tokens=n, submit_s=0.0, first_token_s=first, finish_s=finish, token_times_s=times
    )


def test_steady_window_is_full_occupancy() -> None:
    # Request 1 gets its first token last (at 2), request 0 finishes first (at 8).
    rs = [_resp(0, 1.0, 8.0, 8), _resp(1, 2.0, 10.0, 9)]
    w = steady_window(rs)
    assert (w.start_s, w.end_s) == (2.0, 8.0)
    assert w.tokens_interpolated
    # request 0: 7 tokens over 7 s -> 6 s inside; request 1: 8 tokens over 8 s -> 6 s inside
    assert w.output_tokens == pytest.approx(12.0)


def test_steady_window_counts_streamed_tokens_exactly() -> None:
    rs = [
        _resp(0, 1.0, 5.0, 5, (1.0, 2.0, 3.0, 4.0, 5.0)),
        _resp(1, 2.0, 6.0, 5, (2.0, 3.0, 4.0, 5.0, 6.0)),
    ]
    w = steady_window(rs)
    assert (w.start_s, w.end_s) == (2.0, 5.0)
    assert not w.tokens_interpolated
    # tokens made inside (2, 5]: 3, 4, 5 of each (1 token/s each, over 3 s); the tokens at 2 were made
    # before the window began
    assert w.output_tokens == 6


def test_streamed_and_interpolated_steady_counts_agree() -> None:
    # A static batch: every request's first token at 1 s, its finish at 9 s, one token a second.
    times = tuple(float(t) for t in range(1, 10))
    streamed = steady_window([_resp(i, 1.0, 9.0, 9, times) for i in range(4)])
    interpolated = steady_window([_resp(i, 1.0, 9.0, 9) for i in range(4)])
    assert interpolated.output_tokens == pytest.approx(32.0)  # 8 tokens after the first, x 4
    assert streamed.output_tokens == interpolated.output_tokens


def test_steady_window_unavailable_without_timestamps_or_overlap() -> None:
    no_times = steady_window([Response(index=0, output_tokens=4)])
    assert not no_times.available and "no per-request token times" in (no_times.reason or "")
    never_full = steady_window([_resp(0, 1.0, 2.0, 3), _resp(1, 3.0, 4.0, 3)])
    assert not never_full.available and "never fully occupied" in (never_full.reason or "")


def _ce(
    comp: Component,
    device: str,
    energy: float | None,
    method: Method = Method.COUNTER,
    uncertainty_j: float | None = None,
) -> ComponentEnergy:
    return ComponentEnergy(comp, device, energy, 2.0, None, None, method, uncertainty_j=uncertainty_j)


def test_total_is_node_when_the_node_is_measured() -> None:
    stage = StageResult(
        "generate",
        0.0,
        2.0,
        (
            _ce(Component.GPU, "all", 100.0, uncertainty_j=3.0),
            _ce(Component.CPU, "all", 40.0, uncertainty_j=1.0),
            _ce(Component.NODE, "all", 200.0, Method.INTEGRATED, uncertainty_j=12.0),
        ),
    )
    e = component_energies(stage_items(stage))
    assert e["total"] == (200.0, False, 12.0)  # the node's own bound


def test_total_sums_measured_parts_and_keeps_estimates_apart() -> None:
    stage = StageResult(
        "generate",
        0.0,
        2.0,
        (
            _ce(Component.GPU, "gpu0", 60.0, uncertainty_j=2.0),
            _ce(Component.GPU, "gpu1", 40.0, uncertainty_j=1.5),
            _ce(Component.CPU, "all", 30.0, Method.ESTIMATED),
        ),
    )
    e = component_energies(stage_items(stage))
    assert e["gpu"] == (100.0, False, 3.5)  # devices summed when there is no "all" row, and their bounds
    assert e["total"] == (100.0, False, 3.5)
    assert e["total_incl_estimated"] == (130.0, True, None)  # an estimate states no bound


def test_a_part_without_a_bound_leaves_the_total_without_one() -> None:
    stage = StageResult(
        "g", 0.0, 1.0, (_ce(Component.GPU, "all", 60.0, uncertainty_j=2.0), _ce(Component.CPU, "all", 9.0))
    )
    e = component_energies(stage_items(stage))
    assert e["total"] == (69.0, False, None)


def test_a_component_with_an_unmeasured_device_is_left_out() -> None:
    stage = StageResult("g", 0.0, 1.0, (_ce(Component.GPU, "gpu0", 5.0), _ce(Component.GPU, "gpu1", None)))
    assert "gpu" not in component_energies(stage_items(stage))


def test_repeat_metrics() -> None:
    rs = [_resp(0, 1.0, 8.0, 8), _resp(1, 2.0, 10.0, 8)]
    window = StageResult("generate", 0.0, 10.0, (_ce(Component.GPU, "all", 160.0),))
    steady = steady_window(rs)
    steady_stage = StageResult("steady", 2.0, 8.0, (_ce(Component.GPU, "all", 90.0),))
    m = repeat_metrics(window, rs, steady, steady_stage)
    assert m["output_tokens"] == 16
    assert m["tokens_per_s"] == pytest.approx(1.6)
    assert m["j_per_token.gpu"] == pytest.approx(10.0)
    assert m["j_per_response.total"] == pytest.approx(80.0)
    assert m["power_w.gpu"] == pytest.approx(16.0)
    assert m["ttft_s"] == pytest.approx(1.5)
    assert m["tpot_s"] == pytest.approx((1.0 + 8.0 / 7.0) / 2)
    assert m["steady_available"] is True
    assert m["steady.power_w.gpu"] == pytest.approx(15.0)
    assert m["steady.j_per_token.gpu"] == pytest.approx(90.0 / steady.output_tokens)  # type: ignore[operator]


def test_repeat_metrics_without_energy() -> None:
    rs = [Response(index=0, output_tokens=4)]
    m = repeat_metrics(StageResult("generate", 0.0, 2.0, ()), rs, steady_window(rs), None)
    assert m["tokens_per_s"] == pytest.approx(2.0)
    assert not [k for k in m if k.startswith("j_per_token")]
    assert m["steady_available"] is False


def test_steady_window_under_a_concurrency_limit_is_c_requests_decoding() -> None:
    # At most 2 requests at a time: 2 and 3 replace 0 and 1 as they finish (prefill 0.1 s each).
    rs = [_resp(0, 0.1, 1.0, 10), _resp(1, 0.2, 1.5, 14), _resp(2, 1.1, 2.0, 10), _resp(3, 1.6, 2.5, 10)]
    assert not steady_window(rs).available  # never all four at once
    w = steady_window(rs, concurrency=2)
    # from the moment two decode together until the count last falls from two (the queue ran dry); the
    # last request drains alone outside the window
    assert (w.start_s, w.end_s) == (0.2, 2.0)
    one_at_a_time = [_resp(0, 0.1, 1.0, 5), _resp(1, 1.1, 2.0, 5), _resp(2, 2.1, 3.0, 5)]
    never = steady_window(one_at_a_time, concurrency=2)
    assert not never.available and "never 2 requests decoding at once" in (never.reason or "")
    batch = [_resp(0, 1.0, 8.0, 8), _resp(1, 2.0, 10.0, 9)]
    assert steady_window(batch, concurrency=8) == steady_window(batch)  # a limit above the batch: no limit
