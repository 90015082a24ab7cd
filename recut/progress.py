"""Progress events from tasks to whatever displays them (the CLI's rich view).

A module-level sink, not a flow parameter: flow parameters go to the Prefect
API as JSON, callables do not.  The default sink drops events.
"""

from __future__ import annotations

import threading
from typing import Protocol


class Sink(Protocol):
    def start(self, key: str, label: str, kind: str) -> None: ...
    def step(self, key: str, step: int, total: int) -> None: ...
    def done(self, key: str, status: str, seconds: float) -> None: ...


class NullSink:
    def start(self, key: str, label: str, kind: str) -> None:
        pass

    def step(self, key: str, step: int, total: int) -> None:
        pass

    def done(self, key: str, status: str, seconds: float) -> None:
        pass


_lock = threading.Lock()
_sink: Sink = NullSink()


def set_sink(sink: Sink | None) -> None:
    global _sink
    with _lock:
        _sink = sink or NullSink()


def sink() -> Sink:
    return _sink
