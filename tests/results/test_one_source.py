"""`joulebench run --json` and the report's summary.csv give the same numbers for the same database: both
read the results layer, so no metric can be derived twice and drift."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

from joulebench.report.build import build_report

#: what the run prints, against the report's (metric, component) for the generate window
GENERATION = ("j_per_token", "j_per_response", "power_w", "energy_j")
PLAIN = ("tokens_per_s", "ttft_s", "tpot_s", "itl_s", "output_tokens", "duration_s", "n_requests")


def test_run_json_and_report_summary_agree(tiny_llama: Path, tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    proc = subprocess.run(
        [sys.executable, "-m", "joulebench", "run", "--model", str(tiny_llama), "--batch-size", "2",
         "--output-tokens", "6", "--length-mode", "fixed", "--repeats", "3", "--setup-repeats", "2",
         "--device", "cpu", "--idle-s", "1", "--db", str(db), "--json"],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "JOULEBENCH_POWERCAP_ROOT": str(tmp_path / "none"), "CUDA_VISIBLE_DEVICES": ""},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = json.loads(proc.stdout)
    build_report(db, tmp_path / "report")
    with open(tmp_path / "report" / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))

    def report(kind: str, stage: str, component: str, metric: str) -> dict[str, str]:
        (row,) = [r for r in rows if (r["kind"], r["stage"], r["component"], r["metric"]) ==
                  (kind, stage, component, metric)]  # fmt: skip
        return row

    compared = 0
    for key, stat in run["generation"]["metrics"].items():
        metric, _, component = key.partition(".")
        if (metric in GENERATION and component) or (metric in PLAIN and not component):
            row = report("generation", "generate", component, metric)
            assert int(row["n"]) == stat["n"] == 3, key
            assert math.isclose(float(row["mean"]), stat["mean"], rel_tol=1e-9), key
            if stat["ci_half_width"] is not None:
                assert math.isclose(float(row["ci_half_width"]), stat["ci_half_width"], rel_tol=1e-9), key
            compared += 1
    for stage, values in run["setup"]["stages"].items():
        for component, stat in values["energy_j"].items():
            # engine-wide stages are pooled over models in the report; one model here, so the same trials
            (row,) = [r for r in rows if (r["kind"], r["stage"], r["component"], r["metric"]) ==
                      ("setup", stage, component, "energy_j")]  # fmt: skip
            assert math.isclose(float(row["mean"]), stat["mean"], rel_tol=1e-9), (stage, component)
            compared += 1
        (row,) = [r for r in rows if (r["kind"], r["stage"], r["component"], r["metric"]) ==
                  ("setup", stage, "", "duration_s")]  # fmt: skip
        assert math.isclose(float(row["mean"]), values["duration_s"]["mean"], rel_tol=1e-9), stage
    # the per-token figures by component, tokens/s and the three latencies, and every setup stage
    assert compared >= 20, compared
    assert {"itl_s", "ttft_s", "tpot_s", "tokens_per_s"} <= {k for k in run["generation"]["metrics"]}
