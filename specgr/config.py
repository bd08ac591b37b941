"""Configs: plain dataclasses (defined next to the code they configure) + one YAML preset per dataset.

A preset (specgr/configs/<name>.yaml) has one section per stage; each section fills that stage's dataclass.
Unknown keys are an error (a typo must not be silently ignored, as official config keys were). CLI overrides use
dotted keys: `--set tiger_train.epochs=5 specgr.threshold=-1.6`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

PRESET_DIR = Path(__file__).parent / "configs"


def from_dict(cls, d: dict | None):
    """Build dataclass `cls` from `d`, rejecting unknown keys; nested dataclass fields are filled recursively."""
    d = dict(d or {})
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(d) - set(names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys {sorted(unknown)}; valid keys: {sorted(names)}. Fix: correct "
                         "the key (in the preset section or the --set override).")
    kw = {}
    for k, v in d.items():
        t = names[k].type
        sub = _dataclass_type(cls, k)
        kw[k] = from_dict(sub, v) if sub is not None and isinstance(v, dict) else _coerce(v, t)
    return cls(**kw)


def _dataclass_type(cls, field_name):
    import typing

    hints = typing.get_type_hints(cls)
    t = hints.get(field_name)
    return t if dataclasses.is_dataclass(t) else None


def _coerce(v, t):
    if isinstance(v, list) and "tuple" in str(t):
        return tuple(v)
    return v


def to_dict(obj) -> dict:
    return dataclasses.asdict(obj)


def config_hash(*objs) -> str:
    """Stable short hash of configs (dataclasses or dicts): a stage's output is reused only if this matches."""
    payload = json.dumps([to_dict(o) if dataclasses.is_dataclass(o) else o for o in objs], sort_keys=True,
                         default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def load_preset(name_or_path: str) -> dict[str, Any]:
    """YAML preset -> dict of sections. `name_or_path` is a preset name (e.g. amazon2018-game) or a YAML path."""
    p = Path(name_or_path)
    if not p.suffix:
        p = PRESET_DIR / f"{name_or_path}.yaml"
    if not p.exists():
        have = sorted(x.stem for x in PRESET_DIR.glob("*.yaml"))
        raise FileNotFoundError(f"no preset {name_or_path!r}. Fix: --preset one of {have}, or a YAML file path.")
    cfg = yaml.safe_load(p.read_text()) or {}
    base = cfg.pop("inherit", None)  # one level of inheritance at most: presets stay flat and readable
    if base:
        parent = load_preset(base)
        for k, v in cfg.items():
            parent[k] = {**parent.get(k, {}), **v} if isinstance(v, dict) else v
        cfg = parent
    return cfg


def apply_overrides(cfg: dict, overrides: list[str] | None) -> dict:
    """`section.key=value` strings (value parsed as YAML) applied onto the preset dict."""
    for o in overrides or []:
        if "=" not in o:
            raise ValueError(f"override {o!r} must look like section.key=value")
        key, val = o.split("=", 1)
        node = cfg
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(val)
    return cfg
