"""Write results databases row by row with sqlite3, following store/schema.py, with known numbers.

The report's tests compute every expected figure by hand from the energies and tokens written here.
"""

from __future__ import annotations

import gzip
import json
import sqlite3
from pathlib import Path

from joulebench.store.schema import DDL, SCHEMA_VERSION


class ResultsWriter:
    def __init__(self, path: Path, schema_version: int = SCHEMA_VERSION) -> None:
        self.path = path
        self.conn = sqlite3.connect(path)
        self.conn.executescript(DDL)
        self.conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(schema_version),))
        self.clock_s = 1000.0

    def close(self) -> None:
        self.conn.commit()
        self.conn.close()

    def run(
        self,
        engine: str,
        model: str,
        workload: str = "standard",
        batch_size: int = 4,
        output_tokens: int = 100,
        model_label: str | None = None,
        status: str = "ok",
        tensor_parallel: int = 1,
        config: dict[str, object] | None = None,
    ) -> int:
        cur = self.conn.execute(
            "INSERT INTO runs (created_unix_s, finished_unix_s, status, engine, engine_version, model,"
            " model_label, workload, batch_size, output_tokens, length_mode, device, tensor_parallel,"
            " joulebench_version, config_json, environment_json)"
            " VALUES (?, ?, ?, ?, '1.0', ?, ?, ?, ?, ?, 'fixed', 'cuda', ?, '0.1.0', ?, '{}')",
            (1.7e9, 1.7e9 + 60, status, engine, model, model_label, workload, batch_size, output_tokens,
             tensor_parallel, json.dumps(config or {})),
        )  # fmt: skip
        return int(cur.lastrowid)  # type: ignore[arg-type]

    def trial(
        self,
        run_id: int,
        kind: str,
        repeat_index: int = 0,
        status: str = "ok",
        output_tokens: int | None = None,
        n_requests: int | None = None,
        details: dict[str, object] | None = None,
        cache_state: str | None = None,
        compile_cache: str | None = None,
    ) -> int:
        cur = self.conn.execute(
            "INSERT INTO trials (run_id, kind, repeat_index, status, started_unix_s, n_requests,"
            " output_tokens, details_json, cache_state, compile_cache) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, kind, repeat_index, status, 1.7e9, n_requests, output_tokens,
             None if details is None else json.dumps(details), cache_state, compile_cache),
        )  # fmt: skip
        return int(cur.lastrowid)  # type: ignore[arg-type]

    def window(
        self,
        trial_id: int,
        stage: str,
        duration_s: float,
        energies_j: dict[str, float | None],
        estimated: tuple[str, ...] = (),
        start_s: float | None = None,
    ) -> tuple[float, float]:
        """One stage window: an 'all' row per component with the given energy (None: not measurable)."""
        start = self.clock_s if start_s is None else start_s
        end = start + duration_s
        self.clock_s = max(self.clock_s, end)
        for component, energy in energies_j.items():
            est = component in estimated
            self.conn.execute(
                "INSERT INTO stage_energy (trial_id, stage, component, device, start_s, end_s, energy_j,"
                " avg_power_w, method, estimated) VALUES (?, ?, ?, 'all', ?, ?, ?, ?, ?, ?)",
                (
                    trial_id,
                    stage,
                    component,
                    start,
                    end,
                    energy,
                    None if energy is None else energy / duration_s,
                    "estimated" if est else "counter",
                    int(est),
                ),
            )
        return start, end

    def request(self, trial_id: int, index: int, output_tokens: int, ttft_s: float, tpot_s: float) -> None:
        self.conn.execute(
            "INSERT INTO requests (trial_id, request_index, output_tokens, ttft_s, tpot_s, e2e_s)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (trial_id, index, output_tokens, ttft_s, tpot_s, ttft_s + tpot_s * (output_tokens - 1)),
        )

    def trace(self, trial_id: int, readings: list[dict[str, object]]) -> None:
        data = gzip.compress("".join(json.dumps(r) + "\n" for r in readings).encode())
        self.conn.execute("INSERT INTO traces VALUES (?, 'jsonl.gz', ?)", (trial_id, data))


# The sample database: two engines, one model, one workload (4 requests x 100 tokens), three setup and
# three generation repeats each, and one failed generation trial that must be left out.
MODEL, LABEL, WORKLOAD = "meta-llama/Llama-3.2-1B", "llama-3.2-1b", "standard"
SETUP = {  # engine -> stage -> (durations s, {component: energies J per repeat})
    "transformers": {
        "engine_init": (
            [1.9, 2.0, 2.1],
            {"gpu": [390, 400, 410], "cpu": [500, 510, 520], "dram": [70, 70, 70]},
        ),
        "model_load": (
            [1.0, 1.0, 1.0],
            {"gpu": [200, 200, 200], "cpu": [300, 300, 300], "dram": [20, 20, 20]},
        ),
        "setup": ([3.5, 3.5, 3.5], {"gpu": [650, 650, 650], "cpu": [850, 850, 850], "dram": [95, 95, 95]}),
    },
    "vllm": {
        "engine_init": ([40, 40, 40], {"gpu": [7000] * 3, "cpu": [12000] * 3, "dram": [1000] * 3}),
        "model_load": ([4, 4, 4], {"gpu": [700] * 3, "cpu": [1000] * 3, "dram": [80] * 3}),
        "setup": ([48, 48, 48], {"gpu": [8000] * 3, "cpu": [13500] * 3, "dram": [1100] * 3}),
    },
}
GENERATE = {  # engine -> (duration s, {component: energies J per repeat}); 4 requests, 400 tokens per trial
    "transformers": (10.0, {"gpu": [1000, 1100, 1200], "cpu": [400, 400, 400], "dram": [40, 40, 40]}),
    "vllm": (2.0, {"gpu": [300, 300, 300], "cpu": [80, 80, 80], "dram": [10, 10, 10]}),
}
# transformers only: the steady-state window (every request decoding), 8 s and 320 of the 400 tokens
STEADY = (8.0, 320, {"gpu": [800, 880, 960], "cpu": [320, 320, 320], "dram": [32, 32, 32]})
REQUESTS, TOKENS_PER_REQUEST = 4, 100
TTFT_S = {"transformers": 0.5, "vllm": 0.1}


def build_sample_db(path: Path, traces: bool = True) -> Path:
    w = ResultsWriter(path)
    for engine, stages in SETUP.items():
        run = w.run(
            engine, MODEL, WORKLOAD, batch_size=REQUESTS, output_tokens=TOKENS_PER_REQUEST, model_label=LABEL
        )
        for i in range(3):
            trial = w.trial(run, "setup", i)
            start = w.clock_s
            for stage in ("engine_init", "model_load"):
                durations, energies = stages[stage]
                w.window(trial, stage, durations[i], {c: e[i] for c, e in energies.items()})
            durations, energies = stages["setup"]
            w.window(trial, "setup", durations[i], {c: e[i] for c, e in energies.items()}, start_s=start)
            if traces and i == 0:
                w.trace(trial, _readings(start, w.clock_s))
            w.clock_s += 5
        duration, energies = GENERATE[engine]
        for i in range(3):
            steady = engine == "transformers"
            details = {"metrics": {"steady.output_tokens": STEADY[1]}} if steady else None
            trial = w.trial(
                run,
                "generation",
                i,
                output_tokens=REQUESTS * TOKENS_PER_REQUEST,
                n_requests=REQUESTS,
                details=details,
            )
            start, end = w.window(trial, "generate", duration, {c: e[i] for c, e in energies.items()})
            if steady:
                w.window(
                    trial, "steady", STEADY[0], {c: e[i] for c, e in STEADY[2].items()}, start_s=start + 1
                )
            for r in range(REQUESTS):
                w.request(
                    trial, r, TOKENS_PER_REQUEST, ttft_s=TTFT_S[engine] * (1 + 0.1 * (r - 1.5)), tpot_s=0.01
                )
            if traces and i == 0:
                w.trace(trial, _readings(start, end))
        failed = w.trial(run, "generation", 3, status="failed", output_tokens=1, n_requests=1)
        w.window(failed, "generate", 1.0, {"gpu": 1e6})
    w.close()
    return path


def _readings(start_s: float, end_s: float) -> list[dict[str, object]]:
    """A GPU power series and a CPU energy counter (power from differences) every 0.5 s."""
    out: list[dict[str, object]] = [
        {"format": "joulebench-trace", "version": 1}
    ]  # a header line, not a reading
    steps = int((end_s - start_s) / 0.5) + 1
    for k in range(steps):
        t = start_s + 0.5 * k
        out.append(
            {"t_s": t, "source": "nvml", "component": "gpu", "device": "gpu0", "power_w": 100.0 + k % 3}
        )
        out.append(
            {"t_s": t, "source": "rapl", "component": "cpu", "device": "package-0", "energy_j": 60.0 * k}
        )
    return out
