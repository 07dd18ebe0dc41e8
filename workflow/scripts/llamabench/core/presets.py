"""Config files that extend another: a preset's variants share one definition of the study.

``extends: <file>`` (relative to the extending file) loads that file first;
the extending file's values then override it key by key, at any depth. Named
entries stay whole: a mapping with a ``kind`` (a source, a model) replaces the
base's entry instead of merging into it; an empty mapping or a list replaces
the base's; ``null`` removes the base's entry (a build, a group).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def resolve(config: dict[str, Any], directory: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """``config`` with what it extends merged underneath, recursively."""
    if "extends" not in config:
        return config
    config = dict(config)
    base_path = (directory / config.pop("extends")).resolve()
    if base_path in seen:
        raise ValueError(f"extends: {base_path} extends itself (through {', '.join(map(str, seen))})")
    if not base_path.is_file():
        raise ValueError(f"extends: {base_path} does not exist")
    base = resolve(yaml.safe_load(base_path.read_text()) or {}, base_path.parent, (*seen, base_path))
    return merge(base, config)


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict) and value and "kind" not in value:
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged
