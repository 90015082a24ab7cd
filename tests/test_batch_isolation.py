"""A batch isolates its failures (issue 26): when one spec or one edit fails at run time, the others in
the same `recut run` finish and write their outputs; the command exits 1 with a line per failed output
naming the spec, the output, the stage and the error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from recut.cli import app
from recut.runner import StageRunner
from tests.conftest import BASE_SPEC, Project


def _run(*args: str) -> Any:
    return CliRunner().invoke(app, ["run", *args, "--json", "--no-dvc"])


def _broken_model(root: Path) -> Path:
    """A model folder that exists and looks like a pipeline, but has no weights: validation cannot tell,
    loading fails at run time."""
    folder = root / "models" / "broken"
    folder.mkdir(parents=True)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    return folder


@pytest.mark.slow
def test_a_spec_bound_to_fail_does_not_sink_the_batch(project: Project, prefect_api: str, monkeypatch) -> None:
    monkeypatch.setenv("RECUT_STORE", str(project.store))
    good = project.spec(BASE_SPEC, "good.yaml")
    broken = _broken_model(project.root)
    bad = project.spec(BASE_SPEC.replace("{profile: tiny-random}", f"{{path: {broken}}}"), "bad.yaml")
    res = _run(str(good), str(bad))
    assert res.exit_code == 1, res.output
    summary = json.loads(res.stdout)
    # the good spec's outputs are all written
    for name in ("a", "b"):
        assert (project.root / "outputs" / "good" / f"{name}.mp4").exists()
    assert set(json.loads((project.root / "outputs" / "good" / "metrics.json").read_text())) == {"a", "b"}
    # the bad one's edits failed at their sample stage, with a reason naming the spec and stage
    failed = {(Path(f["spec"]).name, f["output"]): f for f in summary["failed"]}
    assert set(failed) == {("bad.yaml", "a"), ("bad.yaml", "b")}
    assert {f["stage"] for f in failed.values()} == {"sample"}
    assert all("bad.yaml" in f["error"] and "'sample'" in f["error"] for f in failed.values())
    assert "FAILED bad.yaml [a]: stage sample" in res.stderr
    assert not (project.root / "outputs" / "bad" / "a.mp4").exists()


class _FailingPool:
    """The in-process runner, with a fault injected into one edit's sample (as a worker would raise it)."""

    def __init__(self, fail_prompt: str):
        self.runner = StageRunner()
        self.fail_prompt = fail_prompt

    def warm(self, methods: list[str]) -> None:
        pass

    def run(self, job: Any, on_progress: Any = None) -> Any:
        if job.stage == "sample" and job.reads.get("edit.prompt") == self.fail_prompt:
            raise RuntimeError("injected fault: CUDA out of memory")
        return self.runner.run(job, lambda i, n: on_progress(job.key, i, n) if on_progress else None)


@pytest.mark.slow
def test_one_failing_edit_leaves_the_other_edits_of_its_spec(project: Project, prefect_api: str, monkeypatch) -> None:
    monkeypatch.setenv("RECUT_STORE", str(project.store))
    monkeypatch.setattr("recut.workers.get_pool", lambda: _FailingPool("a blue square"))
    spec = project.spec(BASE_SPEC, "edit.yaml")
    res = _run(str(spec))
    assert res.exit_code == 1, res.output
    summary = json.loads(res.stdout)
    (f,) = summary["failed"]
    assert (f["output"], f["stage"]) == ("b", "sample") and "injected fault" in f["error"]
    assert "edit.yaml [b]" in f["error"]
    out = project.root / "outputs" / "edit"
    assert (out / "a.mp4").exists() and not (out / "b.mp4").exists()
    # evaluate[b] did not run; the summary on disk lists the failure too
    assert {s["stage"] for s in summary["stages"] if "b" in s["outputs"] and s["stage"] != "preprocess"} == set()
    assert json.loads((out / "summary.json").read_text())["failed"][0]["output"] == "b"
    # a rerun without the fault computes only what failed
    monkeypatch.setattr("recut.workers.get_pool", lambda: _FailingPool("never"))
    res = _run(str(spec))
    assert res.exit_code == 0, res.output
    again = json.loads(res.stdout)
    assert {(s["stage"], tuple(s["outputs"])) for s in again["stages"] if s["status"] == "computed"} == {
        ("sample", ("b",)),
        ("evaluate", ("b",)),
    }
