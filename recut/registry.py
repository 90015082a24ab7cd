"""The method registry, as data: ``name -> (params model, engine class, description)``.

Engines are discovered from the ``engines`` package: every sub-package except
``common`` that exports ``ENGINE`` is a method.  Adding a method means adding
one folder under ``engines/``; nothing here changes.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from functools import cache

from pydantic import BaseModel

from recut.engine import Engine


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
