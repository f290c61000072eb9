"""IPMI DCMI: real output formats of several BMCs, through executable ipmitool stand-ins, and the
integral of its readings against power of exactly known energy."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.measurement.truth import PowerTrace

from joulebench.measurement.accounting import compute_window
from joulebench.measurement.ipmi import IpmiError, IpmiSource, parse_dcmi
from joulebench.measurement.ipmi_fake import VENDORS, set_watts, write_ipmitool
from joulebench.measurement.records import Component, Reading
from joulebench.measurement.series import ReadingLog


@pytest.mark.parametrize("vendor", VENDORS)
def test_every_vendor_format_parses_through_the_real_subprocess_path(tmp_path: Path, vendor: str) -> None:
    tool = write_ipmitool(tmp_path, vendor, watts=347)
    src = IpmiSource(str(tool))
    status = src.probe()
    assert status.available, status.reason
    assert status.components == (Component.NODE,)
    (reading,) = src.read()
    assert reading.power_w == 347.0 and reading.component is Component.NODE
    set_watts(tool, 512)
    assert src.read()[0].power_w == 512.0


def test_fields_units_and_state_are_kept() -> None:
    dell = parse_dcmi(
        "    Instantaneous power reading:                   215 Watts\n"
        "    Minimum during sampling period:                 68 Watts\n"
        "    Maximum during sampling period:                447 Watts\n"
        "    Average power reading over sample period:      213 Watts\n"
        "    IPMI timestamp:                           Thu Feb 15 08:36:01 2024\n"
        "    Sampling period:                          00000005 Seconds.\n"
        "    Power reading state is:                   activated\n"
    )
    assert (dell.instant_w, dell.minimum_w, dell.maximum_w, dell.average_w) == (215, 68, 447, 213)
    assert dell.sampling_period_s == 5.0 and dell.activated
    lenovo = parse_dcmi(
        "    Instantaneous power reading              : 214      Watts\n"
        "    Sampling period                          : 1000 Milliseconds\n"
        "    Power reading state is                   : deactivated\n"
    )
    assert lenovo.instant_w == 214 and lenovo.sampling_period_s == 1.0
    assert lenovo.state == "deactivated" and not lenovo.activated
    with pytest.raises(IpmiError, match="Invalid command"):
        parse_dcmi("Error: DCMI request failed because: Invalid command (c1)\n")


def test_deactivated_statistics_still_give_a_reading(tmp_path: Path) -> None:
    src = IpmiSource(str(write_ipmitool(tmp_path, "openbmc", watts=235)))
    status = src.probe()
    assert status.available and "deactivated" in status.reason
    assert src.device_info()[0].attributes["state"] == "deactivated"


def test_deactivated_zero_reading_is_unavailable(tmp_path: Path) -> None:
    status = IpmiSource(str(write_ipmitool(tmp_path, "openbmc", watts=0))).probe()
    assert not status.available and "deactivated" in status.reason


def test_bmc_error_is_unavailable_with_its_message(tmp_path: Path) -> None:
    status = IpmiSource(str(write_ipmitool(tmp_path, "error"))).probe()
    assert not status.available
    assert "Invalid command (c1)" in status.reason


def test_missing_device_says_how_to_fix(tmp_path: Path) -> None:
    status = IpmiSource(str(write_ipmitool(tmp_path, "nodevice"))).probe()
    assert not status.available and "/dev/ipmi0" in status.reason
    assert status.fix is not None and "modprobe ipmi_devintf ipmi_si" in status.fix.commands
    assert any(c.startswith("chmod g+rw /dev/ipmi0") for c in status.fix.commands)


def test_binary_from_environment_or_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOULEBENCH_IPMITOOL", str(write_ipmitool(tmp_path, "hpe", watts=300)))
    assert IpmiSource().probe().available
    monkeypatch.delenv("JOULEBENCH_IPMITOOL")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    status = IpmiSource().probe()
    assert not status.available and "not found" in status.reason
    assert status.fix is not None and "install -y ipmitool" in status.fix.line()


def test_stand_in_rejects_other_commands(tmp_path: Path) -> None:
    import subprocess

    tool = write_ipmitool(tmp_path, "dell")
    proc = subprocess.run([str(tool), "sdr", "list"], capture_output=True, text=True, check=False)
    assert proc.returncode == 1 and "Invalid command" in proc.stderr


@st.composite
def _bmc_cases(draw: st.DrawFn) -> dict:
    """A BMC that samples the node's power once a second (the reading it gives is that sample, up to
    1 s old), polled about once a second with jitter, so a reading repeats or a sample is skipped; some
    polls fail (a missing reading). Power changes at most once between two readings, the bound's
    stated assumption: its steps are at least 5 s apart."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    update_s = 1.0
    phase = draw(st.floats(0.0, 0.999))
    n_steps = draw(st.integers(1, 5))
    steps = [(0.0, float(draw(st.integers(80, 900))))]
    for _ in range(n_steps - 1):
        steps.append((steps[-1][0] + draw(st.floats(5.0, 12.0)), float(draw(st.integers(80, 900)))))
    trace = PowerTrace(tuple(steps))
    polls, t = [], draw(st.floats(1.0, 3.0))
    end = steps[-1][0] + 6.0
    while t < end:
        if rng.random() > 0.1:  # one poll in ten fails: no reading
            sample = phase + math.floor((t - phase) / update_s) * update_s
            polls.append((t, round(trace.power_at(sample))))  # DCMI prints whole watts
        t += update_s * (1 + draw(st.sampled_from([0.0, 0.2])) * (rng.random() - 0.5))
    windows = []
    for _ in range(5):
        a = draw(st.floats(polls[0][0], polls[-1][0]))
        windows.append((a, min(a + draw(st.floats(0.2, 20.0)), polls[-1][0])))
    return {"trace": trace, "polls": polls, "windows": windows}


@settings(max_examples=300, deadline=None)
@given(_bmc_cases())
def test_integrated_node_power_is_within_its_uncertainty(case: dict) -> None:
    log = ReadingLog()
    src = IpmiSource("unused")
    log.add_source(src.source_metas()[0])
    log.add([Reading(t, "ipmi", Component.NODE, "node", power_w=float(w)) for t, w in case["polls"]])
    for a, b in case["windows"]:
        if b <= a:
            continue
        row = next(c for c in compute_window(log, "w", a, b).components if c.device == "all")
        true_j = case["trace"].energy(a, b)
        assert row.uncertainty_j is not None
        assert abs(row.energy_j - true_j) <= row.uncertainty_j + 1e-6 * true_j, (a, b, row, true_j)
