"""joulebench: power and energy of LLM inference engines over their whole lifecycle.

Importing this package is cheap on purpose: it runs inside the setup stage it measures, so heavy
modules load only when an attribute that needs them is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Monitor", "__version__", "stage"]

if TYPE_CHECKING:
    from joulebench.measurement.markers import stage
    from joulebench.measurement.monitor import Monitor


def __getattr__(name: str) -> Any:
    if name == "Monitor":
        from joulebench.measurement.monitor import Monitor

        return Monitor
    if name == "stage":
        from joulebench.measurement.markers import stage

        return stage
    raise AttributeError(f"module 'joulebench' has no attribute {name!r}")
