"""What would let joulebench measure a source it cannot read: why, and the commands an administrator runs.

Each unreadable source's :class:`~joulebench.measurement.records.SourceStatus` carries one of these.
``joulebench sources`` prints the reason with the fix; ``joulebench sources --fix`` turns the commands of
every unreadable source into one script to run as root; ``joulebench run`` names the fix of each
component it had to estimate.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterable
from dataclasses import dataclass

#: A group that may read the power counters, made by the fix scripts: reading is granted to it, not to
#: every local user, since RAPL was made root-only to close a side channel.
POWER_GROUP = "joulebench-power"


@dataclass(frozen=True)
class Fix:
    """``why`` the source cannot be read, in one line; ``commands``, run as root, that make it readable
    (empty where no command can: a virtual machine without the counter, a BMC that reports no power)."""

    why: str
    commands: tuple[str, ...] = ()

    def line(self) -> str:
        """The fix in one line, for a terminal."""
        if not self.commands:
            return self.why
        return f"{self.why}; as root: {' && '.join(self.commands)}"


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return "$SUDO_USER"


def _group_access(paths: str, mode: str) -> tuple[str, ...]:
    user = _user()
    return (
        f"groupadd -f {POWER_GROUP}",
        f"usermod -aG {POWER_GROUP} {user}",
        f"chgrp {POWER_GROUP} {paths}",
        f"chmod {mode} {paths}",
    )


def rapl_permission(root: str = "/sys/class/powercap") -> Fix:
    files = f"{root}/intel-rapl:*/energy_uj {root}/intel-rapl:*:*/energy_uj"
    rule = (
        f'SUBSYSTEM=="powercap", KERNEL=="intel-rapl:*", RUN+="/bin/chgrp {POWER_GROUP} /sys%p/energy_uj", '
        'RUN+="/bin/chmod g+r /sys%p/energy_uj"'
    )
    return Fix(
        "RAPL's energy_uj is readable by root only since Linux 5.10 (CVE-2020-8694, a power side channel); "
        f"let the group {POWER_GROUP} read it (yours from your next login) and keep that across reboots with "
        "a udev rule",
        (
            *_group_access(files, "g+r"),
            f"echo '{rule}' > /etc/udev/rules.d/99-joulebench-rapl.rules",
        ),
    )


def rapl_no_driver() -> Fix:
    return Fix(
        "no powercap RAPL tree: load the driver (Intel, and AMD Zen on Linux 5.11 or newer); a virtual "
        "machine or a container usually has no RAPL at all, and CPU energy is then measured on the host",
        (
            "modprobe intel_rapl_msr",
            "echo intel_rapl_msr > /etc/modules-load.d/joulebench-rapl.conf",
        ),
    )


def ipmi_no_tool() -> Fix:
    return Fix(
        "ipmitool is not installed",
        (
            "if command -v apt-get >/dev/null; then apt-get install -y ipmitool; "
            "else dnf install -y ipmitool; fi",
        ),
    )


def ipmi_device() -> Fix:
    rule = f'KERNEL=="ipmi*", GROUP="{POWER_GROUP}", MODE="0660"'
    return Fix(
        "ipmitool needs /dev/ipmi0 (the ipmi_devintf and ipmi_si drivers) and read-write access to it; "
        "a virtual machine has no BMC",
        (
            "modprobe ipmi_devintf ipmi_si",
            *_group_access("/dev/ipmi0", "g+rw"),
            f"echo '{rule}' > /etc/udev/rules.d/99-joulebench-ipmi.rules",
        ),
    )


def ipmi_no_power() -> Fix:
    return Fix("this BMC reports no power reading through DCMI: the node cannot be measured on this machine")


def nvml_no_library() -> Fix:
    return Fix("the NVML bindings are missing: as your user, pip install nvidia-ml-py")


def nvml_no_driver() -> Fix:
    return Fix(
        "only where this machine has an NVIDIA GPU: install its driver (nvidia-smi must list the GPU); "
        "inside a container, start it with the GPUs (docker run --gpus all)"
    )


def amdsmi_no_library() -> Fix:
    return Fix(
        "only where this machine has an AMD GPU: the amdsmi bindings are missing; as your user, pip install "
        "'joulebench[amd]' (or ROCm's own copy: pip install /opt/rocm/share/amd_smi)"
    )


def amd_no_driver() -> Fix:
    return Fix(
        "only where this machine has an AMD GPU: install ROCm and load the amdgpu driver (amd-smi must list "
        "the GPU); inside a container, start it with /dev/kfd and /dev/dri"
    )


#: the components each source measures: its fix is what would measure them where they were estimated
MEASURES = {
    "rapl": frozenset({"cpu", "dram"}),
    "nvml": frozenset({"gpu"}),
    "amdsmi": frozenset({"gpu"}),
    "ipmi": frozenset({"node"}),
}


def for_estimates(fixes: Iterable[tuple[str, Fix]], estimated: Iterable[str]) -> list[tuple[str, Fix]]:
    """Of the unreadable sources' fixes, those that would measure an estimated component."""
    wanted = set(estimated)
    return [(name, fix) for name, fix in fixes if MEASURES.get(name, frozenset()) & wanted]


def script(fixes: Iterable[tuple[str, Fix]]) -> str:
    """One shell script, to run as root, with every fix that has commands; the others as comments. Each
    source's commands stop at the first that fails, and a failed one does not keep the next source's."""
    lines = ["#!/bin/sh", "# Made by `joulebench sources --fix`: read it, then run it as root (sudo sh FILE)"]
    runnable = 0
    for name, fix in fixes:
        lines += ["", f"# {name}: {fix.why}"]
        if not fix.commands:
            lines.append("#   (no command can fix this here)")
            continue
        runnable += 1
        body = " &&\n  ".join(fix.commands)
        lines.append(f"{{ {body}; }} || echo 'joulebench: the {name} fix failed' >&2")
    if runnable == 0:
        lines += ["", "# nothing to run: no unreadable source here has a fix that a command can make"]
    return "\n".join(lines) + "\n"
