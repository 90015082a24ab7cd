"""How every `recut` command ends: one clear line and an exit code, never a traceback.

:func:`guard` wraps a command: :class:`Exit` (a command's own "stop with this code"),
Ctrl-C (130, with a line saying what is kept), and any other exception (1, with
:func:`runtime_message`; ``RECUT_DEBUG=1`` re-raises it).  Shared by `recut` and its
sub-apps (`recut zoo`).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import typer
from rich.console import Console

err = Console(stderr=True, soft_wrap=True)

INTERRUPTED = "interrupted; completed stages stay cached, re-run to resume"


class Exit(Exception):
    def __init__(self, code: int):
        self.code = code


def runtime_message(exc: BaseException) -> str:
    """One line for an exception that escaped a worker, a task or a flow."""
    seen = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        cause = getattr(cur, "cause", None)  # RayTaskError
        if isinstance(cause, BaseException):
            cur = cause
            continue
        if cur.__cause__ is not None and type(cur).__name__ in ("RayTaskError", "TaskRunError"):
            cur = cur.__cause__
            continue
        break
    assert cur is not None
    text = str(cur).strip().splitlines()[0] if str(cur).strip() else type(cur).__name__
    return f"{type(cur).__name__}: {text}" if type(cur).__name__ not in ("MediaError", "ModelNotAvailable") else text


def guard(fn: Callable[..., Any] | None = None, *, interrupted: str = INTERRUPTED) -> Any:
    """Decorate a command (``@guard``, or ``@guard(interrupted=...)`` for its Ctrl-C line)."""

    def wrap(f: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(f)
        def wrapper(*a: Any, **k: Any) -> Any:
            try:
                return f(*a, **k)
            except Exit as e:
                raise typer.Exit(e.code) from None
            except typer.Exit:
                raise
            except KeyboardInterrupt:
                err.print(interrupted, style="yellow")
                raise typer.Exit(130) from None
            except Exception as exc:
                if os.environ.get("RECUT_DEBUG") == "1":
                    raise
                err.print(f"error: {runtime_message(exc)}", markup=False, highlight=False)
                raise typer.Exit(1) from None

        return wrapper

    return wrap(fn) if fn is not None else wrap
