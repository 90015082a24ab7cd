"""Image animation geometry: replication, pan with reflection padding, zoom, camera paths; degradation."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from engines.dreamix.animation import animate, camera_poses, degrade_frames, homography, resample_indices
from engines.dreamix.params import Animation

H, W = 48, 64


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)


def _reflect(i: np.ndarray, n: int) -> np.ndarray:
    """cv2.BORDER_REFLECT_101: ... 2 1 | 0 1 2 ... n-1 | n-2 n-3 ..."""
    i = np.abs(i)
    return np.where(i > n - 1, 2 * (n - 1) - i, i)


def test_replicate(image: np.ndarray) -> None:
    out = animate(image, 5, Animation(kind="replicate"))
    assert out.shape == (5, H, W, 3) and all(np.array_equal(f, image) for f in out)


@pytest.mark.parametrize(
    ("direction", "dx", "dy"), [("right", 16, 0), ("left", -16, 0), ("down", 0, 12), ("up", 0, -12)]
)
def test_pan_shifts_content_with_reflection_padding(image: np.ndarray, direction: str, dx: int, dy: int) -> None:
    out = animate(image, 9, Animation(kind="pan", direction=direction, amount=0.25))
    assert np.array_equal(out[0], image)
    # the last frame: output pixel (x, y) shows image pixel reflect(x + dx, y + dy), exactly
    ys = _reflect(np.arange(H) + dy, H)
    xs = _reflect(np.arange(W) + dx, W)
    assert np.array_equal(out[-1], image[ys][:, xs])
    # the middle frame is half-way: integer shift dx/2, dy/2
    ys = _reflect(np.arange(H) + dy // 2, H)
    xs = _reflect(np.arange(W) + dx // 2, W)
    assert np.array_equal(out[4], image[ys][:, xs])
    assert not np.any(np.all(out[-1] == 0, axis=-1).all(axis=0))  # no black columns


def test_zoom_keeps_the_centre_and_magnifies(image: np.ndarray) -> None:
    out = animate(image, 3, Animation(kind="zoom", zoom=2.0))
    m = homography(camera_poses(Animation(kind="zoom", zoom=2.0), 3)[-1], W, H)
    c = np.array([(W - 1) / 2, (H - 1) / 2, 1.0])
    assert np.allclose(m @ c, c)  # the centre stays put
    corner = m @ np.array([0.0, 0.0, 1.0])
    assert np.allclose(corner[:2] / corner[2], c[:2] / 2)  # the corner samples half-way to the centre
    assert out.shape == (3, H, W, 3) and not np.array_equal(out[-1], image)


def test_camera_path_is_smooth_and_hits_key_frames() -> None:
    anim = Animation(kind="path", path=[{"t": 0, "x": 0.0}, {"t": 0.5, "x": 0.2, "zoom": 2.0}, {"t": 1, "x": 0.0}])
    poses = camera_poses(anim, 21)
    xs = np.array([p.x for p in poses])
    assert xs[0] == 0 and xs[10] == pytest.approx(0.2) and xs[20] == pytest.approx(0.0)
    assert poses[10].zoom == pytest.approx(2.0) and poses[5].zoom == pytest.approx(2**0.5)  # log-linear zoom
    v = np.diff(xs)
    assert abs(v[0]) < abs(v[4]) and abs(v[9]) < abs(v[5])  # eased: slow near the key frames
    assert np.all(v[:10] >= 0) and np.all(v[10:] <= 0)


def test_path_tilt_and_rotation_are_perspective(image: np.ndarray) -> None:
    anim = Animation(kind="path", path=[{"t": 0}, {"t": 1, "tilt": 0.2, "rotate": 15}])
    m = homography(camera_poses(anim, 2)[-1], W, H)
    assert abs(m[2, 0]) + abs(m[2, 1]) > 0  # a true perspective (not affine) transform
    out = animate(image, 2, anim)
    assert np.array_equal(out[0], image) and not np.array_equal(out[1], image)


def test_animation_validation() -> None:
    with pytest.raises(ValidationError, match="at least two key frames"):
        Animation(kind="path", path=[{"t": 0}])
    with pytest.raises(ValidationError, match="strictly increasing"):
        Animation(kind="path", path=[{"t": 0.5}, {"t": 0.5}])
    with pytest.raises(ValueError, match="uint8"):
        animate(np.zeros((4, 4, 3), np.float32), 2, Animation())


def test_degradation_indices_and_size() -> None:
    assert resample_indices(16, 8).tolist() == [0, 2, 4, 6, 9, 11, 13, 15]
    assert resample_indices(3, 5).tolist() == [0, 0, 1, 2, 2]
    frames = np.random.default_rng(1).integers(0, 256, (10, 40, 80, 3), dtype=np.uint8)
    out, idx = degrade_frames(frames, 32, 32, 4)
    assert out.shape == (4, 32, 32, 3) and idx.tolist() == [0, 3, 6, 9]
