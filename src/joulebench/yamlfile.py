"""YAML for plans and workload files, read strictly: a key given twice in one mapping is an error.

PyYAML keeps the last of two equal keys without a word, so `repeats: 1` followed by `repeats: 5` ran five
repeats while the file seemed to ask for one; here both are named, with their lines.
"""

from __future__ import annotations

from typing import Any


class DuplicateKeyError(ValueError):
    """A mapping names one key twice; the message says which and where."""


def load(text: str) -> Any:
    """``yaml.safe_load`` that refuses duplicate keys (:class:`DuplicateKeyError`); other YAML errors
    are PyYAML's own."""
    import yaml

    class StrictLoader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no types
        pass

    def mapping(loader: StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise DuplicateKeyError(f"key '{key}' is given twice (lines {seen[key]} and {line})")
            if isinstance(key, (str, int, float, bool)):
                seen[key] = line
        return loader.construct_mapping(node, deep=deep)

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return yaml.load(text, Loader=StrictLoader)
