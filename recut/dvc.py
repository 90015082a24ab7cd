"""DVC glue: version the artifact store and every spec's outputs, in a layout that merges.

- Every store entry (``.recut/store/<kind>/<xx>/<key>/``) has its own pointer,
  ``<key>.dvc`` beside it, and every spec's output folder has its own
  ``<folder>.dvc``. Two branches that ran different specs add different
  pointer files, so git merges them without a conflict; an entry both ran has
  the same key, and the same pointer wherever its bytes are the same.
- After a run the driver calls ``dvc add`` once, for the run's entries and
  output folders: ``dvc push`` shares every intermediate artifact, a clone that
  runs ``dvc pull`` recomputes nothing, and ``git checkout <rev> && dvc
  checkout`` restores that revision's outputs.
- git ignores the entries through fixed pattern files that DVC then leaves alone:
  ``.recut/store/.gitignore`` (``tmp/``, ``quarantine/``) and, in each shard folder
  ``<kind>/<xx>/``, a ``.gitignore`` of ``/*/`` (the entry folders, not their
  pointers; the same bytes on every branch). ``.gitattributes`` merges ``.gitignore``
  files as a union of lines (the lines DVC adds for output folders).
- ``dvc.yaml`` holds no stage per spec (only the toy zoo's training stages), so a
  plain ``dvc pull`` in a clone has nothing it cannot restore.
- An older layout (one ``.recut/store.dvc``, a ``recut-<spec>`` stage per spec in
  ``dvc.yaml``) is converted on the first run that records: DVC's own ``remove``
  drops those pointers (the data stays in the cache and the workspace).
- Only the driver calls DVC, once per run. Inside ``dvc repro`` (DVC_STAGE is
  set) recut does not call DVC at all: DVC holds the repo lock.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import time
from pathlib import Path
from typing import Any

from recut.plan import Plan
from recut.store import Store

STORE_REL = ".recut/store"
#: ``.recut/store/.gitignore``: never artifacts.
STORE_GITIGNORE = "/tmp/\n/quarantine/\n"
#: ``.recut/store/<kind>/<xx>/.gitignore``: the entry folders are DVC's, their ``<key>.dvc`` git's.
#: (One pattern file per shard: a deeper pattern at the store root, ``/*/??/*/``, makes DVC's git
#: matcher ignore the shard folders too, and DVC then never finds the pointers inside.)
SHARD_GITIGNORE = "/*/\n"
#: ``.gitattributes``: DVC appends a line per tracked output folder to its parent's ``.gitignore``;
#: two branches' lines are both wanted, so git keeps the union instead of a conflict.
UNION_ATTR = ".gitignore merge=union"


def find_dvc_root(start: Path) -> Path | None:
    start = start.resolve()
    for d in [start, *start.parents]:
        if (d / ".dvc").is_dir():
            return d
    return None


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root)
    except ValueError:
        return False
    return True


def ensure_git_files(root: Path, store_root: Path, entries: list[Path]) -> None:
    """Write the store's ``.gitignore`` files (its root's and each of ``entries``' shard's) and the
    union merge line of ``.gitattributes``, each only when missing or different."""
    for ignore, text in [(store_root / ".gitignore", STORE_GITIGNORE)] + [
        (shard / ".gitignore", SHARD_GITIGNORE) for shard in sorted({e.parent for e in entries})
    ]:
        if not ignore.exists() or ignore.read_text() != text:
            ignore.parent.mkdir(parents=True, exist_ok=True)
            _write_atomic(ignore, text)
    attrs = root / ".gitattributes"
    text = attrs.read_text() if attrs.exists() else ""
    if UNION_ATTR not in text.splitlines():
        _write_atomic(attrs, text + ("" if not text or text.endswith("\n") else "\n") + UNION_ATTR + "\n")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def targets(store_root: Path, plan: Plan, root: Path) -> list[Path]:
    """What a run records: its store entries that exist, then its output folders inside ``root``."""
    store = Store(store_root)
    entries = [store.final_dir(n.kind, n.key) for n in plan.ordered()]
    outputs = [sp.output_dir for sp in plan.specs if _inside(sp.output_dir, root)]
    return [p for p in entries + outputs if p.is_dir()]


def _legacy_pointers(repo: Any, root: Path, store_root: Path, outputs: list[Path]) -> list[str]:
    """The older layout's pointers that would overlap what this run adds: ``<store>.dvc`` and the
    ``dvc.yaml`` stages whose outs hold one of ``outputs``."""
    found = []
    whole = store_root.with_name(store_root.name + ".dvc")
    if whole.exists():
        found.append(str(whole))
    wanted = {p.resolve() for p in outputs}
    for stage in repo.index.stages:
        if stage.is_data_source or not stage.name:
            continue
        if any(Path(o.fs_path).resolve() in wanted for o in stage.outs):
            found.append(f"{stage.path}:{stage.name}")
    return found


def _with_lock_retry(fn: Any, tries: int = 30) -> Any:
    from dvc.lock import LockError  # local: DVC takes ~0.3 s to import

    for i in range(tries):
        try:
            return fn()
        except LockError:
            if i == tries - 1:
                raise
            time.sleep(1.0)
    return None


def record(store_root: Path, plan: Plan) -> str:
    """Record the run's store entries and the specs' outputs in DVC; returns a one-line note."""
    if os.environ.get("DVC_STAGE"):
        return f"inside `dvc repro` ({os.environ['DVC_STAGE']}): DVC records the outputs"
    root = find_dvc_root(store_root)
    if root is None:
        return "not a DVC repository (run `dvc init` to version artifacts)"
    store_root = store_root.resolve()
    if not _inside(store_root, root):
        return f"store {store_root} is outside the DVC repository {root}; not recorded"
    from dvc.repo import Repo  # local: DVC takes ~0.3 s to import

    paths = targets(store_root, plan, root)
    outputs = [p for p in paths if not _inside(p, store_root)]
    ensure_git_files(root, store_root, [p for p in paths if p not in outputs])
    converted: list[str] = []

    def _do() -> None:
        # DVC prints hints ("To track the changes with git ...") on stdout;
        # keep our stdout machine-readable (`--json`).
        dvc_log = logging.getLogger("dvc")
        level = dvc_log.level
        dvc_log.setLevel(logging.WARNING)
        try:
            with contextlib.redirect_stdout(io.StringIO()), Repo(str(root)) as repo:
                for target in _legacy_pointers(repo, root, store_root, outputs):
                    repo.remove(target)
                    converted.append(target)
                if paths:
                    repo.add([str(p) for p in paths])
        finally:
            dvc_log.setLevel(level)

    _with_lock_retry(_do)
    n_out = len(outputs)
    note = f"recorded {len(paths) - n_out} store entr{'y' if len(paths) - n_out == 1 else 'ies'}"
    note += f" and {n_out} output folder(s) in DVC (one .dvc each); `dvc push` shares them"
    if converted:
        note += f"; converted the older layout ({', '.join(converted)})"
    return note
