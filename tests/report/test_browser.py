"""The HTML report in a real browser: headless Chromium loads it offline and every figure must show."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from joulebench.report.build import build_report
from tests.conftest import FirstRun

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Appended to a copy of the report (the report itself has no scripts): after load, record what the browser
# made of each figure into the DOM, which --dump-dom then prints.
CHECK_SCRIPT = """<script>
window.addEventListener("load", () => {
  const checks = Array.from(document.querySelectorAll("img.report-figure")).map((img) => {
    const box = img.getBoundingClientRect(), style = getComputedStyle(img);
    return {alt: img.alt, complete: img.complete, naturalWidth: img.naturalWidth, width: box.width,
            height: box.height, display: style.display, visibility: style.visibility};
  });
  const out = document.createElement("pre");
  out.id = "figure-checks";
  out.textContent = JSON.stringify(checks);
  document.body.appendChild(out);
});
</script>"""


def _browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI") == "true":
        pytest.fail("no Chromium binary on PATH: CI installs it (apt-get install chromium)")
    pytest.skip("no Chromium binary on PATH (apt-get install chromium); CI=true makes this a failure")


def _chromium(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [browser, *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def _shown_figures(browser: str, html: Path, tmp_path: Path) -> list[dict[str, object]]:
    """What Chromium made of each figure of the page: every one must have loaded and be visible."""
    checked = tmp_path / "checked.html"
    checked.write_text(html.read_text().replace("</body>", CHECK_SCRIPT + "</body>"))
    dom = _chromium(
        browser, tmp_path / "profile1", "--virtual-time-budget=5000", "--dump-dom", checked.as_uri()
    )
    found = re.search(r'<pre id="figure-checks">(.*?)</pre>', dom.stdout, re.S)
    assert found, f"the check script did not run (rc {dom.returncode}): {dom.stderr[-500:]}"
    checks: list[dict[str, object]] = json.loads(found.group(1))
    for c in checks:
        assert c["complete"] and c["naturalWidth"] > 0, c  # type: ignore[operator]
        assert c["width"] > 0 and c["height"] > 0, c  # type: ignore[operator]
        assert c["display"] != "none" and c["visibility"] == "visible", c
    return checks


def test_report_renders_every_figure_in_chromium(sample_db: Path, tmp_path: Path) -> None:
    browser = _browser()
    files = build_report(sample_db, tmp_path / "report")
    checks = _shown_figures(browser, files.html, tmp_path)
    assert len(checks) == len(files.figures) == 10

    shot = tmp_path / "report-screenshot.png"  # kept with the test's tmp folder, for a look by eye
    _chromium(
        browser, tmp_path / "profile2", "--window-size=1280,2400", f"--screenshot={shot}", files.html.as_uri()
    )
    header = shot.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", header[16:24]) == (1280, 2400)


def test_first_run_without_sensors_has_a_full_report(first_run: FirstRun, tmp_path: Path) -> None:
    """README command 1 where no sensor can be read: its report still shows every figure, energy estimated
    and labelled so, in a real browser."""
    assert first_run.returncode == 0, first_run.stderr[-3000:]
    browser = _browser()
    files = build_report(first_run.db, tmp_path / "report")
    checks = _shown_figures(browser, files.html, tmp_path)
    names = {f.name for f in files.figures}
    assert len(checks) == len(files.figures) >= 5
    assert {"fig1_heatmap_j_per_token", "fig2_components_per_token", "fig5_efficiency_throughput"} <= names
    assert {"fig6_throughput", "fig7_latency", "fig8_setup_time"} <= names
    assert (files.html.stat().st_mode & 0o077) == 0  # a report quotes the runs' settings: owner-only
    svg = (tmp_path / "report" / "fig2_components_per_token.svg").read_text()
    assert "cpu (estimated)" in svg and "dram (estimated)" in svg
