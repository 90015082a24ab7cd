"""DVC round trip: push, clone + pull -> zero recomputation; checkout restores outputs; repro.

A real git + DVC repo in a temp folder, with a local directory remote.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from recut.cli import app
from recut.video import make_test_video

pytestmark = pytest.mark.slow

SPEC = """\
method: sdedit
input:
  video: ../media/clip.mp4
  frames: {count: 4}
model: {profile: tiny-random}
params: {strength: 0.5, steps: 3}
edits:
  - {name: a, prompt: a red square}
  - {name: b, prompt: a blue square}
"""


def sh(*cmd: str, cwd: Path) -> str:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{res.stdout}\n{res.stderr}"
    return res.stdout


def git(repo: Path, *args: str) -> str:
    return sh("git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args, cwd=repo)


def dvc(repo: Path, *args: str) -> str:
    return sh(sys.executable, "-m", "dvc", *args, cwd=repo)


def recut_json(repo: Path, monkeypatch, *args: str) -> dict:
    monkeypatch.chdir(repo)
    monkeypatch.delenv("RECUT_STORE", raising=False)
    res = CliRunner().invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output + str(res.exception)
    return json.loads(res.stdout)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "project"
    (repo / "specs").mkdir(parents=True)
    (repo / "media").mkdir()
    make_test_video(repo / "media" / "clip.mp4", frames=8, width=32, height=32)
    (repo / "specs" / "edit.yaml").write_text(SPEC)
    git(repo, "init", "-q", "-b", "main")
    dvc(repo, "init", "-q")
    dvc(repo, "config", "core.analytics", "false")
    dvc(repo, "remote", "add", "-d", "local", str(tmp_path / "remote"))
    return repo


def test_push_clone_pull_runs_fully_cached(repo: Path, tmp_path: Path, prefect_api: str, monkeypatch) -> None:
    first = recut_json(repo, monkeypatch, "run", "specs/edit.yaml")
    assert first["computed"] == 5
    assert first["dvc"].startswith("recorded")
    assert (repo / ".recut" / "store.dvc").exists()
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    assert stages["recut-edit"]["cmd"] == "recut run specs/edit.yaml"
    assert stages["recut-edit"]["outs"] == ["outputs/edit"]
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert lock["stages"]["recut-edit"]["outs"][0]["path"] == "outputs/edit"
    # artifacts are not in git: only their DVC pointers are
    git(repo, "add", "-A")
    tracked = git(repo, "ls-files").split()
    assert ".recut/store.dvc" in tracked and "dvc.lock" in tracked
    assert not [t for t in tracked if t.startswith(".recut/store/") or t.startswith("outputs/edit/")]
    git(repo, "commit", "-qm", "first edit")
    dvc(repo, "push", "-q")

    clone = tmp_path / "clone"
    sh("git", "clone", "-q", str(repo), str(clone), cwd=tmp_path)
    dvc(clone, "pull", "-q")
    assert (clone / "outputs" / "edit" / "a.mp4").exists()
    planned = recut_json(clone, monkeypatch, "plan", "specs/edit.yaml")
    assert {s["status"] for s in planned["stages"]} == {"cached"}
    again = recut_json(clone, monkeypatch, "run", "specs/edit.yaml")
    assert again["computed"] == 0 and again["cached"] == 5
    assert (clone / "outputs" / "edit" / "a.mp4").read_bytes() == (repo / "outputs" / "edit" / "a.mp4").read_bytes()


def test_checkout_restores_older_outputs_and_repro_works(repo: Path, prefect_api: str, monkeypatch) -> None:
    recut_json(repo, monkeypatch, "run", "specs/edit.yaml")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "v1")
    v1_b = (repo / "outputs" / "edit" / "b.mp4").read_bytes()

    spec = repo / "specs" / "edit.yaml"
    spec.write_text(SPEC.replace("a blue square", "a pink square"))
    second = recut_json(repo, monkeypatch, "run", "specs/edit.yaml")
    assert second["computed"] == 2
    v2_b = (repo / "outputs" / "edit" / "b.mp4").read_bytes()
    assert v2_b != v1_b
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "v2")

    git(repo, "checkout", "-q", "HEAD~1")
    dvc(repo, "checkout", "-q")
    assert (repo / "outputs" / "edit" / "b.mp4").read_bytes() == v1_b
    git(repo, "checkout", "-q", "main")
    dvc(repo, "checkout", "-q")
    assert (repo / "outputs" / "edit" / "b.mp4").read_bytes() == v2_b

    # dvc repro: the stage's cmd is `recut run`; everything is in the store already
    spec.write_text(SPEC.replace("a blue square", "a pink square") + "# touched\n")
    out = dvc(repo, "repro", "recut-edit")
    assert "recut-edit" in out
    assert "up to date" in dvc(repo, "status")
    shutil.rmtree(repo / "outputs" / "edit")
    dvc(repo, "checkout", "-q")
    assert (repo / "outputs" / "edit" / "b.mp4").read_bytes() == v2_b
