"""The README demo, end to end: the toy recolour spec must really recolour the circle.

Runs ``specs/examples/toy-recolour.yaml`` (per-frame SDEdit, toy models, a toy scene) through
the real CLI, Prefect flow and Ray actors in a throwaway project, then checks each edit against
the scene's ground truth: the circle has the prompt's colour, is still a circle, still moves
right along its input path, and the region the edit should leave alone is intact.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from recut.cli import app
from tests.conftest import REPO, Project

pytestmark = pytest.mark.slow

DEMO = REPO / "specs" / "examples" / "toy-recolour.yaml"


def test_demo_recolours_the_circle(project: Project, prefect_api: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECUT_STORE", str(project.store))
    spec = project.spec(DEMO.read_text().replace("$schema=../schema.json", ""), name="toy-recolour.yaml")
    result = CliRunner().invoke(app, ["run", str(spec), "--json", "--no-dvc"])
    assert result.exit_code == 0, result.output + str(result.exception)
    summary = json.loads(result.stdout)
    assert {s["stage"] for s in summary["stages"]} == {"preprocess", "sample", "evaluate"}
    metrics = json.loads((project.root / "outputs" / "toy-recolour" / "metrics.json").read_text())
    assert set(metrics) == {"green", "blue"}
    for name, m in metrics.items():
        # judged on pixels against the ground truth: colour, shape and motion of the named circle
        assert m["toy_edit_colour"] == 1 and m["toy_edit_shape"] == 1 and m["toy_edit_motion"] == 1, (name, m)
        assert m["toy_edit_success"] == 1, (name, m)
        # per-frame SDEdit redraws the circle a few pixels off its path (measured 19.4-19.7 dB, 3.0-5.6 px);
        # a frame regenerated from scratch or a circle gone astray falls far below these
        assert m["toy_unedited_psnr"] > 17, (name, m)
        assert m["toy_trajectory_error"] < 8, (name, m)


def test_unedited_input_fails_the_same_judges() -> None:
    """The judges are not trivially satisfied: the input itself (a red circle) is not an edit."""
    import numpy as np

    from toyworld import scene as toy
    from toyworld.judge import judge_caption

    scene = toy.ToyScene(
        objects=[toy.ToyObject(shape="circle", colour="red", size="large", motion="right")],
        background=toy.ToyBackground(kind="plain", colour="white"),
        frames=8,
        seed=3,
    )
    frames = toy.render(scene).frames
    assert judge_caption(frames, toy.caption(scene))[0]["all"]
    for colour in ("green", "blue"):
        verdict = judge_caption(frames, f"a large {colour} circle moving right over a plain white background")[0]
        assert not verdict["colour"] and not verdict["all"]
    assert np.asarray(frames).dtype == np.uint8
