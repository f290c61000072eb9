"""The layers of docs/architecture.md, checked on the source: every import (at module level or inside a
function) goes down the layers or stays in its own package, so no two packages import each other."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "joulebench"

#: lower number, lower layer; a package may import its own layer's package only if it is itself
LAYERS: dict[str, int] = {
    "errors": 0,
    "yamlfile": 0,
    "measurement": 1,
    "models": 1,
    "workloads": 1,
    "engines": 2,
    "roofline": 2,
    "store": 3,
    "results": 4,
    "runner": 5,
    "report": 5,
    "sweep": 6,
    "cli": 7,
    "__main__": 8,
    "__init__": 8,  # the package's own API re-exports from below
}


def _package(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imports(path: Path) -> list[tuple[str, int]]:
    """(imported joulebench package, line) for every import in the file, however deep."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "joulebench":  # from joulebench import yamlfile; not __version__, an attribute
                # of the root package, which importing any of its modules imports anyway
                names = [f"joulebench.{a.name}" for a in node.names if a.name in LAYERS]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        out += [(n.split(".")[1], node.lineno) for n in names if n.startswith("joulebench.")]
    return out


def test_every_package_has_a_layer() -> None:
    packages = {_package(p) for p in SRC.rglob("*.py")}
    assert packages <= set(LAYERS), packages - set(LAYERS)


def test_imports_only_go_down() -> None:
    wrong = []
    for path in sorted(SRC.rglob("*.py")):
        here = _package(path)
        for there, line in _imports(path):
            if there != here and LAYERS[there] >= LAYERS[here]:
                wrong.append(f"{path.relative_to(SRC)}:{line} ({here}, layer {LAYERS[here]}) imports {there} "
                             f"(layer {LAYERS[there]})")  # fmt: skip
    assert wrong == [], "\n".join(wrong)


def test_report_and_runner_share_only_the_results_layer() -> None:
    """The report reads what the store holds through results/, never the runner's code."""
    for path in sorted((SRC / "report").rglob("*.py")):
        assert all(there != "runner" for there, _ in _imports(path)), path


def test_the_runner_and_the_sweep_hold_no_engine_names() -> None:
    """What differs between engines (package, devices, caches, servers, typical speeds) is asked of the
    engine class; the runner and the sweep name no engine (but the default one)."""
    from joulebench.engines.registry import engine_names

    names = set(engine_names())
    found = []
    for package in ("runner", "sweep", "results", "report"):
        for path in sorted((SRC / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and node.value in names:
                    found.append(f"{path.relative_to(SRC)}:{node.lineno} {node.value!r}")
    assert found == ["runner/config.py:13 'transformers'"], found
