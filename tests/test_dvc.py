"""DVC round trip: push, clone + plain `dvc pull` -> zero recomputation; checkout restores outputs;
two branches that ran different specs merge without a conflict; the older one-pointer layout is
converted.

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


def pointers(repo: Path) -> list[str]:
    return sorted(p.relative_to(repo).as_posix() for p in (repo / ".recut" / "store").rglob("*.dvc"))


def test_push_clone_pull_runs_fully_cached(repo: Path, tmp_path: Path, prefect_api: str, monkeypatch) -> None:
    (repo / "specs" / "never-run.yaml").write_text(SPEC.replace("a red square", "a green square"))
    first = recut_json(repo, monkeypatch, "run", "specs/edit.yaml")
    assert first["computed"] == 5
    assert first["dvc"].startswith("recorded 5 store entries and 1 output folder(s)")
    # one pointer per store entry and one per output folder; no stage per spec in dvc.yaml
    keys = {s["key"] for s in first["stages"]}
    assert {Path(p).stem for p in pointers(repo)} == keys
    assert (repo / "outputs" / "edit.dvc").exists()
    assert not (repo / ".recut" / "store.dvc").exists() and not (repo / "dvc.yaml").exists()
    # artifacts are not in git: only their DVC pointers are
    git(repo, "add", "-A")
    tracked = git(repo, "ls-files").split()
    assert set(pointers(repo)) <= set(tracked) and "outputs/edit.dvc" in tracked
    assert ".gitattributes" in tracked and ".recut/store/.gitignore" in tracked
    stray = [t for t in tracked if t.startswith((".recut/store/", "outputs/edit/")) and not t.endswith(".dvc")]
    assert stray and all(t.endswith(".gitignore") for t in stray)
    git(repo, "commit", "-qm", "first edit")
    dvc(repo, "push", "-q")

    clone = tmp_path / "clone"
    sh("git", "clone", "-q", str(repo), str(clone), cwd=tmp_path)
    dvc(clone, "pull")  # plain: exits 0 although specs/never-run.yaml never ran
    assert (clone / "outputs" / "edit" / "a.mp4").exists()
    planned = recut_json(clone, monkeypatch, "plan", "specs/edit.yaml")
    assert {s["status"] for s in planned["stages"]} == {"cached"}
    again = recut_json(clone, monkeypatch, "run", "specs/edit.yaml")
    assert again["computed"] == 0 and again["cached"] == 5
    assert (clone / "outputs" / "edit" / "a.mp4").read_bytes() == (repo / "outputs" / "edit" / "a.mp4").read_bytes()
    changed = git(clone, "status", "--porcelain").split("\n")
    assert not [c for c in changed if c.endswith((".dvc", ".gitignore", ".gitattributes"))]  # pointers unchanged


def test_checkout_restores_older_outputs(repo: Path, prefect_api: str, monkeypatch) -> None:
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
    shutil.rmtree(repo / "outputs" / "edit")
    dvc(repo, "checkout", "-q")
    assert (repo / "outputs" / "edit" / "b.mp4").read_bytes() == v2_b


def test_two_branches_that_ran_different_specs_merge_cleanly(repo: Path, prefect_api: str, monkeypatch) -> None:
    """Both specs share the preprocess entry (same video, same frames): each branch adds its
    pointer with the same bytes, and each adds its own sample/evaluate pointers and output folder."""
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    git(repo, "checkout", "-q", "-b", "alice")
    (repo / "specs" / "alice.yaml").write_text(SPEC.replace("a red square", "a cyan square"))
    recut_json(repo, monkeypatch, "run", "specs/alice.yaml")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "alice's edit")

    git(repo, "checkout", "-q", "main")
    git(repo, "checkout", "-q", "-b", "bob")
    shutil.rmtree(repo / ".recut" / "store")  # bob's machine: a store of his own
    (repo / "specs" / "bob.yaml").write_text(SPEC.replace("a blue square", "a gold square"))
    recut_json(repo, monkeypatch, "run", "specs/bob.yaml")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "bob's edit")

    git(repo, "merge", "-q", "--no-edit", "alice")  # sh() fails the test on a conflict
    assert not git(repo, "diff", "--name-only", "--diff-filter=U")
    dvc(repo, "checkout")
    assert (repo / "outputs" / "alice" / "a.mp4").exists() and (repo / "outputs" / "bob" / "b.mp4").exists()
    for name in ("alice", "bob"):
        planned = recut_json(repo, monkeypatch, "plan", f"specs/{name}.yaml")
        assert {s["status"] for s in planned["stages"]} == {"cached"}, name


def test_a_run_converts_the_older_single_pointer_layout(repo: Path, prefect_api: str, monkeypatch) -> None:
    """Before: `dvc add .recut/store` (one pointer) and a `recut-<spec>` stage in dvc.yaml whose out is
    the output folder. A run replaces both with the per-entry and per-folder pointers."""
    recut_json(repo, monkeypatch, "run", "specs/edit.yaml", "--no-dvc")
    (repo / "dvc.yaml").write_text(
        "stages:\n  recut-edit:\n    cmd: recut run specs/edit.yaml\n"
        "    deps: [specs/edit.yaml]\n    outs: [outputs/edit]\n"
    )
    dvc(repo, "add", "-q", ".recut/store")
    dvc(repo, "commit", "-q", "-f", "recut-edit")
    assert (repo / ".recut" / "store.dvc").exists()

    again = recut_json(repo, monkeypatch, "run", "specs/edit.yaml", "--force", "evaluate")
    assert again["computed"] == 2
    assert "converted the older layout" in again["dvc"]
    assert not (repo / ".recut" / "store.dvc").exists()
    assert not (repo / "dvc.yaml").exists()  # DVC drops a dvc.yaml whose last stage went
    assert len(pointers(repo)) == 5 and (repo / "outputs" / "edit.dvc").exists()
    old_ignore = repo / ".recut" / ".gitignore"  # DVC's line for the whole store is gone
    assert not old_ignore.exists() or "/store" not in old_ignore.read_text().split()
    assert "ok" in dvc(repo, "status") or "up to date" in dvc(repo, "status")
