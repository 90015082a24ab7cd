"""Trajectories (engines.common.tracks) against the toy world's ground-truth tracks."""

from __future__ import annotations

import numpy as np
import pytest

from engines.common.tracks import Tracks, drawn_path, motion_maps, sample_tracks, track_grid
from toyworld import scene as toy


def _clip(motion: str = "right", background: str = "plain") -> toy.ToyClip:
    obj = toy.ToyObject(shape="square", colour="red", size="large", motion=motion, speed=0.04, start=(0.4, 0.5))
    bg = toy.ToyBackground(kind=background, colour="blue" if background == "stripes" else "white")
    return toy.render(toy.ToyScene(objects=[obj], background=bg, frames=8, seed=1))


@pytest.mark.parametrize("background", ["plain", "gradient"])
def test_lucas_kanade_follows_the_object_like_its_truth_track(background: str) -> None:
    clip = _clip(background=background)
    tr = track_grid(clip.frames, stride=4)
    truth = clip.tracks[0]  # the object's centre, [T, 2]
    on_object = clip.masks[0, 0][np.rint(tr.points[:, 0, 1]).astype(int), np.rint(tr.points[:, 0, 0]).astype(int)]
    kept = on_object & tr.visible.all(1)
    assert kept.sum() >= 10, kept.sum()
    moved = tr.points[kept] - tr.points[kept, :1]  # each point's displacement from frame 0
    want = truth - truth[:1]
    err = np.linalg.norm(moved - want[None], axis=-1)
    assert np.median(err[:, -1]) < 0.5, np.median(err[:, -1])
    assert tr.visible[:, 0].all() and tr.points.shape == (len(tr), 8, 2)


def test_the_forward_backward_check_drops_points_it_cannot_follow() -> None:
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)  # frames that have nothing in common
    tr = track_grid(noise, stride=4)
    assert tr.visible[:, 0].all() and tr.visible[:, -1].mean() < 0.5


def test_sampling_keeps_moving_tracks_and_draws_one_to_ten() -> None:
    tr = track_grid(_clip().frames, stride=2)
    lengths = tr.lengths()
    counts = set()
    for seed in range(20):
        s = sample_tracks(tr, np.random.default_rng(seed))
        assert 1 <= len(s) <= 10
        assert (s.lengths() > lengths[::2].mean()).all()  # only tracks longer than the mean
        counts.add(len(s))
    assert len(counts) > 3  # N itself is drawn
    a, b = sample_tracks(tr, np.random.default_rng(5)), sample_tracks(tr, np.random.default_rng(5))
    assert np.array_equal(a.points, b.points)
    still = track_grid(_clip(motion="static").frames, stride=2)
    assert len(still) and len(sample_tracks(still, np.random.default_rng(0))) == 0  # nothing moves


def test_a_drawn_path_is_interpolated_between_its_frames() -> None:
    p = drawn_path([[1, 10, 20], [5, 30, 20]], frames=8)
    assert p.points.shape == (1, 8, 2)
    assert np.allclose(p.points[0, 3], (20, 20)) and p.visible[0].tolist() == [False] + [True] * 5 + [False] * 2
    with pytest.raises(ValueError, match="frames must increase"):
        drawn_path([[3, 0, 0], [2, 1, 1]], frames=8)
    with pytest.raises(ValueError, match=r"\[frame, x, y\]"):
        drawn_path([[1, 2]], frames=8)


def test_motion_maps_hold_each_displacement_at_its_point() -> None:
    pts = np.array([[[10, 12], [12, 12], [14, 13]]], np.float32)
    tr = Tracks(pts, np.ones((1, 3), bool))
    m = motion_maps(tr, 24, 24, sigma=1.5)
    assert m.shape == (3, 2, 24, 24) and not m[0].any()
    assert np.allclose(m[1, :, 12, 12], (2, 0), atol=1e-5) and np.allclose(m[2, :, 13, 14], (2, 1), atol=1e-5)
    assert m[1, 0, 12, 14] < m[1, 0, 12, 12]  # filtered: falls off around the point
    raw = motion_maps(tr, 24, 24, sigma=0)
    assert np.count_nonzero(raw[1, 0]) == 1


def test_the_tracks_of_one_rigid_object_are_all_kept_as_long_as_the_mean() -> None:
    """Every point of a translating object moves as far as the mean: ties count as "longer than the
    mean", or a toy clip would sample no track at all (and the control module would see no motion)."""
    import numpy as np

    from engines.common.tracks import Tracks, sample_tracks

    start = np.array([[10.0, 10.0], [12.0, 10.0], [10.0, 12.0], [12.0, 12.0]], np.float32)
    pts = start[:, None, :] + np.arange(8, dtype=np.float32)[None, :, None] * np.array([3.0, 0.0], np.float32)
    tr = Tracks(pts, np.ones((4, 8), bool))
    for seed in range(5):
        got = sample_tracks(tr, np.random.default_rng(seed), stride=1)
        assert 1 <= len(got) <= 4
