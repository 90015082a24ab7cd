"""Cache-key rules (GUIDE.md §2).

A key hashes *content*, never paths: the stage name and its explicit version,
the values of exactly the spec paths the stage declares it reads, and the keys
of its upstream stages (a Merkle chain, so `recut plan` can show every key
before anything is computed).  Input media enter as their sha256; models as
their content identity (see :mod:`recut.models`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

#: Bump when the key layout itself changes (invalidates every artifact).
KEY_SCHEMA = "recut-key/1"


def canonical(obj: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, floats via repr."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_default)


def _default(o: Any) -> Any:
    if isinstance(o, Path):
        raise TypeError(f"paths must not enter a cache key (got {o}); hash the content instead")
    if hasattr(o, "model_dump"):
        return o.model_dump(mode="json")
    raise TypeError(f"cannot hash {type(o).__name__} in a cache key")


def cache_key(stage: str, version: str, reads: dict[str, Any], upstream: dict[str, str]) -> str:
    payload = {
        "schema": KEY_SCHEMA,
        "stage": stage,
        "version": version,
        "reads": reads,
        "upstream": dict(sorted(upstream.items())),
    }
    return hashlib.sha256(canonical(payload).encode()).hexdigest()


_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes, memoised by (path, size, mtime) in-process."""
    p = Path(path)
    st = p.stat()
    memo = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    hit = _FILE_DIGESTS.get(memo)
    if hit is None:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        hit = h.hexdigest()
        _FILE_DIGESTS[memo] = hit
    return hit
