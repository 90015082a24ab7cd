"""The `recut` command line (typer app), without running any flow."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recut.cli import app
from recut.video import make_test_video

SPEC = """\
name: cli test
method: sdedit
input:
  video: ../media/clip.mp4
  frames: {count: 8}
  size: {width: 64, height: 64}
model:
  profile: tiny-random
params:
  strength: 0.6
  steps: 10
edits:
  - name: red
    prompt: a red square
  - name: blue
    prompt: a blue square
  - name: green-strong
    prompt: a green square
    params: {strength: 0.8}
  - name: video-variant
    prompt: a yellow square
    params: {variant: video}
evaluate: [psnr, ssim, temporal_l1]
"""

BAD = SPEC.replace("strength: 0.6", "strength: 1.5")  # line 10
BAD_LINE = "specs/bad.yaml:10: params.strength: "


@pytest.fixture(autouse=True)
def _env(monkeypatch, tmp_path):
    monkeypatch.delenv("RECUT_ROOT", raising=False)
    monkeypatch.delenv("RECUT_DEBUG", raising=False)
    monkeypatch.setenv("RECUT_STORE", str(tmp_path / "store"))


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_test_video(tmp_path_factory.mktemp("clip") / "clip.mp4", frames=8)


@pytest.fixture
def project(tmp_path, clip, monkeypatch) -> Path:
    root = tmp_path / "proj"
    (root / ".git").mkdir(parents=True)
    (root / "media").mkdir()
    (root / "specs").mkdir()
    shutil.copy(clip, root / "media" / "clip.mp4")
    (root / "specs" / "good.yaml").write_text(SPEC)
    (root / "specs" / "bad.yaml").write_text(BAD)
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()  # click >= 8.2: result.stderr is separate, result.output has both


def invoke(runner: CliRunner, *args: str):
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output
    if result.exception is not None:
        assert isinstance(result.exception, SystemExit), repr(result.exception)
    return result


# ------------------------------------------------------------------ validate


def test_validate_ok(runner, project):
    r = invoke(runner, "validate", "specs/good.yaml")
    assert r.exit_code == 0, r.output
    assert "ok  specs/good.yaml  (sdedit, 4 edit(s), 4 output(s))" in r.stdout
    assert r.stderr == ""


def test_validate_counts_sweep_outputs(runner, project):
    (project / "specs" / "sweep.yaml").write_text(SPEC + "sweep:\n  seed: [0, 1, 2]\n")
    r = invoke(runner, "validate", "specs/sweep.yaml")
    assert r.exit_code == 0, r.output
    assert "(sdedit, 4 edit(s), 12 output(s))" in r.stdout


def test_validate_bad_exits_2_with_issue_line(runner, project):
    r = invoke(runner, "validate", "specs/bad.yaml")
    assert r.exit_code == 2
    lines = r.stderr.splitlines()
    assert lines[0].startswith(BAD_LINE)
    assert "less than or equal to 1" in lines[0]
    assert "1 problem found; nothing was run." in r.stderr
    assert "ok " not in r.stdout


def test_validate_reports_every_file(runner, project):
    (project / "specs" / "bad2.yaml").write_text(SPEC + "colour: red\n")
    r = invoke(runner, "validate", "specs/bad.yaml", "specs/good.yaml", "specs/bad2.yaml")
    assert r.exit_code == 2
    assert BAD_LINE in r.stderr
    assert f"specs/bad2.yaml:{SPEC.count(chr(10)) + 1}: colour: unknown field" in r.stderr
    assert "2 problems found; nothing was run." in r.stderr


def test_validate_missing_file(runner, project):
    r = invoke(runner, "validate", "specs/nope.yaml")
    assert r.exit_code == 2
    assert "specs/nope.yaml: spec file not found" in r.stderr


# ------------------------------------------------------------------ run (invalid only)


def test_run_bad_spec_exits_2_before_anything(runner, project, tmp_path):
    r = invoke(runner, "run", "specs/bad.yaml")
    assert r.exit_code == 2
    assert BAD_LINE in r.stderr
    assert "nothing was run" in r.stderr
    assert "prefect:" not in r.output  # exited before configuring Prefect
    assert not (tmp_path / "store").exists()
    assert not (project / ".recut").exists()
    assert not (project / "outputs").exists()


def test_run_bad_force_never_reached(runner, project, tmp_path):
    # validation comes first even with other options
    r = invoke(runner, "run", "--json", "--force", "sample", "specs/bad.yaml")
    assert r.exit_code == 2
    assert r.stdout == ""
    assert not (tmp_path / "store").exists()


# ------------------------------------------------------------------ plan


def test_plan_table(runner, project, tmp_path):
    r = invoke(runner, "plan", "specs/good.yaml")
    assert r.exit_code == 0, r.output
    for word in ("preprocess", "sample", "evaluate", "to compute"):
        assert word in r.stdout
    assert "cached" not in r.stdout.replace("0 cached", "")
    assert "0 cached, 9 to compute" in r.stdout
    assert not (tmp_path / "store").exists()  # plan computes and writes nothing


def test_plan_json_shares_preprocess(runner, project, tmp_path):
    r = invoke(runner, "plan", "--json", "specs/good.yaml")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["store"] == str((tmp_path / "store").resolve())
    stages = data["stages"]
    assert Counter(s["stage"] for s in stages) == {"preprocess": 1, "sample": 4, "evaluate": 4}
    assert all(s["status"] == "to compute" for s in stages)
    assert len({s["key"] for s in stages}) == len(stages)

    (pre,) = [s for s in stages if s["stage"] == "preprocess"]
    assert pre["after"] == []
    assert len(pre["outputs"]) == 4  # used by every edit
    samples = [s for s in stages if s["stage"] == "sample"]
    assert all(s["after"] == [pre["key"]] for s in samples)
    assert all(len(s["outputs"]) == 1 for s in samples)
    sample_keys = {s["key"] for s in samples}
    evals = [s for s in stages if s["stage"] == "evaluate"]
    assert all(set(e["after"]) & sample_keys for e in evals)
    assert len({k for e in evals for k in e["after"] if k in sample_keys}) == 4


def test_plan_force_marks_downstream(runner, project):
    r = invoke(runner, "plan", "--json", "--force", "sample", "specs/good.yaml")
    assert r.exit_code == 0, r.output
    status = {(s["stage"], s["status"]) for s in json.loads(r.stdout)["stages"]}
    assert status == {("preprocess", "to compute"), ("sample", "forced"), ("evaluate", "forced")}


def test_plan_force_unknown_stage(runner, project):
    r = invoke(runner, "plan", "--force", "nosuchstage", "specs/good.yaml")
    assert r.exit_code == 2
    assert "--force 'nosuchstage'" in r.stderr
    assert "preprocess, sample, evaluate" in r.stderr
    assert r.stdout == ""


def test_plan_bad_spec(runner, project):
    r = invoke(runner, "plan", "specs/bad.yaml")
    assert r.exit_code == 2
    assert BAD_LINE in r.stderr


# ------------------------------------------------------------------ misc commands


def test_schema_out(runner, project, tmp_path):
    out = tmp_path / "tmp" / "schema.json"
    r = invoke(runner, "schema", "--out", str(out))
    assert r.exit_code == 0, r.output
    assert f"wrote {out}" in r.stdout
    schema = json.loads(out.read_text())
    assert schema["discriminator"]["propertyName"] == "method"
    assert "SDEditSpec" in schema["$defs"]


def test_methods(runner):
    r = invoke(runner, "methods")
    assert r.exit_code == 0, r.output
    assert "sdedit:" in r.stdout
    assert "stages: preprocess -> sample -> evaluate" in r.stdout


def test_profiles(runner):
    r = invoke(runner, "profiles")
    assert r.exit_code == 0, r.output
    assert "tiny-random (in repo)" in r.stdout
    assert "sd15 (hub id, local cache only)" in r.stdout


def test_metrics(runner):
    r = invoke(runner, "metrics")
    assert r.exit_code == 0, r.output
    names = {line.split(":")[0] for line in r.stdout.splitlines() if ":" in line}
    assert {"psnr", "ssim", "temporal_l1"} <= names


def test_no_args_shows_help(runner):
    r = runner.invoke(app, [])
    assert r.exit_code in (0, 2)
    for cmd in ("validate", "plan", "run", "schema", "methods", "profiles", "metrics"):
        assert cmd in r.output
