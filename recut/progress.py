"""Progress events from tasks to whatever displays them (the CLI's rich view).

A module-level sink, not a flow parameter: flow parameters go to the Prefect
API as JSON, callables do not.  The default sink drops events.

:func:`sink` also writes every event as a line of the ``recut.run`` logger (a
stage's steps at most every :data:`LOG_EVERY_S` seconds, plus its first and
last; its end with the status and the key). Those lines go nowhere by default;
inside a flow run with a Prefect server they are the run's logs on the
dashboard (:func:`recut.prefect_env.ship_logs`).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

log = logging.getLogger("recut.run")
log.addHandler(logging.NullHandler())  # no "last resort" printing of these lines where logging is not set up
#: Fewest seconds between two logged progress lines of one stage (its first and last always show).
LOG_EVERY_S = 2.0


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
    """The current sink, with its events also logged (one wrapper per stage: take it once per stage)."""
    return Logged(_sink)


class Logged:
    """A sink that passes every event on to ``inner`` and writes it as a ``recut.run`` log line."""

    def __init__(self, inner: Sink):
        self.inner = inner
        self.labels: dict[str, str] = {}
        self.last: dict[str, tuple[float, int]] = {}

    def start(self, key: str, label: str, kind: str) -> None:
        self.labels[key] = label
        self.inner.start(key, label, kind)

    def step(self, key: str, step: int, total: int) -> None:
        self.inner.step(key, step, total)
        now = time.monotonic()
        when, logged = self.last.get(key, (0.0, -1))
        if step != logged and (step <= 1 or step >= total or now - when >= LOG_EVERY_S):
            self.last[key] = (now, step)
            log.info("%s [%s]: step %d/%d", self.labels.get(key, key[:12]), key[:12], step, total)

    def done(self, key: str, status: str, seconds: float) -> None:
        self.inner.done(key, status, seconds)
        label = self.labels.get(key, key[:12])
        if status == "cached":
            log.info("%s [%s]: cached (store hit, key %s)", label, key[:12], key)
        elif status == "FAILED":
            log.error("%s [%s]: FAILED after %.1f s", label, key[:12], seconds)
        else:
            log.info("%s [%s]: %s in %.2f s", label, key[:12], status, seconds)
