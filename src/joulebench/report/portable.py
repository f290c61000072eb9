"""A report to publish: the measuring machine's paths left out (``joulebench report --portable``).

A run records its model folder, its logs and the engine's settings as the machine saw them
(``/home/ana/models/llama-3.2-1b``); a published report keeps every number and names such a path by its
last part (``llama-3.2-1b``), so two machines' runs of one model still fall in one column.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from joulebench.store.frames import Frames

#: an absolute path (two or more parts), up to a quote, a comma, a space or the end
_PATH = re.compile(r"(?<![\w.:/])/(?:[^\s/\"',;:]+/)+([^\s/\"',;:]+)")
_TEXT = {
    "runs": ("model", "model_label", "config_json", "environment_json"),
    "trials": ("details_json", "error"),
}


def strip_paths(text: str) -> str:
    """Every absolute path in ``text`` as its last part."""
    return _PATH.sub(r"\1", text)


def portable(frames: Frames) -> Frames:
    """The same frames with every machine path in their text columns reduced to its last part."""
    tables = {}
    for name, columns in _TEXT.items():
        df = getattr(frames, name).copy()
        for column in columns:
            if column in df.columns:
                df[column] = df[column].map(lambda v: strip_paths(v) if isinstance(v, str) else v)
        tables[name] = df
    return replace(frames, **tables)
