"""Content-addressed artifact store.

Layout under the store root::

    <kind>/<key[:2]>/<key>/                  a committed artifact (files + ref.json)
    tmp/<key>.<host>.<pid>.<rand>/           work in progress, never read as cached
    quarantine/<kind>/<key>-<UTC time>/      a corrupt artifact moved aside (+ quarantine.json)

An artifact is committed by writing every file into a private temporary
folder, fsyncing the files and ``ref.json``, and renaming the folder into
place.  A rename is atomic, so a reader sees either nothing or the whole
artifact; a killed writer leaves only a ``tmp/`` folder, which
:meth:`Store.gc_tmp` removes (every writer calls it, throttled, from
:meth:`Store.begin`).  When two processes race for one key, the first rename
wins and the loser discards its copy and returns the winner's.

``ref.json`` is the artifact's manifest: ``files`` maps each file to its
sha256 and ``sizes`` to its byte size.  Every hit (:meth:`Store.get`) checks
that each listed file exists with its recorded size, and re-hashes the files
when the whole artifact is small (:data:`HASH_ON_HIT_MAX_BYTES`).  A corrupt
artifact (a file missing, truncated or grown, a wrong hash, an unreadable
``ref.json``) is moved into ``quarantine/``, logged once on the ``recut.store``
logger, recorded in :attr:`Store.quarantined`, and read as a miss, so the
stage recomputes; it is never served.  ``recut verify`` hashes everything.

Entries committed before ``sizes`` existed keep working: their files must
exist, and their hashes (which they do record) are checked under the same
size rule, taken from the files on disk.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

REF_FILE = "ref.json"
TMP_DIR = "tmp"
QUARANTINE_DIR = "quarantine"
#: The note written into each quarantined folder: what was wrong and where it came from.
QUARANTINE_NOTE = "quarantine.json"

HASH_ON_HIT_MAX_BYTES = 1 << 20
"""An artifact whose files total at most this many bytes (1 MiB) is re-hashed on every hit.

Sizes are checked on every hit whatever the size (a ``stat`` per file).  Hashing 1 MiB costs
about a millisecond, which covers the small artifacts (preprocess info, masks, metrics, a short
clip's frames) without re-reading a multi-GB finetune delta on each hit; ``recut verify``
hashes those.
"""

TMP_GC_AGE_S = 3600.0
"""A temporary folder is removed only when nothing in it changed for this long (seconds), and
never while its writer (named in the folder: host and pid) is still alive on this host."""

TMP_GC_INTERVAL_S = 60.0
""":meth:`Store.begin` sweeps ``tmp/`` at most this often per process and store root."""

log = logging.getLogger("recut.store")

_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"
_LAST_GC: dict[Path, float] = {}


@dataclass(frozen=True)
class ArtifactRef:
    """A handle to a committed artifact. Cheap to pickle; never holds tensors."""

    kind: str
    key: str
    path: str
    sha256: str
    #: name -> sha256 of each file (what ``sha256`` digests; unchanged since the first store).
    files: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    stage: str = ""
    #: Compute seconds, on the ref :meth:`Store.commit` returns only: ``ref.json`` holds nothing
    #: but what the artifact's bytes determine, so the same artifact has the same DVC pointer
    #: on every machine and branch. Not part of a ref's identity (equality ignores it).
    seconds: float = field(default=0.0, compare=False)
    #: name -> size in bytes of each file; empty in entries committed before sizes were recorded.
    sizes: dict[str, int] = field(default_factory=dict)

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


_REF_FIELDS = frozenset(f.name for f in fields(ArtifactRef))


@dataclass(frozen=True)
class Quarantined:
    """A corrupt artifact found in the store: what was wrong, and where it went."""

    kind: str
    key: str
    problems: tuple[str, ...]
    #: The folder it was moved to; "" when it was only reported (``recut verify --report-only``).
    moved_to: str = ""

    def line(self) -> str:
        where = f" -> {self.moved_to}" if self.moved_to else ""
        return f"{self.kind}/{self.key}: {'; '.join(self.problems)}{where}"


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


def _newest_mtime(path: Path) -> float:
    """The latest modification time of ``path`` or anything below it."""
    newest = path.stat().st_mtime
    if path.is_dir():
        for dirpath, dirnames, filenames in os.walk(path):
            for name in dirnames + filenames:
                try:
                    newest = max(newest, os.stat(os.path.join(dirpath, name), follow_symlinks=False).st_mtime)
                except FileNotFoundError:
                    continue
    return newest


def _writer_alive(tmp_name: str) -> bool:
    """Whether the process named in a temporary folder (``<key>.<host>.<pid>.<rand>``) still runs
    here.  Folders of other hosts, or named the older way, cannot be asked: False."""
    parts = tmp_name.split(".")
    if len(parts) != 4 or parts[1] != _HOST or not parts[2].isdigit():
        return False
    try:
        os.kill(int(parts[2]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


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
        #: Corrupt artifacts this instance moved aside (each is also logged once).
        self.quarantined: list[Quarantined] = []

    # -- paths -------------------------------------------------------------
    def final_dir(self, kind: str, key: str) -> Path:
        return self.root / kind / key[:2] / key

    @property
    def tmp_root(self) -> Path:
        return self.root / TMP_DIR

    @property
    def quarantine_root(self) -> Path:
        return self.root / QUARANTINE_DIR

    # -- read --------------------------------------------------------------
    def get(self, kind: str, key: str, verify: bool = False) -> ArtifactRef | None:
        """The committed artifact, or None.

        Sizes are always checked against the manifest; hashes too when the artifact is small
        (:data:`HASH_ON_HIT_MAX_BYTES`) or ``verify`` is set.  A corrupt artifact is moved to
        ``quarantine/`` (see :attr:`quarantined`) and reads as a miss.
        """
        d = self.final_dir(kind, key)
        data, problems = self._judge(d, kind, key, full=verify)
        if problems:
            self._move_aside(d, kind, key, full=verify, announce=True)
            return None
        if data is None:
            return None
        return self._ref(d, data)

    def has(self, kind: str, key: str) -> bool:
        """Whether a sound artifact is committed, with the checks of :meth:`get`, but read-only: a
        corrupt one reads as absent and stays where it is (planning changes nothing; the run's
        :meth:`get` moves it aside before recomputing it)."""
        data, problems = self._judge(self.final_dir(kind, key), kind, key, full=False)
        return data is not None and not problems

    def iter_refs(self) -> Iterator[ArtifactRef]:
        for ref_path in sorted(self.root.glob(f"*/??/*/{REF_FILE}")):
            kind, _, key = ref_path.parent.relative_to(self.root).parts
            if kind in (TMP_DIR, QUARANTINE_DIR):
                continue
            ref = self.get(kind, key)
            if ref is not None:
                yield ref

    def verify_all(self, quarantine: bool = True) -> tuple[int, list[Quarantined]]:
        """Hash every artifact in full.  Returns (artifacts checked, bad ones); a bad one is moved
        to ``quarantine/`` unless ``quarantine`` is False.  Nothing is logged: the caller reports."""
        checked = 0
        bad: list[Quarantined] = []
        for d in self._entry_dirs():
            kind, key = d.parent.parent.name, d.name
            checked += 1
            _, problems = self._judge(d, kind, key, full=True)
            if not problems:
                continue
            if quarantine:
                rec = self._move_aside(d, kind, key, full=True, announce=False)
                if rec is not None:
                    bad.append(rec)
            else:
                bad.append(Quarantined(kind, key, tuple(problems)))
        return checked, bad

    def _entry_dirs(self) -> Iterator[Path]:
        """Every ``<kind>/<xx>/<key>`` folder, committed or not (tmp/ and quarantine/ excluded)."""
        if not self.root.is_dir():
            return
        for kind_dir in sorted(self.root.iterdir()):
            if not kind_dir.is_dir() or kind_dir.name in (TMP_DIR, QUARANTINE_DIR) or kind_dir.name.startswith("."):
                continue
            for shard in sorted(kind_dir.iterdir()):
                if not shard.is_dir() or len(shard.name) != 2:
                    continue
                for d in sorted(shard.iterdir()):
                    if d.is_dir():
                        yield d

    @staticmethod
    def _ref(d: Path, data: dict[str, Any]) -> ArtifactRef:
        data = {k: v for k, v in data.items() if k in _REF_FIELDS}  # a newer writer's extra fields
        data["path"] = str(d)
        return ArtifactRef(**data)

    def _judge(self, d: Path, kind: str, key: str, full: bool) -> tuple[dict[str, Any] | None, list[str]]:
        """Inspect ``d``; when it looks corrupt, look once more, since a concurrent
        :meth:`replace` or commit may have swapped the folder while it was being read."""
        data, problems = _inspect(d, kind, key, full)
        if problems:
            data, problems = _inspect(d, kind, key, full)
        return data, problems

    def _move_aside(self, d: Path, kind: str, key: str, full: bool, announce: bool) -> Quarantined | None:
        """Move the corrupt folder ``d`` to ``quarantine/<kind>/<key>-<UTC time>`` and judge the
        moved folder again (what it records is what was moved).

        Returns None when there was nothing to move (another process moved it first) or when
        what was moved turns out whole (a writer committed a good artifact in between): that one
        goes back.
        """
        qdir = self.quarantine_root / kind
        qdir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        dest = qdir / f"{key}-{stamp}"
        if dest.exists():
            dest = qdir / f"{key}-{stamp}-{secrets.token_hex(3)}"
        try:
            os.rename(d, dest)
        except FileNotFoundError:
            return None
        _, again = _inspect(dest, kind, key, full)
        if not again:
            try:
                os.rename(dest, d)
            except OSError:
                pass  # another good artifact is already in place; this copy stays aside
            return None
        rec = Quarantined(kind, key, tuple(again), str(dest))
        try:
            note = {"kind": kind, "key": key, "problems": list(again), "from": str(d), "time": time.time()}
            (dest / QUARANTINE_NOTE).write_text(json.dumps(note, indent=1))
        except OSError:
            pass
        self.quarantined.append(rec)
        if announce:
            log.warning("corrupt artifact %s; moved aside, it will be recomputed", rec.line())
        return rec

    # -- write -------------------------------------------------------------
    def begin(self, key: str) -> Path:
        """A fresh private folder to write an artifact's files into.  Sweeps old temporary
        folders of killed writers first (at most every :data:`TMP_GC_INTERVAL_S` per process)."""
        self._gc_tmp_throttled()
        self.tmp_root.mkdir(parents=True, exist_ok=True)
        d = self.tmp_root / f"{key}.{_HOST}.{os.getpid()}.{secrets.token_hex(4)}"
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
        sizes: dict[str, int] = {}
        for p in sorted(tmp.rglob("*")):
            if p.is_file() and p.name != REF_FILE:
                with open(p, "rb") as f:
                    os.fsync(f.fileno())
                    size = os.fstat(f.fileno()).st_size
                name = p.relative_to(tmp).as_posix()
                files[name] = _sha256_file(p)
                sizes[name] = size
        digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
        record = {
            "kind": kind,
            "key": key,
            "path": "",
            "sha256": digest,
            "files": files,
            "sizes": sizes,
            "meta": meta or {},
            "stage": stage,
        }
        ref_tmp = tmp / REF_FILE
        with open(ref_tmp, "w") as f:
            json.dump(record, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(tmp)
        final = self.final_dir(kind, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(3):
            try:
                os.rename(tmp, final)
                break
            except OSError:
                # Lost a race, or a corrupt or incomplete folder is in the way: get() moves a
                # corrupt one to quarantine/; anything left that is not an artifact goes to tmp/.
                existing = self.get(kind, key)
                if existing is not None:
                    shutil.rmtree(tmp, ignore_errors=True)
                    return existing
                if attempt == 2:
                    raise
                self._move_to_tmp(final)
        _fsync_dir(final.parent)
        ref = self.get(kind, key)
        assert ref is not None
        return replace(ref, seconds=round(seconds, 4))

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
            self._move_to_tmp(final)
        return self.commit(tmp, kind, key, meta, stage, seconds)

    def _move_to_tmp(self, final: Path) -> None:
        """Move a folder out of the artifact's place into tmp/, where :meth:`gc_tmp` removes it."""
        dest = self.tmp_root / f"broken.{final.name}.{secrets.token_hex(4)}"
        self.tmp_root.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(final, dest)
        except FileNotFoundError:
            pass

    # -- housekeeping --------------------------------------------------------
    def gc_tmp(self, older_than: float = TMP_GC_AGE_S) -> int:
        """Remove temporary folders left by killed writers. Returns how many.

        A folder goes when nothing in it changed for ``older_than`` seconds and its writer is not
        a live process on this host, so a slow writer that is still running keeps its folder.
        """
        if not self.tmp_root.is_dir():
            return 0
        n = 0
        now = time.time()
        for d in self.tmp_root.iterdir():
            try:
                if _writer_alive(d.name):
                    continue
                if now - _newest_mtime(d) >= older_than:
                    if d.is_dir() and not d.is_symlink():
                        shutil.rmtree(d, ignore_errors=True)
                    else:
                        d.unlink()
                    n += 1
            except FileNotFoundError:
                continue
        return n

    def prune_quarantine(self, older_than: float) -> tuple[int, int]:
        """Delete quarantined folders moved aside at least ``older_than`` seconds ago (the time in their
        note, else their mtime). Returns (folders removed, bytes freed)."""
        if not self.quarantine_root.is_dir():
            return 0, 0
        removed = freed = 0
        now = time.time()
        for d in sorted(self.quarantine_root.glob("*/*")):
            if not d.is_dir() or d.is_symlink():
                continue
            try:
                moved = float(json.loads((d / QUARANTINE_NOTE).read_text())["time"])
            except (OSError, ValueError, KeyError, TypeError):
                moved = d.stat().st_mtime
            if now - moved < older_than:
                continue
            freed += sum(f.stat().st_size for f in d.rglob("*") if f.is_file() and not f.is_symlink())
            shutil.rmtree(d, ignore_errors=True)
            removed += 1
        return removed, freed

    def _gc_tmp_throttled(self) -> None:
        now = time.monotonic()
        last = _LAST_GC.get(self.root)
        if last is not None and now - last < TMP_GC_INTERVAL_S:
            return
        _LAST_GC[self.root] = now
        try:
            self.gc_tmp()
        except OSError as exc:  # housekeeping must never fail a write
            log.debug("tmp sweep of %s failed: %s", self.tmp_root, exc)


def _inspect(d: Path, kind: str, key: str, full: bool) -> tuple[dict[str, Any] | None, list[str]]:
    """Check the artifact folder ``d`` against its manifest.

    Returns ``(ref data, problems)``: ``(None, [])`` when there is no folder (a plain miss),
    ``(data, [])`` when the artifact is whole.  Sizes are always compared; hashes when ``full`` or
    when the files total at most :data:`HASH_ON_HIT_MAX_BYTES`.
    """
    try:
        raw = (d / REF_FILE).read_bytes()
    except FileNotFoundError:
        return (None, ["no ref.json"]) if d.is_dir() else (None, [])
    except NotADirectoryError:
        return None, ["not a folder"]
    except OSError as exc:
        return None, [f"ref.json unreadable: {exc.strerror or exc}"]
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None, ["ref.json is not valid JSON"]
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        return None, ["ref.json has no file manifest"]
    problems: list[str] = []
    if data.get("kind") != kind or data.get("key") != key:
        problems.append(f"ref.json names {data.get('kind')}/{data.get('key')}")
    files: dict[str, str] = data["files"]
    sizes = data.get("sizes")
    if sizes is not None and not isinstance(sizes, dict):
        problems.append("ref.json sizes is not a mapping")
        sizes = None
    total = 0
    for name in files:
        try:
            st = os.stat(d / name)
        except (FileNotFoundError, NotADirectoryError):
            problems.append(f"{name}: missing")
            continue
        if not os.path.isfile(d / name):
            problems.append(f"{name}: not a file")
            continue
        total += st.st_size
        if sizes is not None:
            want = sizes.get(name)
            if want is None:
                problems.append(f"{name}: no size in the manifest")
            elif st.st_size != want:
                problems.append(f"{name}: {st.st_size} bytes, manifest says {want}")
    if problems:
        return data, problems
    if full or total <= HASH_ON_HIT_MAX_BYTES:
        for name, digest in files.items():
            if _sha256_file(d / name) != digest:
                problems.append(f"{name}: sha256 mismatch")
    return data, problems
