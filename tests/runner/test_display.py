from __future__ import annotations

import io
import time

from rich.console import Console

from joulebench.measurement.monitor import Monitor
from joulebench.runner.display import LiveProgress


def test_live_line_shows_trial_throughput_and_watts() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=160)
    progress = LiveProgress(console)
    with Monitor(estimate=True, interval_s=0.05) as monitor:
        time.sleep(0.3)
        progress({"event": "run_start", "run_id": 7, "monitor": monitor})
        progress({"event": "phase", "phase": "generate", "index": 1, "total": 3})
        progress({"event": "trial", "kind": "generation", "index": 1, "status": "ok",
                  "metrics": {"tokens_per_s": 123.45}, "error": None})  # fmt: skip
        progress({"event": "trial", "kind": "generation", "index": 2, "status": "failed",
                  "metrics": None, "error": "worker killed by SIGKILL\nmore"})  # fmt: skip
        rendered = progress.__rich__().plain
        progress({"event": "run_end", "run_id": 7, "status": "partial"})
    assert "run 7: repeat 2 of 3" in rendered
    assert "last repeat 123.5 tok/s" in rendered
    assert "1 failed" in rendered
    watts = monitor.latest_power_w()
    assert watts and all(f"{k} " in rendered for k in watts)
    assert "generation 3 failed: worker killed by SIGKILL" in out.getvalue()
    assert progress.live is None
