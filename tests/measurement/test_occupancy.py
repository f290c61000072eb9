"""When joulebench calls a device busy or its memory held by another process, and what it says."""

from __future__ import annotations

from joulebench.measurement.occupancy import busy, held, held_memory_note, idle_busy_message


def test_only_a_device_at_or_above_the_threshold_is_named() -> None:
    assert idle_busy_message({}) is None
    assert idle_busy_message({"gpu0": 0.0, "gpu1": 4.0}) is None
    message = idle_busy_message({"gpu1": 89.0, "gpu0": 5.0, "gpu2": 0.0})
    assert message is not None
    assert "(gpu0 up to 5 %, gpu1 up to 89 % utilisation)" in message


def test_only_a_device_a_tenth_full_or_more_is_named() -> None:
    assert held_memory_note({}) is None
    assert held_memory_note({"gpu0": (512, 81_559)}) is None  # the driver's own share
    note = held_memory_note({"gpu1": (57_673, 143_771), "gpu0": (8_156, 81_559)})
    assert note is not None and "gpu0 8,156 of 81,559 MiB, gpu1 57,673 of 143,771 MiB" in note


def test_the_thresholds_sit_at_a_twentieth_busy_and_a_tenth_full() -> None:
    assert busy({"gpu0": 4.9, "gpu1": 5.0}) == {"gpu1": 5.0}
    assert held({"gpu0": (8_155, 81_559), "gpu1": (8_156, 81_559)}) == {"gpu1": (8_156, 81_559)}
