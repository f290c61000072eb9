"""Stand-ins for ``ipmitool``: executables that print real ``dcmi power reading`` output.

Formats, as BMCs and ipmitool versions print them:

* ``dell`` - ipmitool 1.8.18 on an iDRAC: four-space indent, ``Sampling period: 00000001 Seconds.``
* ``hpe`` - iLO: tab indent, a 5 s sampling period
* ``supermicro`` - ipmitool 1.8.18 on a Supermicro BMC: narrower padding, statistics over 1 s
* ``openbmc`` - DCMI statistics off: ``deactivated``, a 1970 timestamp, still a valid instantaneous reading
* ``lenovo`` - XCC through a newer ipmitool: ``key : value`` alignment and ``Milliseconds``
* ``error`` - a BMC that refuses DCMI: ``Error: ...`` on stderr, exit code 1
* ``nodevice`` - no IPMI driver loaded: the ``Could not open device`` message, exit code 1

Each stand-in is a Python script (run with the current interpreter) that rejects any other arguments
than ``dcmi power reading`` like the real tool, and reads the watts to print from a file beside it, so a
test can change the power while a measurement runs.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

VENDORS = ("dell", "hpe", "supermicro", "lenovo", "openbmc")
ERRORS = ("error", "nodevice")

TEMPLATES = {
    "dell": (
        "\n"
        "    Instantaneous power reading:                   {w} Watts\n"
        "    Minimum during sampling period:                {lo} Watts\n"
        "    Maximum during sampling period:                {hi} Watts\n"
        "    Average power reading over sample period:      {avg} Watts\n"
        "    IPMI timestamp:                           Thu Feb 15 08:36:01 2024\n"
        "    Sampling period:                          00000001 Seconds.\n"
        "    Power reading state is:                   activated\n"
        "\n"
    ),
    "hpe": (
        "\n"
        "\tInstantaneous power reading:                    {w} Watts\n"
        "\tMinimum during sampling period:                 {lo} Watts\n"
        "\tMaximum during sampling period:                 {hi} Watts\n"
        "\tAverage power reading over sample period:       {avg} Watts\n"
        "\tIPMI timestamp:                           Mon Mar  4 17:02:11 2024\n"
        "\tSampling period:                          00000005 Seconds.\n"
        "\tPower reading state is:                   activated\n"
        "\n"
    ),
    "supermicro": (
        "\n"
        "  Instantaneous power reading:              {w} Watts\n"
        "  Minimum during sampling period:           {lo} Watts\n"
        "  Maximum during sampling period:           {hi} Watts\n"
        "  Average power reading over sample period: {avg} Watts\n"
        "  IPMI timestamp:                           Tue Oct 10 11:22:33 2023\n"
        "  Sampling period:                          00000001 Seconds.\n"
        "  Power reading state is:                   activated\n"
        "\n"
    ),
    "openbmc": (
        "\n"
        "    Instantaneous power reading:                   {w} Watts\n"
        "    Minimum during sampling period:                {w} Watts\n"
        "    Maximum during sampling period:                {w} Watts\n"
        "    Average power reading over sample period:      {w} Watts\n"
        "    IPMI timestamp:                           Thu Jan  1 00:00:00 1970\n"
        "    Sampling period:                          00000000 Seconds.\n"
        "    Power reading state is:                   deactivated\n"
        "\n"
    ),
    "lenovo": (
        "\n"
        "    Instantaneous power reading              : {w}      Watts\n"
        "    Minimum during sampling period           : {lo}      Watts\n"
        "    Maximum during sampling period           : {hi}      Watts\n"
        "    Average power reading over sample period : {avg}      Watts\n"
        "    IPMI timestamp                           : 2024-05-05 13:06:44 UTC\n"
        "    Sampling period                          : 1000 Milliseconds\n"
        "    Power reading state is                   : activated\n"
        "\n"
    ),
}

ERROR_TEXT = {
    "error": "Error: DCMI request failed because: Invalid command (c1)\n",
    "nodevice": (
        "Could not open device at /dev/ipmi0 or /dev/ipmi/0 or /dev/ipmidev/0: No such file or directory\n"
    ),
}

_SCRIPT = """#!{python}
import sys
from pathlib import Path

if sys.argv[1:] != ["dcmi", "power", "reading"]:
    sys.stderr.write("Invalid command: " + " ".join(sys.argv[1:]) + "\\n")
    sys.exit(1)
here = Path(__file__).resolve().parent
mode = {mode!r}
if mode in {errors!r}:
    sys.stderr.write({error_text!r}.get(mode, "Error\\n"))
    sys.exit(1)
w = int(round(float((here / {watts_file!r}).read_text())))
sys.stdout.write({template!r}.format(w=w, lo=max(w - 40, 0), hi=w + 60, avg=max(w - 3, 0)))
"""


def write_ipmitool(folder: str | os.PathLike[str], vendor: str = "dell", watts: float = 215.0) -> Path:
    """Write an executable ipmitool stand-in for ``vendor`` (or an error mode) into ``folder``.

    Its power comes from ``<folder>/ipmitool-<vendor>.watts``; change it with :func:`set_watts`.
    """
    if vendor not in TEMPLATES and vendor not in ERROR_TEXT:
        raise ValueError(f"unknown vendor {vendor!r}: one of {', '.join((*VENDORS, *ERRORS))}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"ipmitool-{vendor}"
    watts_file = f"{path.name}.watts"
    (folder / watts_file).write_text(f"{watts}\n")
    path.write_text(
        _SCRIPT.format(
            python=sys.executable,
            mode=vendor,
            errors=ERRORS,
            error_text=ERROR_TEXT,
            watts_file=watts_file,
            template=TEMPLATES.get(vendor, ""),
        )
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def set_watts(ipmitool: str | os.PathLike[str], watts: float) -> None:
    """Change what a stand-in written by :func:`write_ipmitool` reports from its next call."""
    path = Path(ipmitool)
    target = path.with_name(f"{path.name}.watts")
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(f"{watts}\n")
    os.replace(tmp, target)
