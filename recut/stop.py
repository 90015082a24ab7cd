"""Stopping a run: one flag per process, raised when the run is told to stop (SIGTERM, Ctrl-C).

Python's exit waits for the threads the stages run on, so a stop has to reach the stages themselves:
:func:`request` sets the flag and calls the hooks registered with :func:`on_request` (the worker pool
kills its actors, so their in-flight stages end at once); an in-process stage ends at its next progress
step (:func:`check`), and a stage that had not started does not start. Nothing partial is committed: the
store commits only finished artifacts, so a re-run resumes from the stages that ended.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["Cancelled", "check", "on_request", "request", "requested"]

_FLAG = threading.Event()
_HOOKS: list[Callable[[], None]] = []


class Cancelled(RuntimeError):
    """The run was stopped: the stage did not run, or was cut short."""


def request() -> None:
    """Stop this process's run: set the flag, then run the hooks (each once; safe in a signal handler)."""
    if _FLAG.is_set():
        return
    _FLAG.set()
    for hook in list(_HOOKS):
        hook()


def requested() -> bool:
    return _FLAG.is_set()


def check() -> None:
    """Raise :class:`Cancelled` once a stop was requested."""
    if _FLAG.is_set():
        raise Cancelled("the run was stopped: its in-flight stages were cancelled")


def on_request(hook: Callable[[], None]) -> None:
    """Call ``hook`` when a stop is requested (at once if it already was)."""
    _HOOKS.append(hook)
    if _FLAG.is_set():
        hook()
