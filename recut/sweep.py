"""Sweep points: the cartesian product of a spec's ``sweep`` and how a point sets its values (plain dict
work, importable from anywhere: the spec's validation, the planner and the engines' checks)."""

from __future__ import annotations

import copy
import itertools
from typing import Any

__all__ = ["edit_params_at", "set_path", "sweep_points"]


def _put(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``value`` at the ``dotted`` path of ``data`` in place (missing levels created as dicts)."""
    cur = data
    parts = dotted.split(".")
    for p in parts[:-1]:
        nxt = cur.get(p)
        if not isinstance(nxt, dict):
            nxt = {}
            cur[p] = nxt
        cur = nxt
    cur[parts[-1]] = value


def set_path(data: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """A copy of ``data`` with ``value`` at the ``dotted`` path (missing levels created as dicts)."""
    out = copy.deepcopy(data)
    _put(out, dotted, value)
    return out


def edit_params_at(spec: Any, edit_index: int, point: dict[str, Any]) -> dict[str, Any]:
    """The params (JSON values, not yet validated together) edit ``edit_index`` runs with at sweep
    ``point``: the spec's, the edit's overrides over them, the point's ``params.<path>`` values over
    those, nested paths included (``params.window.overlap`` sets ``overlap`` inside ``window``; the
    point's ``seed`` is not a param). A fresh copy: the spec is not touched."""
    params = copy.deepcopy({**spec.params.model_dump(mode="json"), **spec.edits[edit_index].params})
    for key, value in point.items():
        if key.startswith("params."):
            _put(params, key[len("params.") :], value)
    return params


def sweep_points(spec: Any) -> list[dict[str, Any]]:
    """The cartesian product of ``spec.sweep`` as a list of {path: value}."""
    if not spec.sweep:
        return [{}]
    keys = list(spec.sweep)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*spec.sweep.values())]
