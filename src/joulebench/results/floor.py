"""How far a run's GPU energy per token is from the floor its card allows (docs/roofline.md): the card's
limits from the newest `joulebench roofline` rows of a card of the same name, the decode step from the
model's shape the run recorded, and the run's batch, prompt lengths and output tokens."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from joulebench.errors import ModelError
from joulebench.results.energy import stored_number
from joulebench.roofline.floor import CardLimits, Floor, decode_floor
from joulebench.roofline.shape import DTYPE_BYTES, DecoderShape


@dataclass(frozen=True)
class RunFloor:
    card: str
    limits: CardLimits
    floor: Floor
    measured_unix_s: float  # when the card's limits were measured


def card_limits(
    rows: Iterable[Mapping[str, Any]], device_name: str, dtype_bytes: int
) -> tuple[CardLimits, float] | None:
    """The newest copy and GEMM measured on a card of this name (the GEMM in a dtype of ``dtype_bytes``
    where one was run, else any), and when; ``None`` without both, or without an idle baseline."""
    usable = [
        r
        for r in rows
        if r["device_name"] == device_name
        and stored_number(r["idle_power_w"]) is not None
        and stored_number(r["above_idle_energy_j"]) is not None
    ]

    def newest(candidates: list[Mapping[str, Any]]) -> Mapping[str, Any]:
        return max(candidates, key=lambda r: (float(r["created_unix_s"]), int(r.get("id") or 0)))

    copies = [r for r in usable if r["kernel"] == "copy"]
    gemms = [r for r in usable if r["kernel"] == "gemm"]
    fitting = [r for r in gemms if DTYPE_BYTES.get(str(r["dtype"])) == dtype_bytes]
    if not copies or not gemms:
        return None
    copy, gemm = newest(copies), newest(fitting or gemms)

    def per_unit(r: Mapping[str, Any], column: str) -> float | None:
        value = stored_number(r[column])
        return None if value is None else value / float(r["units"])

    def rate(r: Mapping[str, Any]) -> float:
        return float(r["units"]) / (float(r["end_s"]) - float(r["start_s"]))

    limits = CardLimits(
        device_name=device_name,
        bytes_per_s=rate(copy),
        flops_per_s=rate(gemm),
        idle_power_w=(float(copy["idle_power_w"]) + float(gemm["idle_power_w"])) / 2,
        j_per_byte=max(float(copy["above_idle_energy_j"]), 0.0) / float(copy["units"]),
        j_per_flop=max(float(gemm["above_idle_energy_j"]), 0.0) / float(gemm["units"]),
        j_per_byte_bound=per_unit(copy, "uncertainty_j"),
        j_per_flop_bound=per_unit(gemm, "uncertainty_j"),
    )
    return limits, max(float(copy["created_unix_s"]), float(gemm["created_unix_s"]))


def run_floor(run: Mapping[str, Any], roofline: Iterable[Mapping[str, Any]]) -> RunFloor | None:
    """The floor of a run (a row of ``runs``: its ``config``/``environment`` decoded or as JSON text);
    ``None`` where the run recorded no model shape or GPU, ran on cards of different names, or no roofline
    of its card is stored."""
    config, environment = _decoded(run, "config"), _decoded(run, "environment")
    resolved = config.get("resolved") or {}
    try:
        shape = DecoderShape.from_dict(resolved["model_shape"])
    except (KeyError, TypeError, ModelError):
        return None
    cards = {
        str(d.get("name")) for d in environment.get("devices_start") or [] if d.get("component") == "gpu"
    }
    if len(cards) != 1:
        return None
    (card,) = cards
    found = card_limits(roofline, card, shape.dtype_bytes)
    prompt = (resolved.get("prompt_lengths") or {}).get("mean_tokens")
    if found is None or prompt is None:
        return None
    limits, when = found
    batch = int(run["batch_size"])
    if config.get("max_concurrency"):
        batch = min(batch, int(config["max_concurrency"]))
    floor = decode_floor(shape, limits, batch, float(prompt), int(run["output_tokens"]))
    return None if floor is None else RunFloor(card, limits, floor, when)


def _decoded(run: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = run.get(name)
    if value is None:
        try:
            value = json.loads(run.get(f"{name}_json") or "{}")
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def pct_of_floor(measured_j_per_token: float, floor: Floor) -> float:
    """The measured GPU J/token as a percentage of the floor (100 %: at the limit)."""
    return 100.0 * measured_j_per_token / floor.j_per_token


def floor_summary(found: RunFloor | None, gpu_j_per_token: float | None) -> dict[str, Any] | None:
    """What `run` prints and emits of the floor: the card, the floor with its bound, and the measured
    GPU J/token as a percentage of it."""
    if found is None:
        return None
    return {
        "card": found.card,
        "floor_j_per_token": found.floor.j_per_token,
        "bound_j_per_token": found.floor.bound_j_per_token,
        "memory_bound_steps": found.floor.memory_bound_steps,
        "roofline_measured_unix_s": found.measured_unix_s,
        "gpu_j_per_token": gpu_j_per_token,
        "pct_of_floor": None if gpu_j_per_token is None else pct_of_floor(gpu_j_per_token, found.floor),
    }
