"""Content-addressed artifact store.

Layout under the store root::

    <kind>/<key[:2]>/<key>/        a committed artifact (files + ref.json)
    tmp/<key>.<pid>.<rand>/        work in progress, never read as cached

An artifact is committed by writing every file into a private temporary
folder, fsyncing the files and ``ref.json``, and renaming the folder into
place.  A rename is atomic, so a reader sees either nothing or the whole
artifact; a killed writer leaves only a ``tmp/`` folder, which
:meth:`Store.gc_tmp` removes.  When two processes race for one key, the
first rename wins and the loser discards its copy and returns the winner's.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REF_FILE = "ref.json"


@dataclass(frozen=True)
class ArtifactRef:
    """A handle to a committed artifact. Cheap to pickle; never holds tensors."""

    kind: str
    key: str
    path: str
    sha256: str
    files: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    stage: str = ""
    created: float = 0.0
    seconds: float = 0.0

    @property
    def dir(self) -> Path:
        return Path(self.path)

    def file(self, name: str) -> Path:
        return Path(self.path) / name

    def to_json(self, store_root: Path | None = None) -> dict[str, Any]:
        d = asdict(self)
        if store_root is not None:
            d["path"] = os.path.relpath(self.path, store_root)
        return d


def _sha256_file(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def folder_aside(target: Path) -> Path:
    """Where :func:`swap_in_folder` keeps the old ``target`` while it swaps (``<target>.replaced``)."""
    return target.with_name(target.name + ".replaced")


def recover_folder(target: Path) -> None:
    """Finish what a killed :func:`swap_in_folder` left: restore the old folder if ``target`` is
    missing, else drop the leftover old copy."""
    old = folder_aside(target)
    if old.exists():
        if target.exists():
            shutil.rmtree(old)
        else:
            os.rename(old, target)


def swap_in_folder(staging: Path, target: Path) -> None:
    """Make the finished folder ``staging`` (a sibling of ``target``) become ``target``.  The old
    ``target`` is renamed aside first and removed last, so a kill at any point leaves one whole
    folder in place or aside (:func:`recover_folder` puts it back)."""
    recover_folder(target)
    old = folder_aside(target)
    if target.exists():
        os.rename(target, old)
    os.rename(staging, target)
    _fsync_dir(target.parent)
    if old.exists():
        shutil.rmtree(old)


class Store:
    """A folder of committed artifacts addressed by (kind, key)."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()

    # -- paths -------------------------------------------------------------
    def final_dir(self, kind: str, key: str) -> Path:
        return self.root / kind / key[:2] / key

    @property
    def tmp_root(self) -> Path:
        return self.root / "tmp"

    # -- read --------------------------------------------------------------
    def get(self, kind: str, key: str, verify: bool = False) -> ArtifactRef | None:
        """The committed artifact, or None. ``verify`` re-hashes every file."""
        d = self.final_dir(kind, key)
        ref_path = d / REF_FILE
        try:
            data = json.loads(ref_path.read_text())
        except (FileNotFoundError, NotADirectoryError):
            return None
        except (OSError, json.JSONDecodeError):
            return None
        files: dict[str, str] = data.get("files", {})
        for name, digest in files.items():
            fp = d / name
            if not fp.is_file():
                return None
            if verify and _sha256_file(fp) != digest:
                return None
        data["path"] = str(d)
        return ArtifactRef(**data)

    def has(self, kind: str, key: str) -> bool:
        return self.get(kind, key) is not None

    def iter_refs(self) -> Iterator[ArtifactRef]:
        for ref_path in sorted(self.root.glob(f"*/??/*/{REF_FILE}")):
            kind, _, key = ref_path.parent.relative_to(self.root).parts
            ref = self.get(kind, key)
            if ref is not None:
                yield ref

    # -- write -------------------------------------------------------------
    def begin(self, key: str) -> Path:
        """A fresh private folder to write an artifact's files into."""
        self.tmp_root.mkdir(parents=True, exist_ok=True)
        d = self.tmp_root / f"{key}.{os.getpid()}.{secrets.token_hex(4)}"
        d.mkdir()
        return d

    def commit(
        self,
        tmp: Path,
        kind: str,
        key: str,
        meta: dict[str, Any] | None = None,
        stage: str = "",
        seconds: float = 0.0,
    ) -> ArtifactRef:
        """Seal ``tmp`` as artifact (kind, key); returns the winning ref."""
        files: dict[str, str] = {}
        for p in sorted(tmp.rglob("*")):
            if p.is_file() and p.name != REF_FILE:
                with open(p, "rb") as f:
                    os.fsync(f.fileno())
                files[p.relative_to(tmp).as_posix()] = _sha256_file(p)
        digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
        record = {
            "kind": kind,
            "key": key,
            "path": "",
            "sha256": digest,
            "files": files,
            "meta": meta or {},
            "stage": stage,
            "created": time.time(),
            "seconds": round(seconds, 4),
        }
        ref_tmp = tmp / REF_FILE
        with open(ref_tmp, "w") as f:
            json.dump(record, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(tmp)
        final = self.final_dir(kind, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(tmp, final)
        except OSError:
            # Lost a race (or a stale, incomplete folder is in the way).
            existing = self.get(kind, key)
            if existing is not None:
                shutil.rmtree(tmp, ignore_errors=True)
                return existing
            self._quarantine(final)
            os.rename(tmp, final)
        _fsync_dir(final.parent)
        ref = self.get(kind, key)
        assert ref is not None
        return ref

    def put(
        self,
        kind: str,
        key: str,
        write: Callable[[Path], dict[str, Any] | None],
        stage: str = "",
    ) -> ArtifactRef:
        """Run ``write(tmp_dir)`` and commit its files, unless already committed."""
        hit = self.get(kind, key)
        if hit is not None:
            return hit
        tmp = self.begin(key)
        t0 = time.perf_counter()
        try:
            meta = write(tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return self.commit(tmp, kind, key, meta, stage, time.perf_counter() - t0)

    def replace(
        self,
        tmp: Path,
        kind: str,
        key: str,
        meta: dict[str, Any] | None = None,
        stage: str = "",
        seconds: float = 0.0,
    ) -> ArtifactRef:
        """Commit ``tmp`` in place of an existing artifact (``--force``).

        The old folder is moved aside first, so a reader sees the old
        artifact, nothing, or the new one, never a mixture.
        """
        final = self.final_dir(kind, key)
        if final.exists():
            self._quarantine(final)
        return self.commit(tmp, kind, key, meta, stage, seconds)

    def _quarantine(self, final: Path) -> None:
        """Move an incomplete final folder (no valid ref.json) out of the way."""
        dest = self.tmp_root / f"broken.{final.name}.{secrets.token_hex(4)}"
        self.tmp_root.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(final, dest)
        except FileNotFoundError:
            pass

    def gc_tmp(self, older_than: float = 3600.0) -> int:
        """Remove temporary folders left by killed writers. Returns how many."""
        if not self.tmp_root.is_dir():
            return 0
        n = 0
        now = time.time()
        for d in self.tmp_root.iterdir():
            try:
                if now - d.stat().st_mtime >= older_than:
                    shutil.rmtree(d, ignore_errors=True)
                    n += 1
            except FileNotFoundError:
                continue
        return n
