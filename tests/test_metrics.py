"""Metrics in engines.common.metrics against ground truth."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from engines.common.metrics import (
    METRICS,
    PSNR_CAP_DB,
    compute,
    psnr,
    ssim,
    temporal_l1,
)
from recut.engine import MetricInfo


def _rand(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


# ------------------------------------------------------------------ PSNR


def test_psnr_of_known_mse():
    ref = np.zeros((2, 8, 8, 3), np.uint8)
    out = np.full_like(ref, 10)  # MSE = 100
    expected = 10 * math.log10(255**2 / 100)
    assert psnr(out, ref) == pytest.approx(expected, abs=1e-9)
    assert psnr(out, ref) == pytest.approx(28.1308036, abs=1e-6)


def test_psnr_identical_is_capped():
    x = _rand((2, 8, 8, 3))
    assert psnr(x, x) == PSNR_CAP_DB == 100.0
    # A tiny difference would exceed the cap: still capped, never inf.
    big = np.zeros((1, 400, 400, 3), np.uint8)
    other = big.copy()
    other[0, 0, 0, 0] = 1
    assert psnr(other, big) == 100.0


def test_psnr_mask_restricts_measurement():
    ref = np.zeros((1, 4, 4, 3), np.uint8)
    out = ref.copy()
    out[0, :, :2] = 20  # left half differs by 20
    mask = np.zeros((1, 4, 4), bool)
    mask[0, :, 2:] = True  # right half only
    assert psnr(out, ref, mask) == 100.0
    assert psnr(out, ref, ~mask) == pytest.approx(10 * math.log10(255**2 / 400))
    # Unmasked: MSE = 200 over all pixels.
    assert psnr(out, ref) == pytest.approx(10 * math.log10(255**2 / 200))


def test_bad_inputs_raise():
    x = _rand((1, 4, 4, 3))
    with pytest.raises(ValueError):
        psnr(x, _rand((1, 4, 5, 3)))
    with pytest.raises(ValueError):
        psnr(x.astype(np.float32), x)
    with pytest.raises(ValueError):
        psnr(x, x, np.zeros((1, 4, 4), bool))  # empty mask
    with pytest.raises(ValueError):
        psnr(x, x, np.ones((4, 4), bool))  # wrong mask shape


# ------------------------------------------------------------------ SSIM


def _gauss_kernel(size=11, sigma=1.5):
    ax = np.arange(size) - size // 2
    g = np.exp(-(ax**2) / (2 * sigma**2))
    g /= g.sum()
    return np.outer(g, g)


def _ssim_reference(x_rgb: np.ndarray, y_rgb: np.ndarray) -> np.ndarray:
    """Naive SSIM map (Wang et al. 2004) with explicit windows, for one frame."""
    w = np.array([0.299, 0.587, 0.114])
    x = x_rgb.astype(np.float64) @ w
    y = y_rgb.astype(np.float64) @ w
    k = _gauss_kernel()
    r = k.shape[0] // 2
    xp = np.pad(x, r, mode="reflect")  # numpy "reflect" == OpenCV BORDER_REFLECT_101
    yp = np.pad(y, r, mode="reflect")
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    out = np.empty(x.shape)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            wx = xp[i : i + 2 * r + 1, j : j + 2 * r + 1]
            wy = yp[i : i + 2 * r + 1, j : j + 2 * r + 1]
            mx, my = (k * wx).sum(), (k * wy).sum()
            vx = (k * (wx - mx) ** 2).sum()
            vy = (k * (wy - my) ** 2).sum()
            cxy = (k * (wx - mx) * (wy - my)).sum()
            out[i, j] = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return out


def test_ssim_identical_is_one():
    x = _rand((2, 16, 16, 3))
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-12)


def test_ssim_matches_naive_reference():
    a = _rand((1, 14, 13, 3), seed=1)
    noise = np.random.default_rng(2).normal(0, 25, a.shape)
    b = np.clip(a + noise, 0, 255).astype(np.uint8)
    expected_map = _ssim_reference(a[0], b[0])
    assert ssim(a, b) == pytest.approx(expected_map.mean(), abs=1e-9)
    mask = np.zeros((1, 14, 13), bool)
    mask[0, 3:9, 2:7] = True
    assert ssim(a, b, mask) == pytest.approx(expected_map[mask[0]].mean(), abs=1e-9)


def test_ssim_constant_images_closed_form():
    # For constant images only the luminance term remains.
    a = np.full((1, 12, 12, 3), 100, np.uint8)
    b = np.full((1, 12, 12, 3), 150, np.uint8)
    c1 = (0.01 * 255) ** 2
    expected = (2 * 100 * 150 + c1) / (100**2 + 150**2 + c1)
    assert ssim(a, b) == pytest.approx(expected, abs=1e-9)


def test_ssim_is_symmetric_and_drops_with_noise():
    a = _rand((1, 24, 24, 3), seed=3)
    rng = np.random.default_rng(4)
    lo = np.clip(a + rng.normal(0, 5, a.shape), 0, 255).astype(np.uint8)
    hi = np.clip(a + rng.normal(0, 40, a.shape), 0, 255).astype(np.uint8)
    assert ssim(a, lo) == pytest.approx(ssim(lo, a), abs=1e-12)
    assert 1.0 > ssim(a, lo) > ssim(a, hi)


# ------------------------------------------------------------------ temporal L1


def test_temporal_l1_known_value_and_ignores_reference():
    x = np.zeros((3, 4, 4, 3), np.uint8)
    x[1] = 51  # |0-51| then |51-0| -> 51/255 = 0.2 everywhere
    assert temporal_l1(x, None) == pytest.approx(0.2)
    assert temporal_l1(x, _rand((3, 4, 4, 3))) == pytest.approx(0.2)
    assert temporal_l1(np.zeros((1, 4, 4, 3), np.uint8), None) == 0.0


def test_temporal_l1_mask_uses_pixels_masked_in_both_frames():
    x = np.zeros((2, 4, 4, 3), np.uint8)
    x[1, :, :2] = 255  # left half flickers fully
    mask = np.zeros((2, 4, 4), bool)
    mask[:, :, 2:] = True
    assert temporal_l1(x, None, mask) == 0.0
    assert temporal_l1(x, None, ~mask) == pytest.approx(1.0)
    assert temporal_l1(x, None) == pytest.approx(0.5)


# ------------------------------------------------------------------ registry


def test_registry_entries():
    assert {"psnr", "ssim", "temporal_l1", "flow_warp_error"} <= set(METRICS)
    for name, m in METRICS.items():
        assert isinstance(m, MetricInfo) and m.name == name and m.description and callable(m.fn)
    assert METRICS["psnr"].higher_is_better and METRICS["psnr"].needs_reference
    assert METRICS["ssim"].higher_is_better and METRICS["ssim"].needs_reference
    tl = METRICS["temporal_l1"]
    assert not tl.higher_is_better and not tl.needs_reference
    with pytest.raises(AttributeError):
        tl.name = "x"  # type: ignore[misc]


def test_compute_and_unknown_metric():
    a = _rand((3, 16, 16, 3), seed=5)
    b = _rand((3, 16, 16, 3), seed=6)
    res = compute(["psnr", "ssim", "temporal_l1"], a, b)
    assert res == {
        "psnr": psnr(a, b),
        "ssim": ssim(a, b),
        "temporal_l1": temporal_l1(a),
    }
    assert compute(["psnr", "ssim", "temporal_l1"], a, b) == res  # deterministic
    assert compute(["temporal_l1"], a, None) == {"temporal_l1": temporal_l1(a)}
    with pytest.raises(KeyError) as info:
        compute(["psnr", "no_such_metric"], a, b)
    assert info.value.args == ("no_such_metric",)
    with pytest.raises(ValueError):
        compute(["psnr"], a, None)


def test_flow_warp_error_compensates_motion_and_catches_flicker() -> None:
    from engines.common.metrics import flow_warp_error, temporal_l1
    from recut.video import make_test_frames

    moving = make_test_frames(frames=8, width=64, height=64)
    still = np.repeat(moving[:1], 8, axis=0)
    flicker = moving.copy()
    flicker[1::2] = np.clip(flicker[1::2].astype(int) + 60, 0, 255).astype(np.uint8)
    assert flow_warp_error(still) < 1e-6
    # motion is explained by the flow: lower than the raw frame difference
    assert flow_warp_error(moving) < 0.7 * temporal_l1(moving)
    assert flow_warp_error(moving) < 0.02
    # brightness flicker is not motion: large error
    assert flow_warp_error(flicker) > 10 * flow_warp_error(moving)
    assert flow_warp_error(moving[:1]) == 0.0


# ------------------------------------------------------------------ trajectory error


def test_trajectory_error_is_the_mean_distance_over_counted_frames() -> None:
    from engines.common.metrics import trajectory_error

    path = np.array([[0.0, 0.0], [10.0, 0.0], [20.0, 0.0], [30.0, 0.0]])
    track = path + np.array([[3.0, 4.0], [0.0, 0.0], [0.0, 2.0], [100.0, 0.0]])  # distances 5, 0, 2, 100
    assert trajectory_error(track, path) == pytest.approx((5 + 0 + 2 + 100) / 4)
    visible = np.array([True, True, True, False])  # no request at the last frame
    assert trajectory_error(track, path, visible) == pytest.approx(7 / 3)
    lost = track.copy()
    lost[0] = np.nan  # the object was not found in frame 0
    assert trajectory_error(lost, path, visible) == pytest.approx(1.0)
    assert trajectory_error(track, path, np.zeros(4, bool)) != trajectory_error(track, path, np.zeros(4, bool))  # NaN
    assert trajectory_error(path, path) == 0.0
    with pytest.raises(ValueError, match=r"\[T, 2\]"):
        trajectory_error(track[:3], path)
    with pytest.raises(ValueError, match="visible"):
        trajectory_error(track, path, np.ones(3, bool))


# ------------------------------------------------------------------ LPIPS


def _write_lpips_weights(path, seed: int = 0, layout: str = "lpips") -> None:
    """Randomly initialised LPIPS weights in the layout of the reference package (or torchvision's)."""
    import torch

    from engines.common.lpips import ALEX_CONVS

    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, (idx, cin, cout, ks, _, _) in enumerate(ALEX_CONVS):
        prefix = f"net.slice{k + 1}.{idx}" if layout == "lpips" else f"features.{idx}"
        state[f"{prefix}.weight"] = torch.randn(cout, cin, ks, ks, generator=g) * (2.0 / (cin * ks * ks)) ** 0.5
        state[f"{prefix}.bias"] = torch.zeros(cout)
        head = f"lin{k}.model.1.weight" if layout == "lpips" else f"lin{k}.weight"
        state[head] = torch.rand(1, cout, 1, 1, generator=g)  # the heads are non-negative, as trained
    torch.save(state, path)


def test_lpips_with_local_weights_is_zero_for_identity_and_grows_with_distortion(tmp_path, monkeypatch) -> None:
    from engines.common.evaluation import EvalContext
    from engines.common.lpips import ENV_VAR, find_weights, lpips_distance
    from engines.common.metrics import evaluate_all
    from recut.video import make_test_frames

    weights = tmp_path / "alex.pth"
    _write_lpips_weights(weights)
    monkeypatch.setenv(ENV_VAR, str(weights))
    assert find_weights() == (weights, "")
    clip = make_test_frames(frames=3, width=64, height=64)
    rng = np.random.default_rng(0)
    scores = []
    for sigma in (0, 8, 25, 70):
        noisy = np.clip(clip + rng.normal(0, sigma, clip.shape), 0, 255).astype(np.uint8)
        scores.append(evaluate_all(["lpips"], EvalContext(noisy, clip, lpips_weights=str(weights)))["lpips"])
    assert scores[0] == 0.0
    assert all(b > a for a, b in itertools.pairwise(scores)), scores
    # per frame, and symmetric
    noisy = np.clip(clip + rng.normal(0, 25, clip.shape), 0, 255).astype(np.uint8)
    d = lpips_distance(noisy, clip, weights)
    assert d.shape == (3,) and np.allclose(d, lpips_distance(clip, noisy, weights), atol=1e-6)
    # torchvision's key layout loads to the same network
    other = tmp_path / "tv.pth"
    _write_lpips_weights(other, layout="torchvision")
    assert np.allclose(lpips_distance(noisy, clip, other), d, atol=1e-6)


def test_lpips_weights_of_the_wrong_shape_are_a_clear_error(tmp_path) -> None:
    import torch

    from engines.common.lpips import load_lpips

    bad = tmp_path / "bad.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match=r"features\.0\.weight has shape"):
        load_lpips(str(bad))


def test_lpips_without_weights_is_skipped_with_the_reason(tmp_path, monkeypatch) -> None:
    from engines.common.evaluation import EvalContext
    from engines.common.lpips import ENV_VAR, find_weights
    from engines.common.metrics import evaluate_all

    missing = tmp_path / "nowhere" / "alex.pth"
    monkeypatch.setenv(ENV_VAR, str(missing))
    assert find_weights() == (None, f"no LPIPS weights: ${ENV_VAR} is {str(missing)!r}, which is not a file")
    x = _rand((2, 16, 16, 3))
    got = evaluate_all(["psnr", "lpips"], EvalContext(x, x))
    assert got["psnr"] == 100.0
    assert got["lpips"].startswith("skipped: no LPIPS weights") and str(missing) in got["lpips"]
