"""IPMI DCMI: real output formats of several BMCs, through executable ipmitool stand-ins."""

from __future__ import annotations

from pathlib import Path

import pytest

from joulebench.measurement.ipmi import IpmiError, IpmiSource, parse_dcmi
from joulebench.measurement.ipmi_fake import VENDORS, set_watts, write_ipmitool
from joulebench.measurement.records import Component


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
    assert not status.available and "/dev/ipmi0" in status.reason and "ipmi_devintf" in status.reason


def test_binary_from_environment_or_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOULEBENCH_IPMITOOL", str(write_ipmitool(tmp_path, "hpe", watts=300)))
    assert IpmiSource().probe().available
    monkeypatch.delenv("JOULEBENCH_IPMITOOL")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    status = IpmiSource().probe()
    assert not status.available and "not found" in status.reason


def test_stand_in_rejects_other_commands(tmp_path: Path) -> None:
    import subprocess

    tool = write_ipmitool(tmp_path, "dell")
    proc = subprocess.run([str(tool), "sdr", "list"], capture_output=True, text=True, check=False)
    assert proc.returncode == 1 and "Invalid command" in proc.stderr
