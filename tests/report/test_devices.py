"""The per-device table: each GPU's part of a multi-GPU run's energy, named by the GPU it was."""

from __future__ import annotations

import json
from pathlib import Path

from joulebench.report.devices import device_table
from joulebench.store.frames import load_frames
from tests.report.resultsdb import ResultsWriter


def _device_rows(w: ResultsWriter, trial_id: int, stage: str, energies: dict[str, float]) -> None:
    for device, energy in energies.items():
        w.conn.execute(
            "INSERT INTO stage_energy (trial_id, stage, component, device, start_s, end_s, energy_j, method,"
            " estimated) VALUES (?, ?, 'gpu', ?, 0, 2, ?, 'counter', 0)",
            (trial_id, stage, device, energy),
        )


def test_each_gpu_of_a_two_gpu_run_gets_its_energy_and_share(tmp_path: Path) -> None:
    w = ResultsWriter(tmp_path / "r.db")
    one = w.run("vllm", "m", model_label="llama-3.2-1b")  # one GPU: not in the table
    t = w.trial(one, "generation", output_tokens=400)
    w.window(t, "generate", 2.0, {"gpu": 300.0})
    _device_rows(w, t, "generate", {"gpu0": 300.0})
    two = w.run("vllm", "m", model_label="llama-3.2-1b", tensor_parallel=2)
    devices = [
        {"device": f"gpu{i}", "component": "gpu", "source": "nvml", "name": "H100",
         "attributes": {"nvml_index": i + 2, "uuid": f"GPU-{i}a4b54df4-713d"}}
        for i in range(2)
    ]  # fmt: skip
    w.conn.execute(
        "UPDATE runs SET environment_json = ? WHERE id = ?", (json.dumps({"devices_start": devices}), two)
    )
    for k, (a, b) in enumerate([(600.0, 700.0), (640.0, 660.0), (620.0, 680.0)]):
        t = w.trial(two, "generation", repeat_index=k, output_tokens=400)
        w.window(t, "generate", 2.0, {"gpu": a + b})
        _device_rows(w, t, "generate", {"gpu0": a, "gpu1": b})
    failed = w.trial(two, "generation", repeat_index=3, status="failed")
    _device_rows(w, failed, "generate", {"gpu0": 1e6, "gpu1": 1e6})  # a failed trial is left out
    w.close()

    table = device_table(load_frames(tmp_path / "r.db"))
    assert table is not None
    assert [row[6] for row in table.rows] == ["gpu0 (NVML 2, GPU-0a4b54df)", "gpu1 (NVML 3, GPU-1a4b54df)"]
    assert all(
        row[:6] == (str(two), "vllm:tp2", "llama-3.2-1b", "standard", "generate", "gpu") for row in table.rows
    )
    # means 620 and 680 J of 1,300 J; CI half-width t(0.975, 2) x 20 / sqrt(3) = 49.7
    assert [row[7:] for row in table.rows] == [("620 ± 50", "47.7 %"), ("680 ± 50", "52.3 %")]


def test_no_multi_device_run_no_table(tmp_path: Path) -> None:
    w = ResultsWriter(tmp_path / "r.db")
    run = w.run("transformers", "m")
    t = w.trial(run, "generation", output_tokens=400)
    w.window(t, "generate", 2.0, {"gpu": 300.0})
    w.close()
    assert device_table(load_frames(tmp_path / "r.db")) is None
