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


def test_report_renders_every_figure_in_chromium(sample_db: Path, tmp_path: Path) -> None:
    browser = _browser()
    files = build_report(sample_db, tmp_path / "report")
    page = files.html.read_text()
    checked = tmp_path / "checked.html"
    checked.write_text(page.replace("</body>", CHECK_SCRIPT + "</body>"))

    dom = _chromium(
        browser, tmp_path / "profile1", "--virtual-time-budget=5000", "--dump-dom", checked.as_uri()
    )
    found = re.search(r'<pre id="figure-checks">(.*?)</pre>', dom.stdout, re.S)
    assert found, f"the check script did not run (rc {dom.returncode}): {dom.stderr[-500:]}"
    checks = json.loads(found.group(1))
    assert len(checks) == len(files.figures) == 6
    for c in checks:
        assert c["complete"] and c["naturalWidth"] > 0, c
        assert c["width"] > 0 and c["height"] > 0, c
        assert c["display"] != "none" and c["visibility"] == "visible", c

    shot = tmp_path / "report-screenshot.png"  # kept with the test's tmp folder, for a look by eye
    _chromium(
        browser, tmp_path / "profile2", "--window-size=1280,2400", f"--screenshot={shot}", files.html.as_uri()
    )
    header = shot.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", header[16:24]) == (1280, 2400)
