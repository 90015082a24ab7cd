"""`recut zoo train` (the `recut-train` flow): a model replaces its folder only when it meets its
quality bar, and a swap cut short by a kill is repaired."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from recut.cli import app
from recut.store import recover_folder, swap_in_folder
from toyworld.zoo import recipes


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    """A recipe ``fake`` whose trainings write ``version.txt`` = 1, 2, ... and whose check passes
    the versions listed in ``state["passing"]``."""
    state: dict[str, Any] = {"trained": 0, "passing": set(), "checked": []}

    def train(out: str | Path, quick: bool = False, seed: int = 0, threads: int = 1) -> dict[str, Any]:
        state["trained"] += 1
        Path(out).mkdir(parents=True)
        (Path(out) / "version.txt").write_text(str(state["trained"]))
        return {"recipe": "fake", "quick": quick}

    def check(folder: str | Path) -> dict[str, Any]:
        version = int((Path(folder) / "version.txt").read_text())
        state["checked"].append(Path(folder).name)
        return {"version": version, "passed": version in state["passing"]}

    monkeypatch.setitem(recipes.RECIPES, "fake", recipes.Recipe(train, tmp_path / "unused", "a fake", (), check))
    return state


def _version(folder: Path) -> str:
    return (folder / "version.txt").read_text()


def test_a_model_below_its_bar_does_not_replace_the_folder(prefect_api, fake, tmp_path: Path) -> None:
    runner = CliRunner()
    root = tmp_path / "zoo"
    (root / "fake").mkdir(parents=True)
    (root / "fake" / "version.txt").write_text("committed")

    r = runner.invoke(app, ["zoo", "train", "fake", "--out", str(root)])
    assert r.exit_code == 1, r.output
    assert f"fake: below its quality bar; {root / 'fake'} is unchanged" in r.stderr
    assert "Traceback" not in r.output
    assert _version(root / "fake") == "committed"
    assert _version(root / "fake.below-bar") == "1"
    assert fake["checked"] == ["fake.training"]  # judged before it could replace anything

    fake["passing"] = {2}
    r = runner.invoke(app, ["zoo", "train", "fake", "--out", str(root)])
    assert r.exit_code == 0, r.output
    assert _version(root / "fake") == "2"
    assert sorted(p.name for p in root.iterdir()) == ["fake"]  # no staging, aside or rejected folder

    fake["passing"] = set()  # quick (smoke) trainings are not judged
    r = runner.invoke(app, ["zoo", "train", "fake", "--quick", "--out", str(root)])
    assert r.exit_code == 0, r.output
    assert _version(root / "fake") == "3" and fake["checked"] == ["fake.training"] * 2


def test_a_training_that_fails_prints_one_line_and_keeps_the_folder(
    prefect_api, fake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(out: str | Path, **_: Any) -> dict[str, Any]:
        Path(out).mkdir(parents=True)
        raise ValueError("scene renderer ran out of colours")

    monkeypatch.setitem(recipes.RECIPES, "fake", recipes.Recipe(broken, tmp_path / "unused", "a fake", ()))
    # the CLI's own setting (recut.prefect_env: Prefect logs only CRITICAL); the tests' conftest is louder
    monkeypatch.setattr(logging.getLogger("prefect"), "level", logging.CRITICAL)
    root = tmp_path / "zoo"
    (root / "fake").mkdir(parents=True)
    (root / "fake" / "version.txt").write_text("committed")
    r = CliRunner().invoke(app, ["zoo", "train", "fake", "--out", str(root)])
    assert r.exit_code == 1, r.output
    assert "error: ValueError: scene renderer ran out of colours" in r.stderr
    assert "Traceback" not in r.output
    assert _version(root / "fake") == "committed"


def test_a_swap_killed_half_way_is_repaired(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target, staging = tmp_path / "depth", tmp_path / "depth.training"
    for folder, text in ((target, "old"), (staging, "new")):
        folder.mkdir()
        (folder / "version.txt").write_text(text)
    real_rename = os.rename
    calls: list[str] = []

    def killed_after_first_rename(src: Any, dst: Any) -> None:
        calls.append(Path(dst).name)
        if len(calls) > 1:
            raise KeyboardInterrupt  # the kill: the old folder is aside, the new one not yet in place
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", killed_after_first_rename)
    with pytest.raises(KeyboardInterrupt):
        swap_in_folder(staging, target)
    monkeypatch.setattr(os, "rename", real_rename)
    assert not target.exists() and _version(tmp_path / "depth.replaced") == "old"

    recover_folder(target)  # what the next training does first
    assert _version(target) == "old" and not (tmp_path / "depth.replaced").exists()
    swap_in_folder(staging, target)
    assert _version(target) == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["depth"]
    # a leftover old copy beside a whole target is dropped
    (tmp_path / "depth.replaced").mkdir()
    recover_folder(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["depth"]
