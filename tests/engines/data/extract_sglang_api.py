"""Write the names of SGLang's Python API that joulebench's sglang adapters use, read from an unpacked
SGLang wheel's sources (no import: SGLang needs a GPU stack to import), as the data of the contract test.

    pip download --no-deps sglang==0.5.14 -d WHEELS && unzip -q WHEELS/sglang-0.5.14-*.whl -d SRC
    python tests/engines/data/extract_sglang_api.py SRC > tests/engines/data/sglang-0.5.14.json
"""

from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

STORE_TRUE = {"store_true", "DeprecatedStoreTrueAction"}


def _class(tree: ast.Module, name: str) -> ast.ClassDef:
    return next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == name)


def _method(cls: ast.ClassDef, name: str) -> ast.FunctionDef | ast.AsyncFunctionDef:
    return next(
        n for n in cls.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name
    )


def _params(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    return [a.arg for a in fn.args.args + fn.args.kwonlyargs if a.arg != "self"]


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def server_args(src: Path) -> tuple[list[str], dict[str, dict[str, object]]]:
    """ServerArgs' fields, and its command-line flags: each flag's field and whether it takes no value."""
    tree = ast.parse((src / "sglang/srt/server_args.py").read_text())
    cls = _class(tree, "ServerArgs")
    fields, flags = [], {}
    for node in cls.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        name = node.target.id
        fields.append(name)
        ann = node.annotation
        if not (isinstance(ann, ast.Subscript) and isinstance(ann.value, ast.Name) and ann.value.id == "A"):
            continue
        kind, meta = ann.slice.elts[0], ann.slice.elts[1]  # type: ignore[attr-defined]
        names, is_bool = ["--" + name.replace("_", "-")], ast.unparse(kind) in ("bool", "Optional[bool]")
        if isinstance(meta, ast.Call):  # Arg(...)
            if isinstance(_keyword(meta, "no_cli"), ast.Constant) and _keyword(meta, "no_cli").value:  # type: ignore[union-attr]
                continue
            cli = _keyword(meta, "cli_name")
            if isinstance(cli, ast.Constant):
                names = [cli.value]
            aliases = _keyword(meta, "aliases")
            if isinstance(aliases, ast.List):
                names += [e.value for e in aliases.elts if isinstance(e, ast.Constant)]
            action = _keyword(meta, "action")
            if action is not None:
                is_bool = ast.unparse(action).strip("'\"") in STORE_TRUE
        for flag in names:
            flags[flag] = {"field": name, "bool": is_bool}
    add = _method(cls, "add_cli_args")
    for call in ast.walk(add):
        if isinstance(call, ast.Call) and getattr(call.func, "attr", "") == "add_argument":
            names = [
                a.value for a in call.args if isinstance(a, ast.Constant) and str(a.value).startswith("--")
            ]
            action = _keyword(call, "action")
            dest = _keyword(call, "dest")
            field = dest.value if isinstance(dest, ast.Constant) else names[0][2:].replace("-", "_")
            is_bool = action is not None and ast.unparse(action).strip("'\"") in STORE_TRUE
            for flag in names:
                flags[flag] = {"field": field, "bool": is_bool}
    return fields, dict(sorted(flags.items()))


def load_formats(src: Path) -> list[str]:
    """``LOAD_FORMAT_CHOICES``: the weight loaders ``load_format`` takes."""
    tree = ast.parse((src / "sglang/srt/server_args.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "LOAD_FORMAT_CHOICES":
            return [e.value for e in node.value.elts]  # type: ignore[attr-defined]
    raise LookupError("LOAD_FORMAT_CHOICES")


def meta_info_keys(src: Path) -> list[str]:
    """The keys the tokenizer manager puts in a result's ``meta_info``."""
    tree = ast.parse((src / "sglang/srt/managers/tokenizer_manager.py").read_text())
    keys = set()
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else []
        if any(getattr(t, "id", "") == "meta_info" for t in targets) and isinstance(node.value, ast.Dict):
            keys |= {k.value for k in node.value.keys if isinstance(k, ast.Constant)}
        stored = isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store)
        if stored and getattr(node.value, "id", "") == "meta_info" and isinstance(node.slice, ast.Constant):
            keys.add(node.slice.value)
    return sorted(keys)


SETUP_WORDS = ("Load weight ", "Init torch distributed ", "ready to roll", "Capture ")


def _text(node: ast.expr) -> str:
    """A message's text, each f-string placeholder written as X."""
    parts = node.values if isinstance(node, ast.JoinedStr) else [node]
    return "".join(p.value if isinstance(p, ast.Constant) else "X" for p in parts)


def log_messages(src: Path) -> list[str]:
    """The setup records' messages, from the files engines/sglang_events.py reads."""
    out = []
    for rel in ("sglang/srt/model_executor/model_runner.py", "sglang/srt/entrypoints/http_server.py"):
        for node in ast.walk(ast.parse((src / rel).read_text())):
            if not (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "info" and node.args):
                continue
            if isinstance(node.args[0], (ast.JoinedStr, ast.Constant)):
                text = _text(node.args[0])
                if any(w in text for w in SETUP_WORDS) and (
                    "Capture" not in text or " graph" in text or "X X" in text
                ):
                    out.append(text)
    return out


def memory_tags(src: Path) -> list[str]:
    """The tags ``release_memory_occupation``/``resume_memory_occupation`` take (``GPU_MEMORY_ALL_TYPES``)."""
    tree = ast.parse((src / "sglang/srt/constants.py").read_text())
    values = {
        node.targets[0].id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
        and isinstance(node.value, ast.Constant)
    }  # fmt: skip
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "GPU_MEMORY_ALL_TYPES":
            return [values[e.id] for e in node.value.elts]  # type: ignore[attr-defined]
    raise LookupError("GPU_MEMORY_ALL_TYPES")


def _fields(tree: ast.Module, name: str) -> list[str]:
    """A dataclass's fields, its bases' first (those defined in the same module)."""
    cls = _class(tree, name)
    own = [n.target.id for n in cls.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)]
    inherited = [
        f
        for base in cls.bases
        if isinstance(base, ast.Name) and any(
            isinstance(n, ast.ClassDef) and n.name == base.id for n in tree.body
        )
        for f in _fields(tree, base.id)
    ]  # fmt: skip
    return inherited + [f for f in own if f not in inherited]


def server_routes(src: Path) -> dict[str, list[str] | None]:
    """The HTTP server's POST routes, each with the fields of the JSON body it takes (``obj: ReqInput``;
    None for a route without one)."""
    structs = ast.parse((src / "sglang/srt/managers/io_struct.py").read_text())
    known = {n.name for n in structs.body if isinstance(n, ast.ClassDef)}
    tree = ast.parse((src / "sglang/srt/entrypoints/http_server.py").read_text())
    routes: dict[str, list[str] | None] = {}
    for fn in tree.body:
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for deco in fn.decorator_list:
            if not (isinstance(deco, ast.Call) and getattr(deco.func, "attr", "") in ("post", "api_route")):
                continue
            if getattr(getattr(deco.func, "value", None), "id", "") != "app":
                continue
            methods = _keyword(deco, "methods")
            if deco.func.attr == "api_route" and "POST" not in ast.unparse(methods or ast.Constant("")):  # type: ignore[attr-defined]
                continue
            body = next((a.annotation for a in fn.args.args if a.arg == "obj"), None)
            name = ast.unparse(body).removeprefix("Optional[").removesuffix("]") if body else ""
            for path in (a.value for a in deco.args if isinstance(a, ast.Constant)):
                routes[path] = _fields(structs, name) if name in known else None
    return dict(sorted(routes.items()))


def main(src: Path) -> None:
    fields, flags = server_args(src)
    engine_tree = ast.parse((src / "sglang/srt/entrypoints/engine.py").read_text())
    engine = _class(engine_tree, "Engine")
    sampling = _class(
        ast.parse((src / "sglang/srt/sampling/sampling_params.py").read_text()), "SamplingParams"
    )
    (dist,) = src.glob("sglang-*.dist-info")
    init = _method(engine, "__init__")
    attributes = {
        t.attr
        for n in ast.walk(init)
        if isinstance(n, ast.Assign)
        for t in n.targets
        if isinstance(t, ast.Attribute) and getattr(t.value, "id", "") == "self"
    }
    data = {
        "sglang": dist.name.removeprefix("sglang-").removesuffix(".dist-info"),
        "server_args_fields": sorted(fields),
        "launch_server_flags": flags,
        "load_formats": load_formats(src),
        "sampling_params": _params(_method(sampling, "__init__")),
        "engine_methods": sorted(
            n.name for n in engine.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
        ),
        "engine_attributes": sorted(attributes),
        # each public method's parameters: every keyword the adapter passes must be one of them
        "engine_parameters": {
            n.name: _params(n)
            for n in sorted(engine.body, key=lambda n: getattr(n, "name", ""))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and not n.name.startswith("_")
        },
        "meta_info": meta_info_keys(src),
        "memory_tags": memory_tags(src),
        "server_routes": server_routes(src),
        "log_messages": log_messages(src),
    }
    json.dump(data, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
