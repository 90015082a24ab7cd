"""Image animation and degradation: the coarse input video Dreamix edits.

* :func:`animate` turns one image into ``n`` frames: replication, or a smooth
  sequence of perspective transforms (pan, zoom, or a camera path of key
  frames).  Each frame samples the image through a homography that maps output
  pixels to image pixels; pixels that fall outside the image are filled by
  reflection padding (``cv2.BORDER_REFLECT_101``), never black.
* :func:`degrade_frames` is the deterministic half of Dreamix's degradation:
  spatial downsampling (cover + centre crop) and temporal resampling to the
  base model's resolution and frame count.  The noise half is the sampling
  strength (see :mod:`engines.common.sampling`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from engines.dreamix.params import Animation
from recut import video

__all__ = ["Pose", "animate", "camera_poses", "degrade_frames", "homography", "resample_indices"]


@dataclass(frozen=True)
class Pose:
    """Camera pose: offset (fractions of width/height), zoom, roll (degrees), perspective tilt."""

    x: float = 0.0
    y: float = 0.0
    zoom: float = 1.0
    rotate: float = 0.0
    tilt: float = 0.0


def _ease(u: float) -> float:
    """Cosine ease in/out on [0, 1]: zero velocity at both ends, so key frames join smoothly."""
    return 0.5 - 0.5 * math.cos(math.pi * min(1.0, max(0.0, u)))


def camera_poses(anim: Animation, n: int) -> list[Pose]:
    """The camera pose of each of ``n`` frames."""
    ts = [i / (n - 1) if n > 1 else 0.0 for i in range(n)]
    if anim.kind == "replicate":
        return [Pose() for _ in ts]
    if anim.kind == "pan":
        sx, sy = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}[anim.direction]
        return [Pose(x=sx * anim.amount * t, y=sy * anim.amount * t) for t in ts]
    if anim.kind == "zoom":
        return [Pose(zoom=anim.zoom**t) for t in ts]
    keys = anim.path
    poses = []
    for t in ts:
        if t <= keys[0].t:
            k = keys[0]
            poses.append(Pose(k.x, k.y, k.zoom, k.rotate, k.tilt))
            continue
        if t >= keys[-1].t:
            k = keys[-1]
            poses.append(Pose(k.x, k.y, k.zoom, k.rotate, k.tilt))
            continue
        j = max(i for i, k in enumerate(keys) if k.t <= t)
        a, b = keys[j], keys[j + 1]
        u = _ease((t - a.t) / (b.t - a.t))

        def lerp(p: float, q: float, u: float = u) -> float:
            return p + (q - p) * u

        poses.append(
            Pose(
                lerp(a.x, b.x),
                lerp(a.y, b.y),
                math.exp(lerp(math.log(a.zoom), math.log(b.zoom))),
                lerp(a.rotate, b.rotate),
                lerp(a.tilt, b.tilt),
            )
        )
    return poses


def homography(pose: Pose, width: int, height: int) -> np.ndarray:
    """3x3 matrix mapping output pixel coordinates (x, y, 1) to image coordinates.

    1. perspective tilt: the output rectangle maps to a trapezoid whose top
       edge is ``tilt * width`` narrower (wider for negative tilt);
    2. zoom and roll about the image centre;
    3. the camera offset: output pixel p sees image pixel p + (x*width, y*height),
       so a camera moving right makes the content move left.
    """
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    # 1. tilt
    d = pose.tilt * width / 2.0
    rect = np.float32([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]])
    trap = np.float32([[d, 0], [width - 1 - d, 0], [width - 1, height - 1], [0, height - 1]])
    tilt = cv2.getPerspectiveTransform(rect, trap).astype(np.float64)
    # 2. zoom + roll about the centre
    a = math.radians(pose.rotate)
    s = 1.0 / pose.zoom
    rot = np.array([[math.cos(a) * s, -math.sin(a) * s, 0], [math.sin(a) * s, math.cos(a) * s, 0], [0, 0, 1.0]])
    to_c = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1.0]])
    # 3. offset (and back from the centre)
    back = np.array([[1, 0, cx + pose.x * width], [0, 1, cy + pose.y * height], [0, 0, 1.0]])
    return back @ rot @ to_c @ tilt


def animate(image: np.ndarray, n: int, anim: Animation) -> np.ndarray:
    """uint8 ``[H,W,3]`` image -> uint8 ``[n,H,W,3]`` coarse video (reflection padding outside the image)."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise ValueError(f"animate expects a uint8 [H,W,3] image, got {image.dtype} {image.shape}")
    h, w = image.shape[:2]
    out = np.empty((n, h, w, 3), dtype=np.uint8)
    for i, pose in enumerate(camera_poses(anim, n)):
        if pose == Pose():
            out[i] = image
            continue
        m = homography(pose, w, h)
        out[i] = cv2.warpPerspective(
            image, m, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT_101
        )
    return out


def resample_indices(count: int, target: int) -> np.ndarray:
    """Indices of ``target`` frames spread evenly over ``count`` (repeats when upsampling)."""
    if count < 1 or target < 1:
        raise ValueError(f"need at least one frame (count {count}, target {target})")
    return np.round(np.linspace(0, count - 1, target)).astype(int)


def degrade_frames(frames: np.ndarray, width: int, height: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Spatial + temporal downsampling to the base model: ``(frames [n,height,width,3], source indices)``."""
    idx = resample_indices(frames.shape[0], n)
    return video.fit_frames(frames[idx], width, height, "crop"), idx
