"""Toy ground-truth metrics: edit success, fidelity of what the edit leaves alone, trajectory error.

Outputs are built from the truth itself (the input scene re-rendered the way the
prompt describes it), so every expected value is known exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from engines.common.evaluation import EvalContext
from engines.common.metrics import METRICS, evaluate_all, psnr
from tests.conftest import Project
from toyworld import scene as toy
from toyworld.metrics import edited_region_from_truth, load_toy_truth, target_scene

TOY_NAMES = ["toy_edit_success", "toy_unedited_psnr", "toy_unedited_objects_kept", "toy_trajectory_error"]


def _scene(pan: str = "none", frames: int = 8) -> toy.ToyScene:
    return toy.ToyScene(
        objects=[
            toy.ToyObject(shape="circle", colour="red", motion="right", start=(0.3, 0.3)),
            toy.ToyObject(shape="square", colour="yellow", size="small", start=(0.75, 0.8)),
        ],
        background=toy.ToyBackground(kind="stripes", colour="blue"),
        camera_pan=pan,
        frames=frames,
        seed=5,
    )


def _pre(tmp_path: Path, scene: toy.ToyScene) -> tuple[Path, toy.ToyClip]:
    clip = toy.render(scene)
    toy.write_clip(clip, tmp_path / "pre")
    return tmp_path / "pre", clip


def _render_prompt(scene: toy.ToyScene, prompt: str) -> np.ndarray:
    return toy.render(target_scene(scene, toy.parse_caption(prompt))).frames


def _metrics(pre: Path, out: np.ndarray, prompt: str, trajectory=None, names=TOY_NAMES) -> dict:
    truth = load_toy_truth(pre)
    ref = np.load(pre / "frames.npy")
    return evaluate_all(names, EvalContext(out, ref, prompt, truth=truth, trajectory=trajectory))


EDITS = {
    "colour": ("red circle", "green circle"),
    "shape": ("red circle", "red square"),
    "motion": ("red circle moving right", "red circle moving down"),
}


@pytest.mark.parametrize("attr", sorted(EDITS))
def test_a_perfect_edit_succeeds_and_the_unedited_input_fails(tmp_path: Path, attr: str) -> None:
    scene = _scene()
    pre, clip = _pre(tmp_path, scene)
    old, new = EDITS[attr]
    prompt = clip.caption.replace(old, new)
    assert prompt != clip.caption
    perfect = _metrics(pre, _render_prompt(scene, prompt), prompt, {"path": "prompt"})
    assert perfect["toy_edit_success"] == 1.0
    assert perfect["toy_edit_colour"] == perfect["toy_edit_shape"] == perfect["toy_edit_motion"] == 1.0
    assert perfect["toy_unedited_psnr"] == 100.0  # nothing outside the circle's old and new places changed
    assert perfect["toy_unedited_objects_kept"] == 1.0  # the yellow square
    assert perfect["toy_trajectory_error"] < 1.0 and perfect["toy_trajectory_coverage"] == 1.0
    # the input itself: the edited attribute fails for one of the two named objects
    unedited = _metrics(pre, clip.frames, prompt)
    assert unedited["toy_edit_success"] == 0.0
    assert unedited[f"toy_edit_{attr}"] == 0.5
    assert unedited["toy_unedited_psnr"] == 100.0 and unedited["toy_unedited_objects_kept"] == 1.0
    if attr == "colour":  # the green circle is nowhere
        assert unedited["toy_edit_shape"] == unedited["toy_edit_motion"] == 0.5
        assert unedited["toy_trajectory_error"] == "n/a: the green circle is not found on any frame of the path"
        assert unedited["toy_trajectory_coverage"] == 0.0
    else:
        assert {unedited[f"toy_edit_{a}"] for a in ("colour", "shape", "motion") if a != attr} == {1.0}


def test_unedited_psnr_measures_outside_the_old_and_the_new_place(tmp_path: Path) -> None:
    scene = _scene()
    pre, clip = _pre(tmp_path, scene)
    prompt = clip.caption.replace("moving right", "moving down")
    target = toy.render(target_scene(scene, toy.parse_caption(prompt)))
    region = edited_region_from_truth(pre, prompt)
    assert region is not None
    # the edited region is the circle where it was and where the prompt puts it
    assert np.array_equal(region, clip.full_masks[:, 0] | target.full_masks[:, 0])
    assert not np.array_equal(clip.full_masks[:, 0], target.full_masks[:, 0])
    rng = np.random.default_rng(0)
    noise = rng.integers(-40, 41, size=clip.frames.shape)
    damaged_inside = target.frames.copy()
    damaged_inside[region] = np.clip(damaged_inside[region] + noise[region], 0, 255)
    assert _metrics(pre, damaged_inside, prompt, names=["toy_unedited_psnr"])["toy_unedited_psnr"] == 100.0
    damaged = np.clip(target.frames + noise, 0, 255).astype(np.uint8)
    got = _metrics(pre, damaged, prompt, names=["toy_unedited_psnr"])["toy_unedited_psnr"]
    import cv2

    margin = np.stack([cv2.dilate(f.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0 for f in region])
    assert got == pytest.approx(psnr(damaged, clip.frames, ~margin), abs=1e-9)
    assert 10 < got < 40


def test_an_object_the_prompt_leaves_alone_must_keep_its_attributes(tmp_path: Path) -> None:
    scene = _scene()
    pre, clip = _pre(tmp_path, scene)
    prompt = clip.caption.replace("red circle", "green circle")
    out = _render_prompt(scene, prompt)
    out[clip.masks[:, 1]] = toy.COLOURS["cyan"]  # the yellow square turns cyan: not asked for
    got = _metrics(pre, out, prompt)
    assert got["toy_unedited_objects_kept"] == 0.0
    assert got["toy_edit_success"] == 0.0 and got["toy_edit_colour"] == 0.5
    assert got["toy_unedited_psnr"] < 30  # the square is outside the edited region


def test_trajectory_error_against_truth_points_and_under_a_camera_pan(tmp_path: Path) -> None:
    scene = _scene(pan="left")
    pre, clip = _pre(tmp_path, scene)
    prompt = clip.caption.replace("red circle", "green circle")
    out = _render_prompt(scene, prompt)
    on_path = _metrics(pre, out, prompt, {"path": "truth"})
    assert on_path["toy_trajectory_error"] < 1.0 and on_path["toy_edit_motion"] == 1.0
    # the whole picture 4 px right and 3 px down: 5 px off the path
    shifted = np.roll(out, (3, 4), axis=(1, 2))
    off = _metrics(pre, shifted, prompt, {"path": "truth", "object": 0})
    assert off["toy_trajectory_error"] == pytest.approx(5.0, abs=0.3)
    # explicit image-space points: the truth track moved by (4, 3), nothing asked at frame 0
    points = [None] + [[float(x) + 4, float(y) + 3] for x, y in clip.tracks[0, 1:]]
    req = _metrics(pre, out, prompt, {"path": points})
    assert req["toy_trajectory_error"] == pytest.approx(5.0, abs=0.3)
    assert req["toy_trajectory_coverage"] == 1.0
    assert _metrics(pre, shifted, prompt, {"path": points})["toy_trajectory_error"] < 1.0
    # object 1 (the square, unchanged) sits on its own truth path
    assert _metrics(pre, out, prompt, {"path": "truth", "object": 1})["toy_trajectory_error"] < 1.0


def _stage_ctx(values: dict, inputs: dict, out_dir: Path):
    """A context whose values are checked as a planned stage's are (preprocess or evaluate, by its keys)."""
    from engines.common.stages import EVALUATE, PREPROCESS
    from recut.engine import StageContext, StageView

    stage = EVALUATE if "evaluate" in values else PREPROCESS
    out_dir.mkdir(parents=True)
    return StageContext(
        values=StageView(stage.name, values, stage.reads + stage.options), inputs=inputs, out_dir=out_dir
    )


def test_evaluate_stage_writes_toy_metrics_for_the_frames_the_run_used(tmp_path: Path) -> None:
    from engines.common.stages import evaluate, preprocess

    scene = _scene(pan="up", frames=12)
    frames_sel = {"start": 2, "count": 4, "stride": 2, "fps": None}
    inp = {"kind": "toy", "toy": scene.model_dump(mode="json"), "frames": frames_sel, "size": None, "media": []}
    pre = tmp_path / "pre"
    preprocess(_stage_ctx({"input": inp, "_media": []}, {}, pre))
    prompt = toy.caption(scene).replace("moving right", "moving down")
    idx = toy.frame_index(12, frames_sel)
    assert list(idx) == [2, 4, 6, 8]
    full = _render_prompt(scene, prompt)
    ev = {
        "metrics": [*TOY_NAMES, "lpips", "psnr"],
        "clip": None,
        "mask": "truth",
        "trajectory": {"object": None, "path": "prompt"},
        "lpips": "absent",
    }

    def run(sample_frames: np.ndarray, name: str) -> dict:
        sample = tmp_path / f"sample-{name}"
        sample.mkdir()
        np.save(sample / "frames.npy", sample_frames)
        values = {
            "evaluate": ev,
            "edit.prompt": prompt,
            "input.frames": frames_sel,
            "runtime.lpips_weights": None,
            "runtime.mask_file": None,
            "runtime.clip": None,
        }
        out = tmp_path / f"eval-{name}"
        meta = evaluate(_stage_ctx(values, {"preprocess": pre, "sample": sample}, out))
        assert meta["mask_source"] == "truth"
        return json.loads((out / "metrics.json").read_text())

    right = run(full[idx], "right")
    assert right["toy_edit_success"] == 1.0 and right["toy_unedited_psnr"] == 100.0
    assert right["toy_trajectory_error"] < 1.0
    assert right["lpips"].startswith("skipped: no LPIPS weights")
    assert set(right) == {"psnr", "lpips", *(k for n in TOY_NAMES for k in METRICS[n].reports)}
    # the same video at other scene frames is off the requested path
    wrong = run(full[:4], "wrong")
    assert wrong["toy_trajectory_error"] > 3.0


# --------------------------------------------------------------------------- specs, keys, CLI

TOY_SPEC = {
    "method": "sdedit",
    "input": {
        "toy": {
            "objects": [{"shape": "circle", "colour": "red", "motion": "right"}],
            "background": {"kind": "plain", "colour": "white"},
            "frames": 6,
        }
    },
    "model": {"profile": "tiny-random"},
    "params": {"strength": 0.5, "steps": 4},
    "edits": [{"name": "a", "prompt": "a green circle moving right over a plain white background"}],
    "evaluate": {"metrics": ["psnr", "toy_edit_success", "toy_trajectory_error"], "trajectory": {"path": "truth"}},
}


def _spec(project: Project, data: dict) -> Path:
    return project.spec(yaml.safe_dump(data, sort_keys=False))


def _issues(project: Project, data: dict) -> list[str]:
    from recut.spec import SpecError, load_spec

    try:
        load_spec(_spec(project, data))
    except SpecError as exc:
        return [str(i) for i in exc.issues]
    return []


def test_toy_metric_requests_are_validated(project: Project) -> None:
    assert _issues(project, TOY_SPEC) == []
    video = {**TOY_SPEC, "input": {"video": "media/clip.mp4"}, "evaluate": ["psnr", "toy_unedited_psnr"]}
    (msg,) = _issues(project, video)
    assert "edit.yaml:" in msg and "evaluate.1: metric 'toy_unedited_psnr' measures against a toy scene" in msg
    assert "`input.video`, not `input.toy`" in msg
    bad_prompt = {**TOY_SPEC, "edits": [{"name": "a", "prompt": "a green blob"}]}
    (msg,) = _issues(project, bad_prompt)
    assert "edits.0.prompt: toy metrics need a prompt in the toy caption grammar" in msg
    short = {**TOY_SPEC, "evaluate": {**TOY_SPEC["evaluate"], "trajectory": {"path": [[1, 2], [3, 4]]}}}
    (msg,) = _issues(project, short)
    assert "evaluate.trajectory.path: has 2 points, but the edit has 6 frames" in msg
    obj = {**TOY_SPEC, "evaluate": {**TOY_SPEC["evaluate"], "trajectory": {"object": 1}}}
    assert any(
        "evaluate.trajectory.object: is 1, but edits.0.prompt names 1 object(s)" in m for m in _issues(project, obj)
    )
    unused = {**TOY_SPEC, "evaluate": {"metrics": ["psnr"], "trajectory": {"path": "prompt"}}}
    (msg,) = _issues(project, unused)
    assert "evaluate.trajectory: is set, but `toy_trajectory_error` is not in evaluate.metrics" in msg
    empty = {**TOY_SPEC, "evaluate": {**TOY_SPEC["evaluate"], "trajectory": {"path": [None] * 6}}}
    (msg,) = _issues(project, empty)
    assert "evaluate.trajectory.path" in msg and "at least one [x, y] point" in msg
    nan = {**TOY_SPEC, "evaluate": {**TOY_SPEC["evaluate"], "trajectory": {"path": [[float("nan"), 1]] * 6}}}
    (msg,) = _issues(project, nan)
    assert "evaluate.trajectory.path: point 0: expected [x, y] (finite pixel coordinates) or null" in msg
    (msg,) = _issues(project, {**TOY_SPEC, "evaluate": {**TOY_SPEC["evaluate"], "trajectory": {"path": "nope"}}})
    assert "evaluate.trajectory.path: expected `truth`, `prompt` or a list of [x, y] points, got 'nope'" in msg
    (msg,) = _issues(project, {**TOY_SPEC, "evaluate": {"metrics": ["psnr"], "mask": "nope.npy"}})
    assert "evaluate.mask: file not found: 'nope.npy'" in msg  # one message, not one per form of `evaluate`


def test_cli_validate_names_the_field_of_a_toy_metric_on_a_video(project: Project) -> None:
    from typer.testing import CliRunner

    from recut.cli import app

    path = _spec(project, {**TOY_SPEC, "input": {"video": "media/clip.mp4"}, "evaluate": ["toy_edit_success"]})
    r = CliRunner().invoke(app, ["validate", str(path)])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "evaluate.0: metric 'toy_edit_success' measures against a toy scene's ground truth" in r.output


def _keys(project: Project, data: dict) -> dict[str, str]:
    from recut.plan import build_plan
    from recut.spec import load_spec

    plan = build_plan([load_spec(_spec(project, data))])
    return {n.stage.name: n.key for n in plan.ordered()}


def test_the_trajectory_request_and_lpips_weights_key_only_the_evaluate_stage(
    project: Project, tmp_path: Path, monkeypatch
) -> None:
    from engines.common.lpips import ENV_VAR
    from engines.common.stages import EVALUATE

    assert EVALUATE.version == "3" and "input.frames" in EVALUATE.reads
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "none.pth"))
    base = _keys(project, TOY_SPEC)
    moved = {**TOY_SPEC, "evaluate": {**TOY_SPEC["evaluate"], "trajectory": {"path": "prompt"}}}
    after = _keys(project, moved)
    assert {s for s in base if base[s] != after[s]} == {"evaluate"}
    with_lpips = {**TOY_SPEC, "evaluate": {**TOY_SPEC["evaluate"], "metrics": ["lpips", "toy_trajectory_error"]}}
    absent = _keys(project, with_lpips)
    (tmp_path / "alex.pth").write_bytes(b"weights v1")
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "alex.pth"))
    present = _keys(project, with_lpips)
    assert {s for s in absent if absent[s] != present[s]} == {"evaluate"}
    (tmp_path / "alex.pth").write_bytes(b"weights v2")
    assert _keys(project, with_lpips)["evaluate"] != present["evaluate"]  # by content, not by path
    # without lpips, the weights do not matter
    monkeypatch.delenv(ENV_VAR)
    assert _keys(project, TOY_SPEC) == base


def test_cli_lists_toy_metrics_and_prints_skipped_ones_with_the_reason() -> None:
    from typer.testing import CliRunner

    from recut.cli import app, metric_lines

    r = CliRunner().invoke(app, ["metrics"])
    assert r.exit_code == 0
    for name in [*TOY_NAMES, "lpips"]:
        assert f"{name}: " in r.stdout
    assert "also reports toy_edit_colour, toy_edit_shape, toy_edit_motion" in r.stdout
    lines = metric_lines({"psnr": 31.23456, "lpips": "skipped: no LPIPS weights on this machine", "ssim": 0.5})
    assert lines == ["psnr=31.23  ssim=0.5", "lpips: skipped: no LPIPS weights on this machine"]


def test_an_object_the_prompt_adds_is_judged_and_left_out_of_the_fidelity_region(tmp_path: Path) -> None:
    scene = toy.ToyScene(
        objects=[toy.ToyObject(shape="circle", colour="red", start=(0.3, 0.3))],
        background=toy.ToyBackground(kind="plain", colour="white"),
        frames=6,
    )
    pre, clip = _pre(tmp_path, scene)
    prompt = "a red circle and a blue square over a plain white background"
    assert _metrics(pre, clip.frames, prompt)["toy_edit_success"] == 0.0  # no blue square anywhere
    out = clip.frames.copy()
    out[:, 40:52, 40:52] = toy.COLOURS["blue"]  # a blue square appears where there was background
    got = _metrics(pre, out, prompt)
    assert got["toy_edit_success"] == 1.0 and got["toy_edit_motion"] == 1.0
    assert got["toy_unedited_psnr"] == 100.0  # the added square is not counted as damage
    assert got["toy_unedited_objects_kept"] == 1.0  # the red circle


def test_toy_metrics_reach_the_dashboard_table(monkeypatch) -> None:
    import prefect.artifacts

    from flows._graph import _publish

    rows: list = []
    monkeypatch.setattr(prefect.artifacts, "create_table_artifact", lambda table, **kw: rows.extend(table))
    metrics = {"toy_edit_success": 1.0, "toy_edit_colour": 1.0, "lpips": "skipped: no LPIPS weights on this machine"}
    _publish([{"spec": "/x/specs/a.yaml", "outputs": {"green": {"metrics": metrics, "files": {"mp4": "g.mp4"}}}}])
    (row,) = rows
    assert row["toy_edit_success"] == 1.0 and row["lpips"] == "skipped: no LPIPS weights on this machine"
