"""The registries: the only place where the core reaches ``engines`` and ``toyworld``.

* methods, as data: ``name -> (params model, engine class, description)``. Engines are
  discovered from the ``engines`` package: every sub-package except ``common`` that exports
  ``ENGINE`` is a method. Adding a method means adding one folder under ``engines/``;
  nothing here changes.
* metrics, as data (:class:`recut.engine.MetricInfo`, engines.common.metric_table): the
  product's and the toy world's, readable without importing any evaluation code.
* the toy world's entry points the core offers: the ``input.toy`` scene model, the spec checks of
  the toy metrics, and the ``recut toy`` / ``recut zoo`` sub-commands.

Every import here is function-local so that importing the core loads no engine or toy code.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any

from pydantic import BaseModel

from recut.engine import Engine, MetricInfo


@dataclass(frozen=True)
class MethodEntry:
    name: str
    params: type[BaseModel]
    engine: type[Engine]
    description: str


@cache
def methods() -> dict[str, MethodEntry]:
    import engines

    found: dict[str, MethodEntry] = {}
    for info in sorted(pkgutil.iter_modules(engines.__path__), key=lambda i: i.name):
        if not info.ispkg or info.name in ("common",) or info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"engines.{info.name}")
        eng = getattr(mod, "ENGINE", None)
        if eng is None:
            continue
        found[eng.name] = MethodEntry(eng.name, eng.params_model, eng, eng.description)
    return found


def engine_class(method: str) -> type[Engine]:
    return methods()[method].engine


@cache
def metrics() -> dict[str, MetricInfo]:
    """Every metric a spec's ``evaluate`` can name, in listing order."""
    from engines.common.metric_table import METRICS

    return METRICS


def toy_scenes() -> ModuleType:
    """The provider of ``input.toy`` (:mod:`toyworld.scene`): ``ToyScene``, ``toy_digest``, ``render``."""
    from toyworld import scene

    return scene


def evaluate_checks() -> list[Callable[[Any, bool], list[tuple[str, str]]]]:
    """Cross-field checks of a spec's ``evaluate`` section beyond metric names (the toy metrics')."""
    from toyworld.metrics import check_evaluate

    return [check_evaluate]


def lpips_weights() -> Any:
    """``(path or None, reason)``: the local LPIPS weights the ``lpips`` metric would use."""
    from engines.common.lpips import find_weights

    return find_weights()


def cli_apps() -> dict[str, Any]:
    """Sub-commands the toy world adds to ``recut``: ``toy`` and ``zoo`` (typer apps)."""
    from toyworld.cli_toy import toy_app
    from toyworld.cli_zoo import zoo_app

    return {"toy": toy_app, "zoo": zoo_app}
