"""The revideo engine: its edit inputs as pure functions (areas, first frame, tracks, motion maps,
windows, seams), validation that names the field, and the engine end to end on tiny-random (outputs,
sliding windows, caching, the control switch)."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from engines.common.tracks import Tracks
from engines.revideo.editing import (
    area_mask,
    area_tracks,
    condition_maps,
    first_frame,
    seam_figures,
    windows,
)
from recut.cli import app
from recut.models import REPO_ROOT
from recut.plan import build_plan
from recut.runner import StageRunner, run_plan
from recut.spec import load_spec
from recut.store import Store
from tests.conftest import Project

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models on 2 shared cores: one thread is ~100x faster

EXAMPLES = sorted((REPO_ROOT / "specs" / "examples").glob("revideo-*.yaml"))

#: 32x32 frames (tiny-random's model needs multiples of 8), 8 frames (tiny-random's UNet makes 4 at a time).
BASE: dict[str, Any] = yaml.safe_load("""\
method: revideo
input:
  toy:
    objects:
      - {shape: circle, colour: red, size: small, motion: right, start: [0.25, 0.5]}
    background: {kind: plain, colour: white}
    frames: 8
    width: 32
    height: 32
    seed: 3
model: {profile: tiny-random}
seed: 0
params:
  steps: 2
  areas:
    - mask: {box: [0, 4, 16, 28]}
      motion: trajectory
      trajectory: [[0, 6, 16], [7, 13, 16]]
edits:
  - {name: a}
evaluate: [psnr]
""")


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _spec(project: Project, over: dict[str, Any] | None = None, name: str = "edit.yaml") -> Path:
    return project.spec(yaml.safe_dump(_merge(BASE, over or {}), sort_keys=False), name=name)


# --------------------------------------------------------------------------- windows and seams


def test_windows_cover_the_clip_sharing_overlap_frames() -> None:
    assert windows(24, 8, 1) == [(0, 8), (7, 15), (14, 22), (21, 24)]
    assert windows(8, 8, 1) == [(0, 8)]
    assert windows(5, 8, 1) == [(0, 5)]
    assert windows(10, 4, 2) == [(0, 4), (2, 6), (4, 8), (6, 10)]
    for total, size, overlap in [(24, 8, 1), (9, 4, 1), (8, 4, 1), (13, 5, 3), (100, 14, 4)]:
        spans = windows(total, size, overlap)
        assert spans[0][0] == 0 and spans[-1][1] == total
        for (_, b0), (a1, b1) in itertools.pairwise(spans):
            assert a1 == b0 - overlap and b1 - a1 <= size
        assert spans[-1][1] - spans[-1][0] >= overlap + 1  # the last window makes a new frame
    for size, overlap in [(8, 8), (8, 9), (4, 0), (1, 1)]:
        with pytest.raises(ValueError, match="overlap"):
            windows(24, size, overlap)


def test_the_seam_figure_sees_a_jump_at_a_window_border() -> None:
    spans = windows(24, 8, 1)  # borders: frames 7 -> 8, 14 -> 15, 21 -> 22
    smooth = np.broadcast_to(np.arange(24, dtype=np.float32)[:, None, None, None] * 4, (24, 4, 4, 3))
    figs = seam_figures(smooth.astype(np.uint8), spans, 1)
    assert figs["seam_ratio"] == pytest.approx(1.0) and figs["seam_diff"] == pytest.approx(4.0)
    jumpy = smooth.copy()
    for start, _ in spans[1:]:
        jumpy[start + 1 :] += 20  # a jump between the shared frame and the first new one
    figs = seam_figures(jumpy.astype(np.uint8), spans, 1)
    assert figs["seam_diff"] == pytest.approx(24.0) and figs["inner_diff"] == pytest.approx(4.0)
    assert figs["seam_ratio"] > 1 and figs["seam_ratio"] == pytest.approx(6.0)
    # a jump inside a window is not a seam
    inner = smooth.copy()
    inner[4:] += 20
    assert seam_figures(inner.astype(np.uint8), spans, 1)["seam_ratio"] < 1
    assert seam_figures(smooth.astype(np.uint8), [(0, 24)], 1) == {}  # one window: no seam


# --------------------------------------------------------------------------- areas


SHAPE = (4, 32, 32)


def test_area_masks_from_a_box_and_a_polygon(tmp_path: Path) -> None:
    box = area_mask({"box": [4, 8, 12, 20]}, None, tmp_path, SHAPE)
    assert box.shape == SHAPE and box.dtype == bool
    want = np.zeros((32, 32), bool)
    want[8:20, 4:12] = True
    assert all(np.array_equal(m, want) for m in box)
    poly = area_mask({"polygon": [[4, 4], [20, 4], [20, 20], [4, 20]]}, None, tmp_path, SHAPE)
    assert poly.shape == SHAPE and (poly == poly[0]).all()
    assert poly[0, 12, 12] and poly[0, 4, 4] and poly[0, 20, 20] and not poly[0, 0, 0] and not poly[0, 25, 12]
    tri = area_mask({"polygon": [[0, 0], [31, 0], [0, 31]]}, None, tmp_path, SHAPE)
    assert tri[0, 2, 2] and not tri[0, 30, 30]


def test_area_masks_from_a_file(tmp_path: Path) -> None:
    flat = np.zeros((32, 32), bool)
    flat[5:9, 10:30] = True
    np.save(tmp_path / "flat.npy", flat)
    got = area_mask({"file": "flat.npy"}, str(tmp_path / "flat.npy"), tmp_path, SHAPE)
    assert got.shape == SHAPE and all(np.array_equal(m, flat) for m in got)
    moving = np.zeros(SHAPE, np.uint8)  # any dtype, read as bools; each frame its own
    for f in range(4):
        moving[f, 10:14, 4 * f : 4 * f + 6] = 1
    np.save(tmp_path / "moving.npy", moving)
    got = area_mask({"file": "moving.npy"}, str(tmp_path / "moving.npy"), tmp_path, SHAPE)
    assert got.dtype == bool and np.array_equal(got, moving.astype(bool))
    np.save(tmp_path / "small.npy", np.ones((16, 16), bool))
    with pytest.raises(ValueError, match=r"\[4, 16, 16\].*\[4, 32, 32\]"):
        area_mask({"file": "small.npy"}, str(tmp_path / "small.npy"), tmp_path, SHAPE)
    np.save(tmp_path / "long.npy", np.ones((6, 32, 32), bool))
    with pytest.raises(ValueError, match=r"\[6, 32, 32\].*\[4, 32, 32\]"):
        area_mask({"file": "long.npy"}, str(tmp_path / "long.npy"), tmp_path, SHAPE)
    with pytest.raises(ValueError, match=r"mask\.file"):
        area_mask({"file": "flat.npy"}, None, tmp_path, SHAPE)


def test_dilate_grows_the_area(tmp_path: Path) -> None:
    plain = area_mask({"box": [12, 12, 20, 20]}, None, tmp_path, SHAPE)
    grown = area_mask({"box": [12, 12, 20, 20], "dilate": 3}, None, tmp_path, SHAPE)
    assert (grown | plain).sum() == grown.sum() > plain.sum()  # contains it, and more
    assert grown[0, 16, 9] and not plain[0, 16, 9] and not grown[0, 16, 8]  # 3 px to the left, not 4
    assert np.array_equal(area_mask({"box": [12, 12, 20, 20], "dilate": 0}, None, tmp_path, SHAPE), plain)


def test_a_truth_area_is_the_objects_trail(tmp_path: Path) -> None:
    from toyworld import scene as toy

    scene = toy.ToyScene.model_validate(BASE["input"]["toy"])
    clip = toy.render(scene)
    toy.write_clip(clip, tmp_path)
    got = area_mask({"truth": 0}, None, tmp_path, (8, 32, 32))
    trail = clip.full_masks[:, 0].any(0)
    assert all(np.array_equal(m, trail) for m in got)
    assert (clip.full_masks[:, 0] <= got).all()  # every frame's object is inside
    with pytest.raises(ValueError, match="1 object"):
        area_mask({"truth": 1}, None, tmp_path, (8, 32, 32))


def test_the_first_frame_takes_content_only_inside_its_area() -> None:
    frame0 = np.full((32, 32, 3), 10, np.uint8)
    masks = np.zeros((3, 4, 32, 32), bool)
    masks[0, 0, 0:8, 0:8] = True
    masks[0, 1:, 20:, 20:] = True  # later frames of an area do not paste
    masks[1, :, 10:14, 10:14] = True  # no content: stays
    masks[2, 0, 24:28, 0:4] = True
    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = 255
    blue = np.zeros((32, 32, 3), np.uint8)
    blue[..., 2] = 255
    out = first_frame(frame0, masks, [red, None, blue])
    assert (frame0 == 10).all()  # not changed in place
    assert (out[0:8, 0:8] == [255, 0, 0]).all() and (out[24:28, 0:4] == [0, 0, 255]).all()
    pasted = masks[0, 0] | masks[2, 0]
    assert (out[~pasted] == 10).all()
    assert np.array_equal(first_frame(frame0, masks, [None, None, None]), frame0)
    with pytest.raises(ValueError):
        first_frame(frame0, masks, [red, None])


# --------------------------------------------------------------------------- tracks and motion maps


def _grid_tracks() -> Tracks:
    """Points on a 4-px grid of a 32x32 clip of 8 frames; left half (x < 16) moves right at a speed
    growing with y, right half moves further (so a track outside the area is never the longest)."""
    ys, xs = np.mgrid[2:32:4, 2:32:4]
    start = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32)
    speed = np.where(start[:, 0] < 16, 0.1 + start[:, 1] / 16, 3.0).astype(np.float32)
    t = np.arange(8, dtype=np.float32)
    points = np.repeat(start[:, None], 8, axis=1)
    points[:, :, 0] += speed[:, None] * t[None]
    return Tracks(points, np.ones((len(start), 8), bool))


def test_keep_takes_tracks_that_start_inside_the_area() -> None:
    grid = _grid_tracks()
    mask = np.zeros((8, 32, 32), bool)
    mask[:, :, :16] = True
    mask[1:, :, 16:] = True  # only frame 0 decides where a track starts
    starts = {tuple(p) for p in grid.points[:, 0].tolist()}
    counts = set()
    for seed in range(8):
        got = area_tracks({"motion": "keep"}, mask, grid, np.random.default_rng(seed), max_tracks=3)
        assert got is not None and 1 <= len(got) <= 3
        assert (got.points[:, 0, 0] < 16).all()
        assert {tuple(p) for p in got.points[:, 0].tolist()} <= starts
        counts.add(len(got))
    assert len(counts) > 1  # N is drawn in 1..max_tracks
    many = area_tracks({"motion": "keep"}, mask, grid, np.random.default_rng(0), max_tracks=1000)
    assert many is not None and len(many) <= int((grid.points[:, 0, 0] < 16).sum())
    # an area with no track starting in it gets none
    empty = np.zeros((8, 32, 32), bool)
    empty[:, 0, 0] = True
    assert len(area_tracks({"motion": "keep"}, empty, grid, np.random.default_rng(0), max_tracks=3)) == 0


def test_a_trajectory_area_has_its_drawn_path_and_none_has_none() -> None:
    grid = _grid_tracks()
    mask = np.ones((8, 32, 32), bool)
    area = {"motion": "trajectory", "trajectory": [[1, 4, 10], [5, 12, 18]]}
    got = area_tracks(area, mask, grid, np.random.default_rng(0), max_tracks=3)
    assert got is not None and len(got) == 1
    np.testing.assert_allclose(got.points[0, 3], [8, 14])  # halfway
    np.testing.assert_allclose(got.points[0, 5], [12, 18])
    assert got.visible[0].tolist() == [False, True, True, True, True, True, False, False]
    assert area_tracks({"motion": "none"}, mask, grid, np.random.default_rng(0), max_tracks=3) is None


def test_condition_maps_are_the_trajectories_displacements() -> None:
    shape = (8, 32, 32)
    assert not condition_maps([], shape, 2.0).any()
    assert not condition_maps([None, None], shape, 2.0).any()
    empty = Tracks(np.zeros((0, 8, 2), np.float32), np.zeros((0, 8), bool))
    assert not condition_maps([empty, None], shape, 2.0).any()
    path = area_tracks(
        {"motion": "trajectory", "trajectory": [[0, 6, 16], [7, 20, 16]]},
        np.ones(shape, bool),
        _grid_tracks(),
        np.random.default_rng(0),
        3,
    )
    maps = condition_maps([None, path], shape, 2.0)
    assert maps.shape == (8, 2, 32, 32) and maps.dtype == np.float32
    assert not maps[0].any()  # frame 0 has no displacement
    for f in range(1, 8):  # 2 px right a frame, at the point's position on frame f
        x = 6 + 2 * f
        assert maps[f, 0, 16, x] == pytest.approx(2.0, abs=1e-4) and maps[f, 1, 16, x] == pytest.approx(0.0)
        assert maps[f, 0, 16, x] == maps[f, 0].max()
        assert not maps[f, :, 2].any()  # far from the path
    summed = condition_maps([path, path], shape, 2.0)
    np.testing.assert_allclose(summed, 2 * maps)


# --------------------------------------------------------------------------- validation


def _validate(path: Path) -> Any:
    return CliRunner().invoke(app, ["validate", str(path)])


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_example_validates(example: Path) -> None:
    res = _validate(example)
    assert res.exit_code == 0, res.output


def _area(**kw: Any) -> dict[str, Any]:
    return {"params": {"areas": [{**BASE["params"]["areas"][0], **kw}]}}


CASES = [
    ("mask-file-2d", _area(mask={"file": "small.npy"}), "params.areas.0.mask.file", "but the frames are 32x32"),
    ("mask-file-3d", _area(mask={"file": "short.npy"}), "params.areas.0.mask.file", "but the input is [8, 32, 32]"),
    ("mask-file-4d", _area(mask={"file": "deep.npy"}), "params.areas.0.mask.file", "a mask is [H, W] or [T, H, W]"),
    ("mask-file-empty", _area(mask={"file": "empty.npy"}), "params.areas.0.mask.file", "is empty"),
    ("mask-file-missing", _area(mask={"file": "none.npy"}), "params.areas.0.mask.file", "none.npy"),
    ("mask-two-ways", _area(mask={"box": [0, 0, 8, 8], "truth": 0}), "params.areas.0.mask", "exactly one of"),
    ("box-empty", _area(mask={"box": [8, 8, 8, 16]}), "params.areas.0.mask", "is empty"),
    ("box-outside", _area(mask={"box": [0, 4, 40, 28]}), "params.areas.0.mask.box", "outside the 32x32 frames"),
    (
        "polygon-outside",
        _area(mask={"polygon": [[0, 4], [16, 4], [16, 50]]}),
        "params.areas.0.mask.polygon.2",
        "outside the 32x32 frames",
    ),
    ("truth-object", _area(mask={"truth": 1}), "params.areas.0.mask.truth", "the scene has 1 object(s)"),
    (
        "trajectory-beyond-clip",
        _area(trajectory=[[0, 6, 16], [9, 13, 16]]),
        "params.areas.0.trajectory.1",
        "frame 9.0 is not one of the clip's frames 0..7",
    ),
    (
        "trajectory-fraction-frame",
        _area(trajectory=[[0, 6, 16], [2.5, 13, 16]]),
        "params.areas.0.trajectory.1",
        "is not one of the clip's frames",
    ),
    (
        "trajectory-outside-frame",
        _area(mask={"box": [0, 4, 32, 28]}, trajectory=[[0, 6, 16], [7, 32, 16]]),
        "params.areas.0.trajectory.1",
        "is outside the 32x32 frame",
    ),
    (
        "trajectory-outside-area",
        _area(trajectory=[[0, 6, 16], [7, 24, 16]]),
        "params.areas.0.trajectory.1",
        "outside the area's mask",
    ),
    (
        "trajectory-frames-decrease",
        _area(trajectory=[[3, 6, 16], [1, 13, 16]]),
        "params.areas.0",
        "trajectory frames must increase",
    ),
    ("trajectory-missing", _area(trajectory=None), "params.areas.0", "needs `trajectory`"),
    ("trajectory-with-keep", _area(motion="keep"), "params.areas.0", "set motion: trajectory"),
    ("no-content-no-motion", _area(motion="none", trajectory=None), "params.areas.0", "neither content nor motion"),
    (
        "content-two-ways",
        _area(content={"image": "small.png", "sdedit": {"prompt": "a cat"}}),
        "params.areas.0.content",
        "exactly one of image, sdedit",
    ),
    ("content-size", _area(content={"image": "small.png"}), "params.areas.0.content.image", "is 16x16"),
    ("content-not-image", _area(content={"image": "notes.txt"}), "params.areas.0.content.image", "notes.txt"),
    ("no-areas", {"params": {"areas": []}}, "params.areas", "at least 1 item"),
    (
        "window-overlap",
        {"params": {"window": {"frames": 8, "overlap": 8}}},
        "params.window.overlap",
        "overlap 8 is too large for windows of 8 frames",
    ),
    (
        "window-overlap-model",
        {"params": {"window": {"overlap": 4}}},
        "params.window.overlap",
        "too large for the base model's 4 frames",
    ),
    ("guidance", {"params": {"min_guidance": 3.0, "max_guidance": 2.0}}, "params", "is below min_guidance"),
    (
        "sweep-window-overlap",
        {"sweep": {"params.window.overlap": [1, 4]}},
        "sweep.params.window.overlap",
        "too large for the base model's 4 frames",
    ),
    (
        "edit-and-sweep",
        {"edits": [{"name": "a", "params": {"min_guidance": 3.0}}], "sweep": {"params.max_guidance": [4.0, 2.0]}},
        "edits.0.params",
        "with the sweep point {params.max_guidance: 2.0}",
    ),
    (
        "mask-empty-on-frame-0",
        _area(mask={"file": "late.npy"}, motion="keep", trajectory=None),
        "params.areas.0.mask",
        "empty on frame 0",
    ),
    ("unknown-motion", _area(motion="wiggle"), "params.areas.0.motion", "'keep', 'trajectory' or 'none'"),
]


def _media(project: Project) -> None:
    from recut.video import write_image

    d = project.root / "specs"
    np.save(d / "small.npy", np.ones((16, 16), bool))
    np.save(d / "short.npy", np.ones((4, 32, 32), bool))
    np.save(d / "deep.npy", np.ones((1, 8, 32, 32), bool))
    np.save(d / "empty.npy", np.zeros((32, 32), bool))
    late = np.zeros((8, 32, 32), bool)
    late[1:, 4:28, 0:20] = True  # the area starts on frame 1
    np.save(d / "late.npy", late)
    write_image(d / "small.png", np.zeros((16, 16, 3), np.uint8))
    (d / "notes.txt").write_text("not an image")


@pytest.mark.parametrize(("over", "field", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_specs_are_refused_with_the_field_named(
    project: Project, over: dict[str, Any], field: str, message: str
) -> None:
    _media(project)
    res = _validate(_spec(project, over))
    assert res.exit_code == 2, res.output
    assert f": {field}:" in res.output and message in res.output, res.output
    assert "Traceback" not in res.output


def test_the_base_spec_and_its_variants_validate(project: Project) -> None:
    _media(project)
    good = np.zeros((8, 32, 32), bool)
    good[:, 4:28, 0:20] = True
    np.save(project.root / "specs" / "good.npy", good)
    from recut.video import write_image

    write_image(project.root / "specs" / "content.png", np.zeros((32, 32, 3), np.uint8))
    for i, over in enumerate(
        [
            {},
            _area(mask={"file": "good.npy"}),
            _area(mask={"polygon": [[0, 4], [16, 4], [16, 28], [0, 28]]}),
            _area(mask={"truth": 0, "dilate": 2}, motion="keep", trajectory=None),
            _area(content={"image": "content.png"}, motion="none", trajectory=None),
            {"params": {"window": {"frames": 4, "overlap": 3}}},
        ]
    ):
        res = _validate(_spec(project, over, name=f"good{i}.yaml"))
        assert res.exit_code == 0, (over, res.output)


def test_a_truth_mask_needs_a_toy_input(project: Project) -> None:
    over = {"input": {"video": "media/clip.mp4", "frames": {"count": 8}}, "params": _area(mask={"truth": 0})["params"]}
    raw = _merge(BASE, over)
    del raw["input"]["toy"]
    res = _validate(project.spec(yaml.safe_dump(raw, sort_keys=False)))
    assert res.exit_code == 2, res.output
    assert "params.areas.0.mask.truth: a truth mask needs a toy input" in res.output, res.output


def test_frames_resampled_by_fps_are_counted_at_validation(project: Project) -> None:
    """`input.frames.fps` halves the 8-frame clip to 4 frames: a path to frame 7 is refused at validation
    (it was cut short silently at run time)."""
    over = {"input": {"video": "media/clip.mp4", "frames": {"fps": 4}}}
    raw = _merge(BASE, over)
    del raw["input"]["toy"]
    res = _validate(project.spec(yaml.safe_dump(raw, sort_keys=False)))
    assert res.exit_code == 2, res.output
    assert "params.areas.0.trajectory.1: frame 7.0 is not one of the clip's frames 0..3" in res.output, res.output


def test_an_edit_override_is_reported_where_it_was_written(project: Project) -> None:
    over = {"edits": [{"name": "a", "params": _area(trajectory=[[0, 6, 16], [9, 13, 16]])["params"]}]}
    res = _validate(_spec(project, over))
    assert res.exit_code == 2 and ": edits.0.params.areas.0.trajectory.1:" in res.output, res.output


def test_a_nested_sweep_gives_each_point_its_value(project: Project) -> None:
    """`params.window.overlap` in a sweep sets the overlap inside `window` (it was set as a flat key
    and `recut plan` / `recut run` died on the params model's error)."""
    spec = _spec(project, {"params": {"window": {"frames": 4}}, "sweep": {"params.window.overlap": [1, 2]}})
    assert _validate(spec).exit_code == 0
    plan = build_plan([load_spec(spec)])
    samples = [n for n in plan.ordered() if n.stage.name == "sample"]
    assert len(samples) == 2 and len({n.key for n in samples}) == 2
    assert sorted((n.reads["params.window"]["frames"], n.reads["params.window"]["overlap"]) for n in samples) == [
        (4, 1),
        (4, 2),
    ]


def _moving_band() -> np.ndarray:
    band = np.zeros((8, 32, 32), bool)
    for f in range(8):
        band[f, 12:20, 2 + 2 * f : 10 + 2 * f] = True  # follows a point from x = 6 to x = 20
    return band


def test_a_per_frame_mask_file_that_covers_the_path_validates(project: Project) -> None:
    np.save(project.root / "specs" / "band.npy", _moving_band())
    area = {"mask": {"file": "band.npy"}, "motion": "trajectory", "trajectory": [[0, 6, 16], [7, 20, 16]]}
    # the engine's area covers every point of the path on its frame
    region = area_mask(area["mask"], str(project.root / "specs" / "band.npy"), project.root, (8, 32, 32))
    assert region[0, 16, 6] and region[7, 16, 20]
    res = _validate(_spec(project, {"params": {"areas": [area]}}))
    assert res.exit_code == 0, res.output


def test_a_trajectory_inside_the_dilated_area_validates(project: Project) -> None:
    area = {
        "mask": {"box": [8, 8, 16, 24], "dilate": 4},
        "motion": "trajectory",
        "trajectory": [[0, 12, 16], [7, 18, 16]],
    }
    region = area_mask(area["mask"], None, project.root, (8, 32, 32))
    assert region[7, 16, 18]  # the engine's area covers the last point
    res = _validate(_spec(project, {"params": {"areas": [area]}}))
    assert res.exit_code == 0, res.output


# --------------------------------------------------------------------------- the engine, end to end


@pytest.fixture(scope="module")
def runner() -> StageRunner:
    return StageRunner()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Project:
    from recut.video import write_image

    project = Project(tmp_path_factory.mktemp("revideo"))
    blue = np.zeros((32, 32, 3), np.uint8)
    blue[..., 2] = 255
    write_image(project.root / "specs" / "blue.png", blue)
    return project


def _run(spec: Path, runner: StageRunner, store: Store) -> dict[str, Any]:
    plan = build_plan([load_spec(spec)], store)
    refs = run_plan(plan, store.root, runner)
    dirs = {n.stage.name: refs[n.key].dir for n in plan.ordered()}
    meta = json.loads((dirs["sample"] / "ref.json").read_text())["meta"]
    return {"plan": plan, "dirs": dirs, "meta": meta, "frames": np.load(dirs["sample"] / "frames.npy")}


def _store(project: Project) -> Store:
    return Store(project.store)


TWO_AREAS = {
    "params": {
        "areas": [
            {"mask": {"box": [0, 4, 16, 28]}, "motion": "trajectory", "trajectory": [[0, 6, 16], [7, 13, 16]]},
            {"mask": {"box": [24, 0, 32, 32]}, "content": {"image": "blue.png"}, "motion": "none"},
        ]
    }
}


def test_sample_writes_the_frames_the_edit_mask_and_the_motion(workspace: Project, runner: StageRunner) -> None:
    res = _run(_spec(workspace, TWO_AREAS, name="two.yaml"), runner, _store(workspace))
    pre = np.load(res["dirs"]["preprocess"] / "frames.npy")
    out, d = res["frames"], res["dirs"]["sample"]
    assert out.shape == pre.shape == (8, 32, 32, 3) and out.dtype == np.uint8
    union = np.zeros((8, 32, 32), bool)
    union[:, 4:28, 0:16] = True
    union[:, :, 24:32] = True
    edited = np.load(d / "edit_mask.npy")
    assert edited.dtype == bool and np.array_equal(edited, union)
    areas = np.load(res["dirs"]["first_frame"] / "areas.npy")
    assert areas.shape == (2, 8, 32, 32) and np.array_equal(areas.any(0), union)
    # the first frame: the blue content inside area 1 only
    from recut.video import read_image

    first = read_image(res["dirs"]["first_frame"] / "first.png")
    assert (first[:, 24:] == [0, 0, 255]).all() and np.array_equal(first[:, :24], pre[0][:, :24])
    # the motion: the trajectory's displacement (1 px a frame) at its points, nothing in the still area
    motion = np.load(d / "motion.npy").astype(np.float32)
    assert motion.shape == (8, 2, 32, 32)
    assert motion[3, 0, 16, 9] == pytest.approx(1.0, abs=1e-2) and motion[0].max() == 0
    assert not motion[:, :, :, 24:].any()
    assert res["meta"]["tracks"] == [1, 0] and res["meta"]["control"] is True
    assert res["meta"]["windows"] == [[0, 4], [3, 7], [6, 8]]  # tiny-random's UNet makes 4 frames


def test_motion_none_and_keep(workspace: Project, runner: StageRunner) -> None:
    store = _store(workspace)
    still = _area(content={"image": "blue.png"}, motion="none", trajectory=None, mask={"box": [0, 0, 16, 32]})
    res = _run(_spec(workspace, still, name="still.yaml"), runner, store)
    assert not np.load(res["dirs"]["sample"] / "motion.npy").any() and res["meta"]["tracks"] == [0]
    keep = _area(motion="keep", trajectory=None, mask={"truth": 0, "dilate": 2})
    res = _run(_spec(workspace, keep, name="keep.yaml"), runner, store)
    motion = np.load(res["dirs"]["sample"] / "motion.npy").astype(np.float32)
    n = res["meta"]["tracks"][0]
    assert 1 <= n <= 10 and motion.any()
    assert motion[1:, 0].max() > 0  # the red circle moves right
    z = np.load(res["dirs"]["track"] / "tracks.npz")
    assert z["points"].shape == (64, 8, 2) and z["visible"].shape == (64, 8)  # a 4-px grid of 32x32


def test_a_long_clip_is_made_window_by_window(workspace: Project, runner: StageRunner) -> None:
    over = {"input": {"toy": {"frames": 12}}, "params": {"window": {"frames": 4, "overlap": 1}}}
    res = _run(_spec(workspace, over, name="long.yaml"), runner, _store(workspace))
    assert res["frames"].shape == (12, 32, 32, 3)
    assert res["meta"]["windows"] == [[0, 4], [3, 7], [6, 10], [9, 12]]
    for key in ("seam_ratio", "seam_diff", "inner_diff"):
        assert isinstance(res["meta"][key], float), res["meta"]
    assert res["meta"]["seam_ratio"] > 0


def test_windows_share_frames_and_start_from_the_last_made(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sampler's stitching, with the model replaced by a stub that paints each window's frames."""
    from engines.common import svd
    from engines.revideo.sampler import ReVideoComponents, generate

    refs: list[np.ndarray] = []

    def fake_sample(c: Any, ref: np.ndarray, s: svd.I2VSettings, unet_fn: Any = None, progress: Any = None) -> Any:
        refs.append(ref.copy())
        for i in range(s.steps):
            progress(i + 1, s.steps)
        return torch.full((1, s.frames, 1, 1, 1), float(s.seed))

    def fake_decode(c: Any, lat: torch.Tensor, chunk: int = 8) -> np.ndarray:
        k = int(lat.flatten()[0])  # the window's seed: its index
        n = lat.shape[1]
        return np.broadcast_to((k * 20 + np.arange(n, dtype=np.uint8))[:, None, None, None], (n, 4, 4, 3)).copy()

    monkeypatch.setattr(svd, "sample", fake_sample)
    monkeypatch.setattr(svd, "decode", fake_decode)
    frames = np.zeros((10, 4, 4, 3), np.uint8)
    first = np.full((4, 4, 3), 99, np.uint8)
    ticks: list[tuple[int, int]] = []
    out, spans = generate(
        ReVideoComponents(base=None, control=None),
        frames,
        first,
        np.ones((10, 4, 4), bool),
        np.zeros((10, 2, 4, 4), np.float32),
        svd.I2VSettings(steps=2, seed=0),
        4,
        2,
        progress=lambda i, n: ticks.append((i, n)),
    )
    assert spans == [(0, 4), (2, 6), (4, 8), (6, 10)]
    # window k's frame i is 20 k + i; the first `overlap` frames of a window stay the previous one's
    assert out[:, 0, 0, 0].tolist() == [0, 1, 2, 3, 22, 23, 42, 43, 62, 63]
    assert (refs[0] == 99).all()  # the edited first frame, then the previous window's frame at the start
    assert [int(r[0, 0, 0]) for r in refs[1:]] == [2, 22, 42]
    assert ticks[-1] == (8, 8) and len(ticks) == 8


def test_changing_steps_or_the_trajectory_recomputes_only_what_depends_on_it(
    workspace: Project, runner: StageRunner
) -> None:
    store = _store(workspace)
    _run(_spec(workspace, name="cache.yaml"), runner, store)

    def recomputed(over: dict[str, Any], name: str) -> set[str]:
        plan = build_plan([load_spec(_spec(workspace, over, name=name))], store)
        return {n.stage.name for n in plan.ordered() if not n.cached}

    assert recomputed({}, "cache-again.yaml") == set()
    assert recomputed({"params": {"steps": 3}}, "cache-steps.yaml") == {"sample", "evaluate"}
    assert recomputed({"params": {"decode_chunk": 2}}, "cache-chunk.yaml") == set()  # a memory knob
    moved = _area(trajectory=[[0, 6, 16], [7, 6, 24]])
    assert recomputed(moved, "cache-path.yaml") == {"first_frame", "sample", "evaluate"}
    assert recomputed({"params": {"tracking": {"stride": 2}}}, "cache-stride.yaml") == {"track", "sample", "evaluate"}
    assert recomputed({"params": {"tracking": {"sigma": 1.0}}}, "cache-sigma.yaml") == {"sample", "evaluate"}
    # a sweep over steps: one preprocess, track and first frame, a sample per point
    plan = build_plan([load_spec(_spec(workspace, {"sweep": {"params.steps": [2, 3, 4]}}, name="sweep.yaml"))], store)
    names = [n.stage.name for n in plan.ordered()]
    assert {s: names.count(s) for s in set(names)} == {
        "preprocess": 1,
        "track": 1,
        "first_frame": 1,
        "sample": 3,
        "evaluate": 3,
    }
    cached = {n.stage.name for n in plan.ordered() if n.cached}
    assert cached == {"preprocess", "track", "first_frame", "sample", "evaluate"}  # steps 2 was made
    assert sum(n.cached for n in plan.ordered() if n.stage.name == "sample") == 1


def test_the_control_module_changes_the_output_and_scale_zero_is_the_base(
    workspace: Project, runner: StageRunner
) -> None:
    store = _store(workspace)
    on = _run(_spec(workspace, name="on.yaml"), runner, store)
    off = _run(_spec(workspace, {"params": {"control": False}}, name="off.yaml"), runner, store)
    zero = _run(_spec(workspace, {"params": {"control_scale": 0.0}}, name="zero.yaml"), runner, store)
    assert on["meta"]["control"] is True and off["meta"]["control"] is False and zero["meta"]["control"] is True
    assert not np.array_equal(on["frames"], off["frames"])
    assert np.array_equal(zero["frames"], off["frames"])
    again = _run(
        _spec(workspace, {"seed": 0, "name": "renamed"}, name="on-again.yaml"), runner, Store(workspace.root / "s2")
    )
    assert np.array_equal(again["frames"], on["frames"])  # recomputed in a fresh store: the same frames
