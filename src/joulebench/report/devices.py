"""Energy per device for runs that measured several devices of one component (an engine on two GPUs).

The other tables show a component's sum over its devices; this one shows each device's part of that sum, so
that an unbalanced split (one GPU of a layer-split model idling while the other computes) is visible.
Devices are named as the runner names them (``gpu0`` = the run's ``cuda:0``) with the NVML index and UUID
that the run recorded for each.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from joulebench.report.tables import Table, format_stat
from joulebench.results.aggregate import Stat
from joulebench.results.stats import summarize
from joulebench.results.tidy import GENERATE, engine_labels, model_label

if TYPE_CHECKING:
    from joulebench.store.frames import Frames

STAGES = ("setup", GENERATE)
NOTE = (
    "Runs on several devices of one component: each device's energy per trial (mean ± 95 % CI across "
    "trials) and its share of the component's sum; a device is the run's cuda:N, with the GPU it was "
    "(NVML index, UUID)."
)


def device_table(frames: Frames) -> Table | None:
    """None when no selected run measured more than one device of a component."""
    runs = {int(r["id"]): r for r in frames.runs.to_dict("records")}
    engines = engine_labels(frames.runs)
    records = frames.trials.to_dict("records")
    trials = {int(t["id"]): t for t in records if t["status"] == "ok" and t["kind"] != "idle"}
    # (run, stage, component) -> device -> energy per trial
    energy: dict[tuple[int, str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for w in frames.stage_energy.to_dict("records"):
        trial = trials.get(int(w["trial_id"]))
        if trial is None or w["stage"] not in STAGES or w["device"] == "all" or w["energy_j"] is None:
            continue
        energy[(int(trial["run_id"]), str(w["stage"]), str(w["component"]))][str(w["device"])].append(
            float(w["energy_j"])
        )
    rows = []
    for (run_id, stage, component), per_device in sorted(energy.items()):
        if len(per_device) < 2:
            continue
        run = runs[run_id]
        names = _device_names(run)
        total = sum(sum(v) / len(v) for v in per_device.values())
        for device, values in sorted(per_device.items()):
            s = summarize(values)
            assert s.mean is not None  # values are never empty here
            stat = Stat(s.mean, s.ci_half_width, s.n, False, "")
            rows.append(
                (str(run_id), engines[run_id], model_label(run), str(run["workload"]), stage, component,
                 names.get(device, device), format_stat(stat), f"{100 * s.mean / total:.1f} %")
            )  # fmt: skip
    if not rows:
        return None
    cols = ("Run", "Engine", "Model", "Workload", "Stage", "Component", "Device", "Energy (J)", "Share")
    return Table("Energy per device", cols, tuple(rows), (NOTE,))


def devices_at_start(run: dict[str, Any]) -> list[dict[str, Any]]:
    """The devices a run (a row of the runs frame) recorded at its start: component, device, attributes."""
    try:
        environment = json.loads(run.get("environment_json") or "{}")
    except ValueError:
        return []
    return list(environment.get("devices_start") or [])


def _device_names(run: dict[str, Any]) -> dict[str, str]:
    """``gpu0`` -> ``gpu0 (NVML 2, GPU-a4b54df4)`` from the devices the run recorded at its start."""
    out = {}
    for d in devices_at_start(run):
        attrs = d.get("attributes") or {}
        if "nvml_index" in attrs and "uuid" in attrs:
            out[str(d["device"])] = f"{d['device']} (NVML {attrs['nvml_index']}, {str(attrs['uuid'])[:12]})"
    return out
