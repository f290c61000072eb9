"""The results layer: every figure a user sees (energies by component and their totals, per-trial
metrics, statistics over repeats), computed in one place from what the store holds, for the runner's
summary, the report, the advisor and the sweep alike. It sits above ``store`` and below ``runner``,
``report``, ``sweep`` and ``cli``."""
