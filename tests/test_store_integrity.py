"""The store never serves a corrupt artifact: every hit checks the manifest, a corrupt entry is
moved to quarantine/ and recomputed, `recut verify` hashes everything, old temp folders go."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from typer.testing import CliRunner

from recut import store as store_mod
from recut.engine import Engine, Stage, StageContext
from recut.runner import Job, StageRunner
from recut.store import Store

KEY = "cd" + "1" * 62
KEY2 = "ef" + "2" * 62
A_DAY = 24 * 3600.0  # older than any temp-folder age limit


def _entry(store: Store, key: str = KEY, files: dict[str, bytes] | None = None) -> Path:
    files = files or {"frames.npy": b"f" * 4000, "info.json": b'{"fps": 8}'}

    def write(d: Path) -> None:
        for name, data in files.items():
            (d / name).write_bytes(data)

    return store.put("sample", key, write).dir


def _quarantined(store: Store, key: str = KEY) -> list[Path]:
    qdir = store.quarantine_root / "sample"
    return sorted(qdir.glob(f"{key}-*")) if qdir.is_dir() else []


def _flip_byte(p: Path, at: int = 10) -> None:
    data = bytearray(p.read_bytes())
    data[at] ^= 0xFF
    p.write_bytes(bytes(data))


# --------------------------------------------------------------------------- hits


def test_intact_entry_hits_and_records_sizes(tmp_path: Path) -> None:
    store = Store(tmp_path)
    d = _entry(store)
    ref = store.get("sample", KEY)
    assert ref is not None and ref.dir == d
    assert ref.sizes == {"frames.npy": 4000, "info.json": 10}
    assert set(ref.files) == {"frames.npy", "info.json"}
    assert store.quarantined == [] and _quarantined(store) == []


def test_truncated_file_is_a_miss_and_quarantined_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = Store(tmp_path)
    d = _entry(store)
    with open(d / "frames.npy", "r+b") as f:
        f.truncate(1000)
    with caplog.at_level(logging.WARNING, logger="recut.store"):
        assert store.get("sample", KEY) is None
        assert store.get("sample", KEY) is None  # the second look finds nothing: no second report
    assert not d.exists()
    [moved] = _quarantined(store)
    assert (moved / "frames.npy").stat().st_size == 1000  # kept as it was found, for inspection
    note = json.loads((moved / store_mod.QUARANTINE_NOTE).read_text())
    assert note["problems"] == ["frames.npy: 1000 bytes, manifest says 4000"]
    [rec] = store.quarantined
    assert rec.key == KEY and rec.moved_to == str(moved)
    warnings = [r for r in caplog.records if r.name == "recut.store" and r.levelno == logging.WARNING]
    assert len(warnings) == 1 and KEY in warnings[0].getMessage()


def test_has_reads_a_corrupt_entry_as_absent_and_leaves_it_in_place(tmp_path: Path) -> None:
    """Planning (Store.has) changes nothing: a corrupt entry is a miss there and stays where it is; the
    run's get moves it aside."""
    store = Store(tmp_path)
    d = _entry(store)
    assert store.has("sample", KEY)
    with open(d / "frames.npy", "r+b") as f:
        f.truncate(1000)
    assert not store.has("sample", KEY)
    assert d.exists() and _quarantined(store) == [] and store.quarantined == []
    assert store.get("sample", KEY) is None and not d.exists() and len(_quarantined(store)) == 1


def test_flipped_byte_in_a_small_entry_is_caught_by_sha256(tmp_path: Path) -> None:
    store = Store(tmp_path)
    d = _entry(store)
    _flip_byte(d / "frames.npy")  # same size: only the hash can tell
    assert store.get("sample", KEY) is None
    [moved] = _quarantined(store)
    assert json.loads((moved / store_mod.QUARANTINE_NOTE).read_text())["problems"] == ["frames.npy: sha256 mismatch"]


def test_a_large_entry_is_size_checked_on_hit_and_hashed_by_verify(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_mod, "HASH_ON_HIT_MAX_BYTES", 1000)  # the 4 KB entry counts as large
    store = Store(tmp_path)
    d = _entry(store)
    _flip_byte(d / "frames.npy")
    assert store.get("sample", KEY) is not None  # a hit costs a stat per file, no re-read
    assert store.get("sample", KEY, verify=True) is None  # a full check does hash
    assert len(_quarantined(store)) == 1


def test_deleted_file_is_detected_and_quarantined(tmp_path: Path) -> None:
    store = Store(tmp_path)
    d = _entry(store)
    (d / "info.json").unlink()
    assert store.get("sample", KEY) is None
    [moved] = _quarantined(store)
    assert json.loads((moved / store_mod.QUARANTINE_NOTE).read_text())["problems"] == ["info.json: missing"]
    # and the key is writable again: the next put recomputes
    ref = store.put("sample", KEY, lambda t: (t / "info.json").write_text("{}") and None)
    assert store.get("sample", KEY) == ref


def test_entry_without_sizes_still_hits_and_is_still_hashed(tmp_path: Path) -> None:
    """Entries committed before the manifest held sizes: read as valid, hashed when small."""
    store = Store(tmp_path)
    d = _entry(store)
    raw = json.loads((d / "ref.json").read_text())
    del raw["sizes"]
    (d / "ref.json").write_text(json.dumps(raw))
    ref = store.get("sample", KEY)
    assert ref is not None and ref.sizes == {}
    _flip_byte(d / "info.json", at=2)
    assert store.get("sample", KEY) is None
    assert len(_quarantined(store)) == 1


def test_moving_aside_puts_back_a_whole_artifact(tmp_path: Path) -> None:
    """A reader that judged a folder corrupt just before a writer committed a good one in its
    place must not take the good one away."""
    store = Store(tmp_path)
    d = _entry(store)
    assert store._move_aside(d, "sample", KEY, full=True, announce=True) is None
    assert store.get("sample", KEY) is not None and store.quarantined == []


# --------------------------------------------------------------------------- recut verify


def _invoke(*args: str) -> Any:
    from recut.cli import app

    return CliRunner().invoke(app, list(args))


def test_verify_reports_and_quarantines_bad_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_mod, "HASH_ON_HIT_MAX_BYTES", 0)  # verify hashes even what a hit would not
    store = Store(tmp_path / "store")
    good = _entry(store, KEY2)
    bad = _entry(store, KEY)
    _flip_byte(bad / "frames.npy")

    r = _invoke("verify", "--store", str(store.root), "--report-only")
    assert r.exit_code == 1, r.output
    assert f"sample/{KEY}: frames.npy: sha256 mismatch" in r.output
    assert "2 artifact(s) checked" in r.output and "1 bad" in r.output
    assert bad.exists() and _quarantined(store) == []  # report only: nothing moved

    r = _invoke("verify", "--store", str(store.root))
    assert r.exit_code == 1, r.output
    assert "frames.npy: sha256 mismatch" in r.output
    assert not bad.exists() and len(_quarantined(store)) == 1
    assert good.exists()

    r = _invoke("verify", "--store", str(store.root))
    assert r.exit_code == 0, r.output
    assert "1 artifact(s) checked" in r.output and "0 bad" in r.output


def test_verify_prunes_only_old_quarantined_folders(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    for key in (KEY, KEY2):
        d = _entry(store, key)
        (d / "frames.npy").write_bytes(b"short")
        assert store.get("sample", key) is None  # moved aside
    old, fresh = _quarantined(store, KEY)[0], _quarantined(store, KEY2)[0]
    note = json.loads((old / store_mod.QUARANTINE_NOTE).read_text())
    (old / store_mod.QUARANTINE_NOTE).write_text(json.dumps(note | {"time": time.time() - 8 * A_DAY}))
    r = _invoke("verify", "--store", str(store.root), "--prune-quarantine", "7")
    assert r.exit_code == 0, r.output
    assert "quarantine: 1 folder(s) older than 7 day(s) deleted" in r.output
    assert not old.exists() and fresh.exists()
    r = _invoke("verify", "--store", str(store.root), "--prune-quarantine", "0")
    assert "quarantine: 1 folder(s)" in r.output and not fresh.exists()
    assert _invoke("verify", "--store", str(store.root), "--prune-quarantine", "-1").exit_code == 2


def test_verify_finds_the_project_store_and_flags_a_folder_without_ref(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".git").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RECUT_STORE", raising=False)
    monkeypatch.delenv("RECUT_ROOT", raising=False)
    r = _invoke("verify")
    assert r.exit_code == 0 and "nothing to check" in r.output, r.output  # a fresh project: no store yet
    assert _invoke("verify", "--store", str(tmp_path / "typo")).exit_code == 1
    store = Store(tmp_path / ".recut" / "store")
    _entry(store)
    assert _invoke("verify").exit_code == 0
    (store.final_dir("sample", KEY2)).mkdir(parents=True)  # a folder in an artifact's place, no ref.json
    r = _invoke("verify")
    assert r.exit_code == 1 and f"sample/{KEY2}: no ref.json" in r.output, r.output


# --------------------------------------------------------------------------- temp folders


def _age(p: Path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(p, (t, t))


def test_gc_tmp_keeps_fresh_and_live_writers_folders(tmp_path: Path) -> None:
    store = Store(tmp_path)
    mine = store.begin(KEY)  # this live process writes here, however old the folder looks
    _age(mine, A_DAY)
    old = store.tmp_root / f"{KEY}.otherhost.123.abcd"
    fresh = store.tmp_root / f"{KEY2}.otherhost.124.abcd"
    old.mkdir()
    fresh.mkdir()
    _age(old, A_DAY)
    quiet_dir_busy_file = store.tmp_root / f"{KEY2}.otherhost.125.abcd"
    quiet_dir_busy_file.mkdir()
    (quiet_dir_busy_file / "part.bin").write_bytes(b"x")  # written just now
    _age(quiet_dir_busy_file, A_DAY)
    assert store.gc_tmp() == 1
    assert sorted(p.name for p in store.tmp_root.iterdir()) == sorted([fresh.name, mine.name, quiet_dir_busy_file.name])


class _Frames(Engine):
    """A sample stage that writes two tiny frames; counts its runs."""

    name = "frames-for-store-tests"
    description = "writes frames.npy"
    params_model = dict  # type: ignore[assignment]
    stages: ClassVar[tuple[Stage, ...]] = (Stage("sample", "sample", "1", reads=("seed",)),)
    runs = 0

    def sample(self, ctx: StageContext) -> dict[str, Any]:
        type(self).runs += 1
        frames = np.full((2, 16, 16, 3), 40 * type(self).runs, dtype=np.uint8)
        np.save(ctx.out_dir / "frames.npy", frames)
        return {"fps": 4.0}


@pytest.fixture
def frames_engine(monkeypatch: pytest.MonkeyPatch) -> type[_Frames]:
    monkeypatch.setattr("recut.runner.engine_class", lambda method: _Frames)
    monkeypatch.setattr(_Frames, "runs", 0)
    return _Frames


def _job(store: Store) -> Job:
    return Job(
        method=_Frames.name, stage="sample", kind="sample", key=KEY, reads={"seed": 0}, store_root=str(store.root)
    )


def test_a_run_sweeps_old_temp_folders_but_not_fresh_ones(tmp_path: Path, frames_engine: type[_Frames]) -> None:
    store = Store(tmp_path)
    store.tmp_root.mkdir()
    killed = store.tmp_root / f"{KEY2}.otherhost.123.abcd"  # left empty by a killed run
    fresh = store.tmp_root / f"{KEY2}.otherhost.124.abcd"  # another process is writing right now
    killed.mkdir()
    fresh.mkdir()
    _age(killed, A_DAY)
    StageRunner().run(_job(store))
    assert frames_engine.runs == 1
    assert not killed.exists()
    assert fresh.exists()


def test_runner_recomputes_a_corrupted_cached_artifact(tmp_path: Path, frames_engine: type[_Frames]) -> None:
    store = Store(tmp_path)
    runner = StageRunner()
    first = runner.run(_job(store))
    assert frames_engine.runs == 1 and first.file("video.mp4").stat().st_size > 0
    assert runner.run(_job(store)).sha256 == first.sha256 and frames_engine.runs == 1  # a plain hit

    with open(first.file("video.mp4"), "r+b") as f:  # the case of the issue: a truncated video.mp4
        f.truncate(first.file("video.mp4").stat().st_size // 2)
    again = runner.run(_job(store))
    assert frames_engine.runs == 2  # recomputed, not served
    assert Store(tmp_path).get("sample", KEY, verify=True) is not None
    assert int(np.load(again.file("frames.npy"))[0, 0, 0, 0]) == 80  # the new frames, from run 2
    [rec] = runner.quarantined
    assert rec.key == KEY and "video.mp4" in rec.problems[0]
    assert len(_quarantined(store)) == 1


def test_a_full_disk_leaves_nothing_cached_and_says_so(
    tmp_path: Path, frames_engine: type[_Frames], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 26, section 4: ENOSPC while an artifact is written (here: while its video is encoded)."""
    import errno

    import recut.runner as runner_mod

    def full(*a: Any, **k: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(runner_mod, "finish_video", full)
    store = Store(tmp_path)
    with pytest.raises(OSError) as info:
        StageRunner().run(_job(store))
    assert info.value.errno == errno.ENOSPC and "no space left" in str(info.value) and "'sample'" in str(info.value)
    assert store.get("sample", KEY) is None  # nothing counts as cached
    assert not any(store.tmp_root.iterdir())  # and nothing half-written is left behind
