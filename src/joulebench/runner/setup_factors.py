"""Setup as an experiment: named factors whose levels a run's setup trials cross (`run --setup-factors`).

Every engine has two: ``page_cache`` (``cold``: the weight files' pages evicted with
``posix_fadvise(DONTNEED)``, no root needed; ``warm``: the files read once) and ``compile_cache`` (``cold``:
a fresh empty folder for each of the engine's compile-cache variables, given to that trial alone;
``warm``: a folder a cold trial of this run filled). The user's own caches are never touched. An engine
adds its own (``Engine.setup_factor_options``): vLLM's weight ``loader`` (``load_format``) and
``cuda_graphs``, Transformers' ``loader``. Each trial records the levels it was given
(``details.factors``) beside what the probes found (``cache_state``, ``compile_cache``).
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joulebench.engines.registry import get_engine_class
from joulebench.errors import UsageError

PAGE_CACHE, COMPILE_CACHE = "page_cache", "compile_cache"
CACHE_LEVELS = ("cold", "warm")
ALIASES = {"cache": PAGE_CACHE, "page-cache": PAGE_CACHE, "compile": COMPILE_CACHE,
           "compile-cache": COMPILE_CACHE, "cuda-graphs": "cuda_graphs"}  # fmt: skip


def parse_factors(texts: Sequence[str]) -> dict[str, list[str]]:
    """``["cache=cold,warm loader=safetensors,fastsafetensors"]`` (one or several words per text) ->
    ``{"page_cache": ["cold", "warm"], "loader": [...]}``, in the order given."""
    out: dict[str, list[str]] = {}
    for word in (w for text in texts for w in text.split()):
        name, sep, levels = word.partition("=")
        name = ALIASES.get(name.strip(), name.strip())
        values = [v.strip() for v in levels.split(",") if v.strip()]
        if not sep or not name or not values:
            raise UsageError(f"--setup-factors {word!r}: write NAME=LEVEL,LEVEL (e.g. cache=cold,warm)")
        if name in out:
            raise UsageError(f"--setup-factors names {name} twice")
        if len(set(values)) != len(values):
            raise UsageError(f"--setup-factors {name}: a level is named twice")
        out[name] = values
    return out


def factor_problems(engine: str, factors: Mapping[str, Sequence[str]]) -> list[str]:
    """Every factor or level this engine does not have, one line each, with the ones it has."""
    own = get_engine_class(engine).setup_factor_options
    known = {PAGE_CACHE: CACHE_LEVELS, COMPILE_CACHE: CACHE_LEVELS, **{k: tuple(v) for k, v in own.items()}}
    problems = []
    for name, levels in factors.items():
        if not isinstance(levels, list) or not levels or not all(isinstance(v, str) for v in levels):
            problems.append(f"--setup-factors {name}: its levels are a list of names, e.g. [cold, warm]")
            continue
        if name not in known:
            problems.append(f"--setup-factors: {engine} has no factor {name!r}; it has {', '.join(known)}")
            continue
        wrong = [v for v in levels if v not in known[name]]
        if wrong:
            problems.append(
                f"--setup-factors {name}: {engine} has no level {', '.join(wrong)}; "
                f"its levels are {', '.join(known[name])}"
            )
    return problems


def grid(factors: Mapping[str, Sequence[str]]) -> list[dict[str, str]]:
    """Every combination of levels; a cold compile cache before a warm one, so that the cold trials fill
    the folder the warm ones find (an empty grid: one combination of no factor)."""
    names = list(factors)
    combos = [dict(zip(names, values, strict=True)) for values in itertools.product(*factors.values())]
    return sorted(combos, key=lambda c: c.get(COMPILE_CACHE) == "warm")


def engine_options(engine: str, combo: Mapping[str, str]) -> dict[str, Any]:
    """The engine options a combination sets (its engine's own factors)."""
    own = get_engine_class(engine).setup_factor_options
    out: dict[str, Any] = {}
    for name, level in combo.items():
        if name in own:
            out.update(own[name][level])
    return out


@dataclass
class CompileCaches:
    """The run's compile-cache folders: a fresh one per cold trial, the last filled one for warm trials.
    All are the run's own, under ``root``, and removed with it."""

    root: Path
    variables: tuple[str, ...]
    _filled: Path | None = None
    _made: int = 0

    def env(self, level: str) -> tuple[dict[str, str], bool]:
        """The variables for a trial of this level, and whether a warm trial had to start from an empty
        folder (no cold trial had filled one yet: that trial records itself as cold)."""
        if level == "cold" or self._filled is None:
            self._made += 1
            folder = self.root / f"trial-{self._made}"
            folder.mkdir(parents=True)
            self._filled = folder  # what the next warm trial finds
            return self._variables(folder), level == "warm"
        return self._variables(self._filled), False

    def _variables(self, folder: Path) -> dict[str, str]:
        return {var: str(folder / var.lower()) for var in self.variables}


@contextmanager
def compile_caches(engine: str, root: Path) -> Iterator[CompileCaches]:
    caches = CompileCaches(root, tuple(get_engine_class(engine).compile_cache_vars))
    try:
        yield caches
    finally:
        shutil.rmtree(root, ignore_errors=True)
