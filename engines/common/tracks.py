"""Point trajectories of a clip: tracking, the ReVideo track sampling, drawn paths and motion maps.

* :func:`track_grid`: pyramidal Lucas-Kanade (OpenCV) from a grid of points on frame 0, frame to frame,
  with a forward-backward check; a point that fails it (or leaves the frame) is lost for the rest of
  the clip. No weights.
* :func:`sample_tracks` (ReVideo, Mou et al. 2024, Sec. 3.2): sparsify the tracks on a coarser grid, keep
  those at least as long as the mean (ties kept), and draw N in 1..``max_tracks`` of them with probability
  proportional to their normalised length.
* :func:`drawn_path`: a user's trajectory ``[[frame, x, y], ...]`` interpolated to every frame.
* :func:`motion_maps`: tracks rasterised to per-frame displacement maps ``[T, 2, H, W]`` (the x and y
  displacement from the previous frame at the point's position), Gaussian-filtered.

Points are ``(x, y)`` in pixel coordinates of the frames; ``visible`` ``[N, T]`` marks where a track
is known. Lucas-Kanade sees motion only where a point's window has texture: a point inside a flat
object over a textured background stays with the background, and a background point beside a moving
edge on a flat background follows the edge (the aperture problem). On the toy world's flat objects
over plain or gradient backgrounds, points on the object follow its true motion to within 0.1-0.3 px
(tests/test_tracks.py); over stripes they do not.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Tracks:
    points: np.ndarray  # float32 [N, T, 2]
    visible: np.ndarray  # bool [N, T]

    def __len__(self) -> int:
        return int(self.points.shape[0])

    def lengths(self) -> np.ndarray:
        """Path length of each track over its visible steps, in pixels."""
        step = np.linalg.norm(np.diff(self.points, axis=1), axis=-1)
        both = self.visible[:, 1:] & self.visible[:, :-1]
        return (step * both).sum(1)

    def subset(self, index: np.ndarray) -> Tracks:
        return Tracks(self.points[index], self.visible[index])


def grid_points(height: int, width: int, stride: int) -> np.ndarray:
    """``[N, 2]`` points ``(x, y)`` at the centres of a ``stride``-pixel grid."""
    ys, xs = np.mgrid[stride // 2 : height : stride, stride // 2 : width : stride]
    return np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float32)


def track_grid(frames: np.ndarray, stride: int = 4, window: int = 15, levels: int = 3, fb_max: float = 1.0) -> Tracks:
    """Track a grid of points of frame 0 through ``frames`` (uint8 ``[T, H, W, 3]``)."""
    t, h, w = frames.shape[:3]
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    pts = grid_points(h, w, stride)
    n = len(pts)
    out = np.zeros((n, t, 2), np.float32)
    vis = np.zeros((n, t), bool)
    out[:, 0], vis[:, 0] = pts, True
    lk = {
        "winSize": (window, window),
        "maxLevel": levels,
        "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01),
    }
    for i in range(1, t):
        alive = np.flatnonzero(vis[:, i - 1])
        if alive.size == 0:
            break
        p0 = out[alive, i - 1].reshape(-1, 1, 2)
        p1, st1, _ = cv2.calcOpticalFlowPyrLK(grey[i - 1], grey[i], p0, None, **lk)
        back, st2, _ = cv2.calcOpticalFlowPyrLK(grey[i], grey[i - 1], p1, None, **lk)
        fb = np.linalg.norm((back - p0).reshape(-1, 2), axis=1)
        p1 = p1.reshape(-1, 2)
        inside = (p1[:, 0] >= 0) & (p1[:, 0] <= w - 1) & (p1[:, 1] >= 0) & (p1[:, 1] <= h - 1)
        ok = (st1.ravel() == 1) & (st2.ravel() == 1) & (fb <= fb_max) & inside
        out[alive[ok], i] = p1[ok]
        vis[alive[ok], i] = True
    return Tracks(out, vis)


def sample_tracks(
    tracks: Tracks, rng: np.random.Generator, stride: int = 2, max_tracks: int = 10, min_length: float = 1.0
) -> Tracks:
    """The ReVideo sampling: every ``stride``-th track of the grid, those at least as long as the mean (and
    as ``min_length`` pixels: a still clip has no motion to sample), then N in 1..``max_tracks`` drawn
    without replacement with probability proportional to the normalised length."""
    sparse = tracks.subset(np.arange(0, len(tracks), stride))
    lengths = sparse.lengths()
    if not len(sparse):
        return sparse
    # "longer than the mean", with ties kept: the tracks of one rigidly moving object are all as long
    # as their mean, and a strict comparison would drop every one of them
    moving = np.flatnonzero((lengths >= lengths.mean() * (1 - 1e-6)) & (lengths >= min_length))
    if moving.size == 0:
        return sparse.subset(np.array([], int))
    p = lengths[moving] / lengths[moving].sum()
    k = int(rng.integers(1, min(max_tracks, moving.size) + 1))
    return sparse.subset(np.sort(rng.choice(moving, size=k, replace=False, p=p)))


def drawn_path(points: list[list[float]], frames: int) -> Tracks:
    """One track from ``[[frame, x, y], ...]`` (frames increasing), linear between the given frames and
    unknown (not visible) before the first and after the last."""
    arr = np.asarray(points, np.float64)
    if arr.ndim != 2 or arr.shape[1] != 3 or len(arr) < 1:
        raise ValueError(f"a trajectory is a list of [frame, x, y]; got {points!r}")
    f = arr[:, 0]
    if np.any(np.diff(f) <= 0):
        raise ValueError(f"trajectory frames must increase; got {f.tolist()}")
    t = np.arange(frames)
    xy = np.stack([np.interp(t, f, arr[:, 1]), np.interp(t, f, arr[:, 2])], 1)
    vis = (t >= f[0]) & (t <= f[-1])
    return Tracks(xy[None].astype(np.float32), vis[None])


def motion_maps(tracks: Tracks, height: int, width: int, sigma: float = 2.0) -> np.ndarray:
    """``[T, 2, H, W]`` float32: at each track's position in frame t, its displacement from frame t-1
    (x, y), Gaussian-filtered (peak-normalised, so a lone point keeps its displacement at its centre)."""
    n, t = tracks.visible.shape
    maps = np.zeros((t, 2, height, width), np.float32)
    for i in range(n):
        for j in range(1, t):
            if not (tracks.visible[i, j] and tracks.visible[i, j - 1]):
                continue
            x, y = np.rint(tracks.points[i, j]).astype(int)
            if 0 <= x < width and 0 <= y < height:
                maps[j, :, y, x] += tracks.points[i, j] - tracks.points[i, j - 1]
    if sigma > 0:
        k = int(2 * round(3 * sigma) + 1)
        peak = cv2.GaussianBlur(np.pad(np.ones((1, 1), np.float32), k), (k, k), sigma).max()
        for j in range(t):
            for c in range(2):
                maps[j, c] = cv2.GaussianBlur(maps[j, c], (k, k), sigma, borderType=cv2.BORDER_CONSTANT) / peak
    return maps
