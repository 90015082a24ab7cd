"""Toy scenes: rendering, ground truth, captions, classifiers, files and the CLI."""

from __future__ import annotations

import itertools
import json
import re
import time

import numpy as np
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from recut.video import read_video
from toyworld.cli_toy import toy_app
from toyworld.scene import (
    BACKGROUNDS,
    COLOURS,
    GENERATOR_VERSION,
    MOTIONS,
    SHAPES,
    SIZES,
    ToyBackground,
    ToyObject,
    ToyScene,
    caption,
    caption_vocabulary,
    classify_shape,
    colour_mask,
    dominant_colour,
    load_truth,
    motion_direction,
    parse_caption,
    render,
    sample_scene,
    sample_scenes,
    tokenize_caption,
    toy_digest,
    write_clip,
)


def _scene(*objects: ToyObject, **kw) -> ToyScene:
    kw.setdefault("background", ToyBackground(kind="stripes", colour="white"))
    return ToyScene(objects=list(objects), **kw)


@pytest.fixture(scope="module")
def sampled() -> list[ToyScene]:
    return list(sample_scenes(7, 120, pan_prob=0.3))


# --------------------------------------------------------------------------- rendering


def test_shapes_dtypes_and_determinism():
    scene = _scene(
        ToyObject(shape="circle", colour="red", motion="left"),
        ToyObject(shape="triangle", colour="blue", size="small", motion="circle"),
        frames=10,
        width=48,
        height=40,
    )
    a, b = render(scene), render(scene)
    t, k, h, w = 10, 2, 40, 48
    assert a.frames.shape == (t, h, w, 3) and a.frames.dtype == np.uint8
    assert a.masks.shape == a.full_masks.shape == (t, k, h, w)
    assert a.masks.dtype == a.full_masks.dtype == np.bool_
    assert a.depth.shape == (t, h, w) and a.depth.dtype == np.float32
    assert a.tracks.shape == (k, t, 2) and a.tracks.dtype == np.float32
    assert a.visible.shape == (k, t) and a.visible.dtype == np.bool_
    for name in ("frames", "masks", "full_masks", "depth", "tracks", "visible"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.caption == b.caption and a.object_captions == [
        "a red circle moving left",
        "a small blue triangle moving in a circle",
    ]
    other = render(scene.model_copy(update={"seed": 1}))
    assert not np.array_equal(a.frames, other.frames)
    assert toy_digest(scene) == toy_digest(ToyScene.model_validate(json.loads(scene.model_dump_json())))
    assert toy_digest(scene) != toy_digest(scene.model_copy(update={"seed": 1}))
    assert len(toy_digest(scene)) == 64 and GENERATOR_VERSION == "1"


def test_sampling_is_seeded_and_valid(sampled):
    assert sample_scene(np.random.default_rng(3)) == sample_scene(np.random.default_rng(3))
    assert list(sample_scenes(7, 5, start=3)) == sampled[3:8]  # scene i does not depend on count
    assert len({toy_digest(s) for s in sampled}) == len(sampled)
    for s in sampled:
        cols = [o.colour for o in s.objects]
        assert len(set(cols)) == len(cols) and s.background.colour not in cols
    assert {o.motion for s in sampled for o in s.objects} == set(MOTIONS)
    assert {s.background.kind for s in sampled} == set(BACKGROUNDS)
    only = list(sample_scenes(1, 20, max_objects=1, motions=("left",), pan_prob=0.0, frames=8, size=32))
    assert all(len(s.objects) == 1 and s.objects[0].motion == "left" and s.camera_pan == "none" for s in only)
    assert all(s.frames == 8 and s.width == s.height == 32 for s in only)
    with pytest.raises(ValueError):
        sample_scene(np.random.default_rng(0), motions=("sideways",))


def test_masks_consistent_with_frames_and_inside(sampled):
    for s in sampled[:60]:
        c = render(s)
        assert not (c.masks.sum(axis=1) > 1).any()  # visible masks are disjoint
        assert not (c.masks & ~c.full_masks).any()
        assert np.array_equal(c.masks.any(axis=1), c.depth < 1.0)
        for k, o in enumerate(s.objects):
            px = c.frames[c.masks[:, k]]
            assert (px == COLOURS[o.colour]).all()
            # objects stay mostly inside: centre in frame, silhouette never empty
            assert (c.tracks[k, :, 0] >= 0).all() and (c.tracks[k, :, 0] <= s.width - 1).all()
            assert (c.tracks[k, :, 1] >= 0).all() and (c.tracks[k, :, 1] <= s.height - 1).all()
            assert c.full_masks[:, k].any(axis=(1, 2)).all()
            assert np.array_equal(c.visible[k], c.masks[:, k].any(axis=(1, 2)) & c.visible[k])


def test_depth_and_occlusion():
    far = ToyObject(shape="square", colour="red", size="large", start=(0.5, 0.5), depth=0.8)
    near = ToyObject(shape="circle", colour="blue", size="small", start=(0.5, 0.5), depth=0.2)
    for objs in ((far, near), (near, far)):  # list order does not matter with explicit depth
        c = render(_scene(*objs, frames=2))
        i_near, i_far = (1, 0) if objs[0] is far else (0, 1)
        assert np.array_equal(c.masks[:, i_near], c.full_masks[:, i_near])
        assert np.array_equal(c.masks[:, i_far], c.full_masks[:, i_far] & ~c.full_masks[:, i_near])
        assert c.masks[:, i_far].any()
        assert np.allclose(c.depth[c.masks[:, i_near]], 0.2) and np.allclose(c.depth[c.masks[:, i_far]], 0.8)
        assert (c.depth[~c.full_masks.any(axis=1)] == 1.0).all()
        assert c.visible[i_near].all() and not c.visible[i_far].any()  # far centre is hidden
    # default depth: by order, later objects nearer
    a = ToyObject(shape="square", colour="red", start=(0.5, 0.5))
    b = ToyObject(shape="square", colour="green", size="small", start=(0.5, 0.5))
    c = render(_scene(a, b, frames=1))
    assert np.array_equal(c.masks[0, 1], c.full_masks[0, 1])
    assert c.depth[0][c.masks[0, 1]].max() < c.depth[0][c.masks[0, 0]].min() < 1.0


@pytest.mark.parametrize("motion", ["left", "right", "up", "down"])
def test_linear_motion_traverses(motion):
    c = render(_scene(ToyObject(shape="circle", colour="red", motion=motion), frames=12))
    tr = c.tracks[0]
    axis, sign = {"left": (0, -1), "right": (0, 1), "up": (1, -1), "down": (1, 1)}[motion]
    steps = np.diff(tr[:, axis]) * sign
    assert (steps > 0).all() and np.allclose(np.diff(tr[:, 1 - axis]), 0)
    assert steps.sum() > 0.4 * 64  # default speed moves ~half the frame in 12 frames
    # starts on the side opposite to its direction
    start = tr[0, axis] / 63
    assert (start < 0.3) if sign > 0 else (start > 0.7)
    assert motion_direction(tr) == motion


def test_long_clip_and_explicit_start_stay_inside():
    obj = ToyObject(shape="square", colour="red", motion="right", speed=0.3, start=(0.9, 0.5))
    c = render(_scene(obj, frames=64))
    x = c.tracks[0, :, 0]
    assert (np.diff(x) > 0).all() and x.min() >= 0 and x.max() <= 63
    assert c.full_masks[:, 0].sum(axis=(1, 2)).min() > 0.7 * c.full_masks[:, 0].sum(axis=(1, 2)).max()


def test_circle_and_wave_paths():
    circ = render(_scene(ToyObject(shape="square", colour="red", motion="circle", start=(0.5, 0.5)), frames=24))
    tr = circ.tracks[0].astype(np.float64)
    r = np.linalg.norm(tr - np.array([0.5 * 64 - 0.5] * 2), axis=1)
    assert np.allclose(r, r[0], atol=1e-3) and r[0] > 5
    assert motion_direction(tr) == "circle"
    wave = render(_scene(ToyObject(shape="square", colour="red", motion="wave"), frames=16))
    assert motion_direction(wave.tracks[0]) == "wave"
    assert (np.diff(wave.tracks[0, :, 0]) > 0).all()


def test_camera_pan_shifts_background_and_objects():
    obj = ToyObject(shape="circle", colour="red", size="small", start=(0.5, 0.5))
    still = render(_scene(obj, frames=12))
    c = render(_scene(obj, frames=12, camera_pan="left"))  # scene drifts right by 0.25 * 64 = 16 px
    assert np.array_equal(still.frames[0], c.frames[0])
    assert np.allclose(c.tracks[0, -1] - c.tracks[0, 0], [16, 0], atol=1e-4)
    assert motion_direction(c.tracks[0]) == "right" and motion_direction(still.tracks[0]) == "static"
    bg = ~c.full_masks.any(axis=1)
    first, last = c.frames[0], c.frames[-1]
    both = bg[0][:, :-16] & bg[-1][:, 16:]
    assert (first[:, :-16] == last[:, 16:]).all(axis=-1)[both].all()
    assert not np.array_equal(first[bg[0] & bg[3]], c.frames[3][bg[0] & bg[3]])  # stripes repeat every 8 px
    for kind in ("gradient", "stripes"):
        for pan in ("right", "up", "down"):
            bgk = ToyBackground(kind=kind, colour="blue")
            p = render(_scene(obj, background=bgk, frames=6, camera_pan=pan))
            n = render(_scene(obj, background=bgk, frames=6))
            assert not np.array_equal(p.frames[-1], n.frames[-1]), (kind, pan)
    plain = render(_scene(obj, frames=3, background=ToyBackground(kind="plain", colour="green")))
    assert (plain.frames[0][~plain.full_masks[0].any(0)] == COLOURS["green"]).all()


def test_validation_errors():
    with pytest.raises(ValidationError, match="background colour"):
        _scene(ToyObject(shape="circle", colour="white"))
    with pytest.raises(ValidationError, match="background colour"):
        _scene(ToyObject(shape="circle", colour="red"), background=ToyBackground(colour="blue", colour2="red"))
    bad = [
        {"objects": []},
        {"objects": [{"shape": "circle", "colour": "red"}] * 4},
        {"objects": [{"shape": "hexagon", "colour": "red"}]},
        {"objects": [{"shape": "circle", "colour": "pink"}]},
        {"objects": [{"shape": "circle", "colour": "red", "start": [1.5, 0.5]}]},
        {"objects": [{"shape": "circle", "colour": "red", "depth": 1.0}]},
        {"objects": [{"shape": "circle", "colour": "red", "extra": 1}]},
        {"objects": [{"shape": "circle", "colour": "red"}], "frames": 0},
        {"objects": [{"shape": "circle", "colour": "red"}], "camera_pan": "sideways"},
    ]
    for data in bad:
        with pytest.raises(ValidationError):
            ToyScene.model_validate(data)
    obj = ToyObject(shape="circle", colour="red")
    with pytest.raises(ValidationError):
        obj.colour = "blue"  # frozen
    for model in (ToyObject, ToyBackground, ToyScene):
        assert all(f.description for f in model.model_fields.values()), model


# --------------------------------------------------------------------------- captions

_OBJ = (
    r"a (?:(?:small|large) )?(?:red|green|blue|yellow|purple|orange|cyan|white) (?:circle|square|triangle)"
    r"(?: moving (?:left|right|up|down|in a circle|in a wave))?"
)
_CAPTION = re.compile(
    rf"^{_OBJ}(?: and {_OBJ}){{0,2}} over a (?:plain|gradient|striped) \w+ background"
    r"(?:, camera panning (?:left|right|up|down))?$"
)


def test_captions_grammar_vocabulary_and_parse(sampled):
    vocab = set(caption_vocabulary())
    assert caption_vocabulary() == sorted(vocab) and {"a", ",", "striped", "wave"} <= vocab and "medium" not in vocab
    for s in sampled:
        text = caption(s)
        assert _CAPTION.match(text), text
        assert set(tokenize_caption(text)) <= vocab
        assert parse_caption(text) == [
            {"colour": o.colour, "shape": o.shape, "size": o.size, "motion": o.motion} for o in s.objects
        ]
    s = _scene(
        ToyObject(shape="circle", colour="red", size="small", motion="left"),
        ToyObject(shape="square", colour="blue"),
        background=ToyBackground(kind="stripes", colour="yellow"),
        camera_pan="left",
    )
    assert caption(s) == (
        "a small red circle moving left and a blue square over a striped yellow background, camera panning left"
    )
    assert parse_caption("An orange triangle moving in a circle") == [
        {"colour": "orange", "shape": "triangle", "size": "medium", "motion": "circle"}
    ]
    for text in ("a red hexagon", "a circle", "a red circle moving sideways", "a red circle quickly"):
        with pytest.raises(ValueError, match="cannot parse"):
            parse_caption(text)


# --------------------------------------------------------------------------- classifiers


def test_classifiers_on_every_combination():
    n = 0
    for shape, colour, size, kind in itertools.product(SHAPES, COLOURS, SIZES, BACKGROUNDS):
        bg = ToyBackground(kind=kind, colour="white" if colour != "white" else "blue")
        c = render(_scene(ToyObject(shape=shape, colour=colour, size=size), background=bg, frames=1, seed=n))
        n += 1
        assert classify_shape(c.full_masks[0, 0]) == shape, (shape, size)
        assert dominant_colour(c.frames[0], c.masks[0, 0]) == colour
        assert colour_mask(c.frames[0], colour)[c.masks[0, 0]].all()
    assert n == 3 * len(COLOURS) * 3 * 3


def test_classifiers_on_sampled_scenes(sampled):
    shape_ok = colour_ok = total = motion_ok = motions = 0
    for s in sampled:
        c = render(s)
        for k, o in enumerate(s.objects):
            for t in (0, s.frames - 1):
                total += 1
                shape_ok += classify_shape(c.full_masks[t, k]) == o.shape
                seen = c.masks[t, k].any()  # may be fully occluded
                colour_ok += dominant_colour(c.frames[t], c.masks[t, k]) == (o.colour if seen else "unknown")
            if s.camera_pan == "none":
                motions += 1
                motion_ok += motion_direction(c.tracks[k]) == o.motion
    assert shape_ok == colour_ok == total and motion_ok == motions


def test_classifier_edge_cases():
    assert classify_shape(np.zeros((8, 8), bool)) == "unknown"
    assert dominant_colour(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), bool)) == "unknown"
    sq = np.zeros((40, 40), np.uint8)
    import cv2

    cv2.fillPoly(sq, [np.array([[20, 4], [36, 20], [20, 36], [4, 20]], np.int32)], 1)  # rotated square
    assert classify_shape(sq.astype(bool)) == "square"
    noisy = np.zeros((40, 40), bool)
    noisy[10:30, 10:30] = True
    noisy[2, 2] = noisy[37, 5] = True  # specks are ignored
    assert classify_shape(noisy) == "square"
    assert motion_direction(np.zeros((5, 2))) == "static"
    assert motion_direction(np.array([[0, 0], [1, 0.5]])) == "static"
    assert motion_direction(np.array([[9, 0], [5, 0], [0, 0]])) == "left"
    assert motion_direction(np.array([[0, 9], [0, 5], [0, 0]])) == "up"


# --------------------------------------------------------------------------- files and speed


def test_write_clip_and_load_truth(tmp_path):
    scene = next(sample_scenes(11, 1, max_objects=3))
    clip = render(scene)
    paths = write_clip(clip, tmp_path / "out")
    assert set(paths) == {"video", "frames", "truth", "scene"} and all(p.exists() for p in paths.values())
    back = load_truth(tmp_path / "out")
    for name in ("frames", "masks", "full_masks", "depth", "tracks", "visible"):
        assert np.array_equal(getattr(back, name), getattr(clip, name)), name
    assert back.scene == scene and back.caption == clip.caption and back.object_captions == clip.object_captions
    doc = json.loads(paths["scene"].read_text())
    assert doc["digest"] == toy_digest(scene) and doc["generator_version"] == GENERATOR_VERSION
    video, fps = read_video(paths["video"])
    assert video.shape == clip.frames.shape and fps == pytest.approx(scene.fps)
    luma = np.array([0.299, 0.587, 0.114])
    mse_y = ((video @ luma - clip.frames @ luma) ** 2).mean()
    mse = ((video.astype(np.float64) - clip.frames) ** 2).mean()
    assert 10 * np.log10(255**2 / mse_y) > 30  # 4:2:0 chroma blurs the hard colour edges; luma is close
    assert 10 * np.log10(255**2 / mse) > 20
    (tmp_path / "out" / "frames.npy").unlink()  # falls back to decoding the video
    assert load_truth(tmp_path / "out").frames.shape == clip.frames.shape


def test_render_speed():
    scenes = list(sample_scenes(0, 40))
    t0 = time.perf_counter()
    for s in scenes:
        render(s)
    per_frame = (time.perf_counter() - t0) / (40 * 12)
    assert per_frame < 0.005  # ~0.1 ms on an idle core; generous for loaded CI


# --------------------------------------------------------------------------- CLI


def test_cli_make(tmp_path):
    runner = CliRunner()
    res = runner.invoke(toy_app, ["make", "--out", str(tmp_path / "ds"), "--count", "3", "--seed", "4"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 3
    for i, (line, scene) in enumerate(zip(lines, sample_scenes(4, 3), strict=True)):
        folder = tmp_path / "ds" / f"scene-{i:04d}"
        assert line == f"{folder}  {caption(scene)}"
        assert sorted(p.name for p in folder.iterdir()) == ["frames.npy", "scene.json", "truth.npz", "video.mp4"]
    res = runner.invoke(toy_app, ["make", "--caption-only", "--count", "2", "--seed", "4"])
    assert res.exit_code == 0 and res.stdout.splitlines()[1].startswith("scene-0001  a ")


def test_cli_spec(tmp_path):
    runner = CliRunner()
    good = tmp_path / "good.yaml"
    good.write_text(
        "objects:\n  - {shape: circle, colour: red, motion: left}\nbackground: {kind: stripes}\nframes: 8\n"
    )
    res = runner.invoke(toy_app, ["make", "--out", str(tmp_path / "one"), "--spec", str(good)])
    assert res.exit_code == 0, res.output
    assert load_truth(tmp_path / "one").frames.shape == (8, 64, 64, 3)
    bad = tmp_path / "bad.yaml"
    bad.write_text("objects:\n  - {shape: circle, colour: pink}\n")
    res = runner.invoke(toy_app, ["make", "--out", str(tmp_path / "x"), "--spec", str(bad)])
    assert res.exit_code == 2
    assert f"{bad}: objects.0.colour: Input should be" in res.stderr and "Traceback" not in res.output
    bad.write_text("objects: [\n")
    res = runner.invoke(toy_app, ["make", "--out", str(tmp_path / "x"), "--spec", str(bad)])
    assert res.exit_code == 2 and "invalid YAML" in res.stderr
    res = runner.invoke(toy_app, ["make", "--out", str(tmp_path / "x"), "--spec", str(good), "--count", "2"])
    assert res.exit_code == 2 and "--count" in res.stderr
    res = runner.invoke(toy_app, ["make"])
    assert res.exit_code == 2 and "--out" in res.stderr
    assert not (tmp_path / "x").exists()
