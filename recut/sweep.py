"""Sweep points: the cartesian product of a spec's ``sweep`` and how a point sets its values (plain dict
work, importable from anywhere: the spec's validation, the planner and the engines' checks)."""

from __future__ import annotations

import copy
import itertools
from typing import Any

__all__ = ["set_path", "sweep_points", "with_point"]


def set_path(data: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """A copy of ``data`` with ``value`` at the ``dotted`` path (missing levels created as dicts)."""
    out = copy.deepcopy(data)
    cur = out
    parts = dotted.split(".")
    for p in parts[:-1]:
        nxt = cur.get(p)
        if not isinstance(nxt, dict):
            nxt = {}
            cur[p] = nxt
        cur = nxt
    cur[parts[-1]] = value
    return out


def with_point(params: dict[str, Any], point: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``params`` with a sweep point's ``params.<path>`` values set, nested paths included
    (``params.window.overlap`` sets ``overlap`` inside ``window``); the point's ``seed`` is not a param."""
    out = copy.deepcopy(params)
    for key, value in point.items():
        if key.startswith("params."):
            out = set_path(out, key[len("params.") :], value)
    return out


def sweep_points(spec: Any) -> list[dict[str, Any]]:
    """The cartesian product of ``spec.sweep`` as a list of {path: value}."""
    if not spec.sweep:
        return [{}]
    keys = list(spec.sweep)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*spec.sweep.values())]
