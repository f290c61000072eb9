"""Running the real `joulebench` command in a subprocess, as a user would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def joulebench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "joulebench", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=300, check=False)
