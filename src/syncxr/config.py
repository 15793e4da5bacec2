"""YAML -> validated config, dotted `--set key=value` overrides, resolved config saved with artifacts.

Every config model is a pydantic model with extra="forbid"; a bad config (unknown key, wrong type,
impossible value) becomes one UserError naming the file and the key path.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from syncxr.errors import UserError
from syncxr.fsio import load_yaml, parse_yaml

M = TypeVar("M", bound=BaseModel)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML config file as a mapping, through the one safe loader (syncxr.fsio.load_yaml: UTF-8,
    size, alias-expansion and depth limits). An empty file is refused: say what you want."""
    p = Path(path)
    raw = load_yaml(p)
    if not isinstance(raw, dict):
        raise UserError(f"{p}: expected a mapping of keys at the top level, got {type(raw).__name__}")
    return raw


def parse_override(item: str) -> tuple[list[str], Any]:
    """'a.b=3' -> (['a', 'b'], 3). The value is parsed as YAML (numbers, lists, null, true)."""
    if "=" not in item:
        raise UserError(f"--set {item!r}: expected key=value, e.g. --set image.size=512")
    key, _, value = item.partition("=")
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise UserError(f"--set {item!r}: empty key; expected dotted key=value, e.g. write.max_attempts=5")
    parsed = parse_yaml(value, f"--set {key}", invalid_as_text=True) if value.strip() else ""
    return key.split("."), parsed


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    out = json.loads(json.dumps(raw))  # deep copy of plain data
    for item in overrides:
        path, value = parse_override(item)
        node = out
        for part in path[:-1]:
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise UserError(f"--set {item!r}: {part!r} is a value, not a section")
            node = nxt
        node[path[-1]] = value
    return out


def format_validation_error(err: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid configuration:"]
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see the preset configs for valid keys)"
        lines.append(f"  - {loc}: {msg}")
    return "\n".join(lines)


def validate(model: type[M], raw: dict[str, Any], source: str) -> M:
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        raise UserError(format_validation_error(e, source)) from None


def load_config(model: type[M], path: str | Path | None, overrides: list[str] | None = None) -> M:
    """Read YAML (or start from defaults when path is None), apply overrides, validate."""
    raw = read_yaml(path) if path else {}
    raw = apply_overrides(raw, overrides or [])
    return validate(model, raw, str(path) if path else "config")


def config_hash(cfg: BaseModel) -> str:
    """Stable hash of a resolved config (key order independent)."""
    blob = json.dumps(cfg.model_dump(mode="json"), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def dump_yaml(cfg: BaseModel) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
