"""Keep what recut writes for itself out of git: ``<folder>/.gitignore`` lines, each added once.

Generated views (the gallery page and previews, the dashboard's frame strips) and process state (the
dashboard's and the warm service's state and log files under ``.recut/``) would otherwise show up as
changes on every run and conflict on every merge. Lines are appended (a ``.gitignore`` merges as a
union of lines, see recut/dvc.py), never reordered, and a file that cannot be read is left alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


def ignore_in_git(folder: Path, lines: Iterable[str]) -> None:
    """Append each of ``lines`` to ``folder/.gitignore`` unless it is there already."""
    ignore = folder / ".gitignore"
    try:
        text = ignore.read_text() if ignore.exists() else ""
    except OSError:
        return
    missing = [line for line in lines if line not in text.splitlines()]
    if not missing:
        return
    sep = "" if not text or text.endswith("\n") else "\n"
    tmp = ignore.with_name(f".gitignore.tmp{os.getpid()}")
    tmp.write_text(text + sep + "".join(f"{line}\n" for line in missing))
    os.replace(tmp, ignore)
