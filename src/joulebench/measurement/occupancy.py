"""Other work on a measured device: its utilisation and the memory in use, read through the power sources.

A benchmark owns its GPUs only by convention. Another process's kernels during the idle baseline raise the
baseline (and lower every above-idle energy of the run); another process's memory keeps an engine from
starting, with an error that seldom says why. These thresholds decide when joulebench says so.
"""

from __future__ import annotations

# A device this busy runs someone's work (a desktop's compositor stays below); the runner's own warm
# engine, kept between a sweep's runs, runs no kernels while it waits.
BUSY_PCT = 5.0
# Memory in use on a device with no engine of ours on it: the driver's own share is a few hundred MiB; a
# tenth of the card is some other process's.
HELD_MEMORY_SHARE = 0.1


def busy(utilization_pct: dict[str, float]) -> dict[str, float]:
    """The devices at or above :data:`BUSY_PCT`, in device order."""
    return {d: pct for d, pct in sorted(utilization_pct.items()) if pct >= BUSY_PCT}


def held(memory_mib: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    """The devices whose ``(used, total)`` MiB reach :data:`HELD_MEMORY_SHARE`, in device order."""
    return {d: (u, t) for d, (u, t) in sorted(memory_mib.items()) if u >= HELD_MEMORY_SHARE * t}


def idle_busy_message(utilization_pct: dict[str, float]) -> str | None:
    """What to say of an idle baseline during which a device ran work (``None``: it was idle)."""
    found = busy(utilization_pct)
    if not found:
        return None
    which = ", ".join(f"{d} up to {pct:.0f} %" for d, pct in found.items())
    return (
        f"the idle baseline ran while another process kept the device busy ({which} utilisation): "
        "the baseline is too high and this run's above-idle energies too low"
    )


def held_memory_note(memory_mib: dict[str, tuple[int, int]]) -> str | None:
    """Device memory in use when an engine failed to start, once its worker had exited (``None`` when no
    device was :data:`HELD_MEMORY_SHARE` full): another process holding it is a common reason for the
    failure."""
    found = held(memory_mib)
    if not found:
        return None
    which = ", ".join(f"{d} {used:,} of {total:,} MiB" for d, (used, total) in found.items())
    return f"device memory in use when it failed: {which}; memory another process holds keeps an engine out"


def with_held_memory(error: str, memory_mib: dict[str, tuple[int, int]]) -> str:
    """An engine start's error, with :func:`held_memory_note` where a device was that full."""
    note = held_memory_note(memory_mib)
    return f"{error} ({note})" if note else error
