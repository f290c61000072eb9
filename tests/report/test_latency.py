"""`advise --max-tpot-ms`: the least J/token among measured cells within a latency target, and the
energy-latency frontier, from numbers written here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from joulebench.report.build import build_report
from tests.report.resultsdb import ResultsWriter

# (engine, workload, batch): J/token (measured GPU total), TPOT s, TTFT s
CELLS = {
    ("vllm", "b8"): (0.30, 0.008, 0.05),
    ("vllm", "b64"): (0.10, 0.020, 0.20),
    ("vllm", "b256"): (0.05, 0.045, 0.90),
    ("transformers", "b64"): (0.40, 0.030, 0.30),  # slower and dearer than vllm b64: off the frontier
}


def _database(path: Path) -> Path:
    w = ResultsWriter(path)
    for (engine, workload), (jt, tpot, ttft) in CELLS.items():
        run = w.run(engine, "m", workload=workload, batch_size=2, output_tokens=10)
        for i in range(3):
            trial = w.trial(run, "generation", i, output_tokens=20, n_requests=2)
            w.window(trial, "generate", 2.0, {"gpu": jt * 20})
            for r in range(2):
                w.request(trial, r, 10, ttft_s=ttft, tpot_s=tpot)
    w.close()
    return path


def _advise(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "joulebench", "advise", "--db", str(db), *args],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_the_least_energy_within_the_target(tmp_path: Path) -> None:
    db = _database(tmp_path / "r.db")
    proc = _advise(db, "--max-tpot-ms", "25", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert (doc["chosen"]["engine"], doc["chosen"]["workload"]) == ("vllm", "b64")  # 0.10 J/token at 20 ms
    assert [(c["engine"], c["workload"]) for c in doc["meeting"]] == [("vllm", "b64"), ("vllm", "b8")]
    assert [c["workload"] for c in doc["frontier"]] == ["b8", "b64", "b256"]
    # a tighter first-token target too: b64's 200 ms is out
    doc = json.loads(_advise(db, "--max-tpot-ms", "25", "--max-ttft-ms", "100", "--json").stdout)
    assert doc["chosen"]["workload"] == "b8"
    text = _advise(db, "--max-tpot-ms", "25").stdout
    assert "meets  vllm m b64: 0.1 J/token, TPOT 20 ms, TTFT 200 ms <- least energy within the target" in text
    assert "misses transformers m b64" in text


def test_no_cell_within_the_target_exits_1_and_says_what_there_is(tmp_path: Path) -> None:
    db = _database(tmp_path / "r.db")
    proc = _advise(db, "--max-tpot-ms", "1")
    assert proc.returncode == 1 and "misses vllm m b8" in proc.stdout and "<- least" not in proc.stdout
    for args, words in [
        (["--max-tpot-ms", "-3"], "--max-tpot-ms must be a number > 0"),
        ([], "or a latency target"),
        (["--requests-per-day", "5"], "go together"),
    ]:
        bad = _advise(db, *args)
        assert bad.returncode == 2 and words in bad.stderr, (args, bad.stderr)


def test_the_report_draws_the_frontier(tmp_path: Path) -> None:
    files = build_report(_database(tmp_path / "r.db"), tmp_path / "out")
    assert "fig9_energy_latency" in {f.name for f in files.figures}
