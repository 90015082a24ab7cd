"""Store atomicity: partial artifacts never count, races end with one artifact."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import time
from pathlib import Path

import pytest

from recut.store import Store

KEY = "ab" + "0" * 62


def _writer(root: str, payload: bytes, delay: float) -> None:
    store = Store(root)

    def write(d: Path) -> dict:
        (d / "data.bin").write_bytes(payload)
        time.sleep(delay)
        return {"writer": os.getpid()}

    store.put("sample", KEY, write)


def test_put_commits_files_and_manifest(tmp_path: Path) -> None:
    store = Store(tmp_path)
    ref = store.put("sample", KEY, lambda d: (d / "x.txt").write_text("hello") and {"n": 1})
    assert ref.file("x.txt").read_text() == "hello"
    assert set(ref.files) == {"x.txt"}
    again = store.get("sample", KEY, verify=True)
    assert again is not None and again.sha256 == ref.sha256
    assert not any(store.tmp_root.iterdir())


def test_failed_writer_leaves_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path)

    def boom(d: Path) -> dict:
        (d / "half.bin").write_bytes(b"x" * 100)
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        store.put("sample", KEY, boom)
    assert store.get("sample", KEY) is None
    assert list(store.tmp_root.iterdir()) == []


def test_killed_writer_is_never_a_cache_hit(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    p = ctx.Process(target=_writer, args=(str(tmp_path), b"y" * 1000, 30.0))
    p.start()
    store = Store(tmp_path)
    deadline = time.time() + 10
    while time.time() < deadline and not (store.tmp_root.exists() and any(store.tmp_root.iterdir())):
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.join()
    assert store.get("sample", KEY) is None  # the half-written folder is not an artifact
    assert store.gc_tmp(older_than=0) == 1
    ref = store.put("sample", KEY, lambda d: (d / "data.bin").write_bytes(b"z") and None)
    assert ref.file("data.bin").read_bytes() == b"z"


def test_truncated_artifact_is_a_miss(tmp_path: Path) -> None:
    store = Store(tmp_path)
    ref = store.put("sample", KEY, lambda d: (d / "a.bin").write_bytes(b"1234") and None)
    ref.file("a.bin").unlink()
    assert store.get("sample", KEY) is None


def test_corrupt_ref_is_quarantined_on_commit(tmp_path: Path) -> None:
    store = Store(tmp_path)
    final = store.final_dir("sample", KEY)
    final.mkdir(parents=True)
    (final / "ref.json").write_text("{not json")
    assert store.get("sample", KEY) is None
    ref = store.put("sample", KEY, lambda d: (d / "a.bin").write_bytes(b"ok") and None)
    assert ref.file("a.bin").read_bytes() == b"ok"


def test_racing_processes_end_with_one_correct_artifact(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(str(tmp_path), b"same" * 1000, 0.2)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    store = Store(tmp_path)
    ref = store.get("sample", KEY, verify=True)
    assert ref is not None
    assert ref.file("data.bin").read_bytes() == b"same" * 1000
    assert len(list(store.final_dir("sample", KEY).parent.iterdir())) == 1
    assert list(store.tmp_root.iterdir()) == []
    assert json.loads(ref.file("ref.json").read_text())["key"] == KEY


def test_replace_swaps_whole_artifact(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.put("sample", KEY, lambda d: (d / "a.bin").write_bytes(b"old") and None)
    tmp = store.begin(KEY)
    (tmp / "a.bin").write_bytes(b"new")
    ref = store.replace(tmp, "sample", KEY)
    assert ref.file("a.bin").read_bytes() == b"new"
    assert store.get("sample", KEY, verify=True) is not None
