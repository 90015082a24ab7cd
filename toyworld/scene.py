"""Toy scenes: deterministic synthetic videos with exact ground truth.

A :class:`ToyScene` describes 1-3 flat-coloured shapes moving over a textured
background, optionally seen by a panning camera.  :func:`render` turns it into
a :class:`ToyClip`: the frames plus everything an evaluation needs (per-object
visible and full masks, a depth map, centre tracks, visibility flags and a
caption from a small fixed grammar).  Rendering is pure vectorised numpy (no
anti-aliasing: masks are exact and frames contain only palette colours on the
objects), and fully determined by the scene, including its ``seed``.

Conventions
-----------
* Pixel coordinates: ``x`` is the column, ``y`` the row, and the centre of
  pixel ``(row i, col j)`` is ``(x=j, y=i)``; the frame spans
  ``[-0.5, W-0.5] x [-0.5, H-0.5]``.  ``tracks`` use these coordinates.
* Normalised coordinates (``ToyObject.start``): ``(0, 0)`` is the top-left
  corner of the frame, ``(1, 1)`` the bottom-right one.
* Lengths (object size, speed, circle radius, wave amplitude) are fractions of
  ``S = min(width, height)``.
* Depth: 0 is nearest, 1 farthest; the background is at exactly 1.0.
  Objects without an explicit depth get ``(K - i) / (K + 1)`` (``i`` = list
  index, ``K`` = number of objects): later objects are nearer and occlude
  earlier ones.  At equal depth the later object is drawn on top.
* Motion paths (in image space, i.e. including the camera pan) are translated,
  never distorted, so that at most ``1 - MARGIN`` of each object's reach
  (radius, half side, triangle vertex) leaves the frame in any frame; linear travel, circle
  radius and wave amplitude are capped to the room available.
  ``start`` is the centre at frame 0 for static/linear motions and the centre
  of the path for ``circle``/``wave``; ``start=None`` lets the scene ``seed``
  choose (linear motions then start on the side opposite to their direction).
* Camera pan: the camera moving ``left`` makes the whole scene (background and
  objects) drift right in the image, ``up`` makes it drift down, etc., by
  ``min(PAN_MAX, PAN_PER_FRAME * (T - 1))`` of the frame width/height over the
  clip.  ``tracks`` are image-space and include that drift.

Files (:func:`write_clip` / :func:`load_truth`)::

    out_dir/video.mp4    H.264 (lossy) preview/input video at scene.fps
    out_dir/frames.npy   uint8 [T,H,W,3], lossless
    out_dir/truth.npz    masks, full_masks, depth, tracks, visible (compressed)
    out_dir/scene.json   {"generator_version", "digest", "caption",
                          "object_captions", "scene": <ToyScene as JSON>}

Heavy libraries (cv2, and :mod:`recut.video`, which imports av and cv2) are imported inside the
functions that use them, so that importing this module stays cheap (``import recut.cli`` imports
it: it provides ``input.toy``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "BACKGROUNDS",
    "COLOURS",
    "GENERATOR_VERSION",
    "MOTIONS",
    "PANS",
    "SHAPES",
    "SIZES",
    "ToyBackground",
    "ToyClip",
    "ToyObject",
    "ToyScene",
    "caption",
    "caption_vocabulary",
    "classify_shape",
    "colour_mask",
    "dominant_colour",
    "load_truth",
    "motion_direction",
    "object_caption",
    "parse_caption",
    "render",
    "sample_scene",
    "sample_scenes",
    "tokenize_caption",
    "toy_digest",
    "write_clip",
]

#: Bumped whenever the same scene would render differently (part of :func:`toy_digest`).
GENERATOR_VERSION = "1"

# --------------------------------------------------------------------------- vocabulary

SHAPES = ("circle", "square", "triangle")
#: Palette; pairwise RGB distances are >= ~80 so colours survive lossy video coding.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (40, 70, 220),
    "yellow": (235, 210, 40),
    "purple": (150, 50, 200),
    "orange": (245, 130, 20),
    "cyan": (40, 200, 210),
    "white": (240, 240, 240),
}
#: Object "radius" as a fraction of ``min(width, height)``.
SIZES: dict[str, float] = {"small": 0.12, "medium": 0.18, "large": 0.25}
BACKGROUNDS = ("plain", "gradient", "stripes")
MOTIONS = ("static", "left", "right", "up", "down", "circle", "wave")
PANS = ("none", "left", "right", "up", "down")

Shape = Literal["circle", "square", "triangle"]
Colour = Literal["red", "green", "blue", "yellow", "purple", "orange", "cyan", "white"]
SizeName = Literal["small", "medium", "large"]
BackgroundKind = Literal["plain", "gradient", "stripes"]
Motion = Literal["static", "left", "right", "up", "down", "circle", "wave"]
Pan = Literal["none", "left", "right", "up", "down"]

assert get_args(Shape) == SHAPES and get_args(Colour) == tuple(COLOURS) and get_args(SizeName) == tuple(SIZES)
assert get_args(BackgroundKind) == BACKGROUNDS and get_args(Motion) == MOTIONS and get_args(Pan) == PANS

# --------------------------------------------------------------------------- geometry constants

MARGIN = 0.8  #: at least this fraction of an object's reach from its centre stays inside the frame
SQUARE_HALF = 0.85  #: half side of a square, in radii
TRIANGLE_R = 1.2  #: circumradius of the (upward, equilateral) triangle, in radii
CIRCLE_PATH_R = 0.2  #: radius of a `circle` path, fraction of S
WAVE_AMPLITUDE = 0.1  #: vertical amplitude of a `wave` path, fraction of S
WAVE_PERIOD = 8.0  #: frames per wave oscillation
PAN_PER_FRAME = 0.025  #: camera pan per frame, fraction of the frame width/height
PAN_MAX = 0.25  #: total pan over the clip is capped at this fraction
STRIPE_WIDTH = 0.125  #: stripe period (along x + y), fraction of S
GRADIENT_PAD = 0.3  #: gradient is defined beyond the frame so a pan stays inside it
SHADE = 0.45  #: default colour2 = colour * SHADE (a darker shade)

# --------------------------------------------------------------------------- models

Unit = Annotated[float, Field(ge=0.0, le=1.0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ToyObject(_Strict):
    """One flat-coloured shape and how it moves."""

    shape: Shape = Field(..., description="circle, square or triangle.")
    colour: Colour = Field(..., description=f"Palette colour: {', '.join(COLOURS)}.")
    size: SizeName = Field(
        "medium", description="small, medium or large (radius 0.12 / 0.18 / 0.25 of min(width, height))."
    )
    motion: Motion = Field(
        "static",
        description="static, left, right, up, down (linear), circle (around `start`) "
        "or wave (rightwards with a vertical oscillation, centred on `start`).",
    )
    speed: float = Field(
        0.05,
        gt=0.0,
        le=0.5,
        description="Path length per frame as a fraction of min(width, height); "
        "capped so the object stays inside the frame.",
    )
    start: tuple[Unit, Unit] | None = Field(
        None,
        description="Normalised (x, y) centre at frame 0 (static/linear) or path centre (circle/wave); "
        "moved as little as needed to keep the object inside. None: chosen from the scene seed.",
    )
    depth: float | None = Field(
        None,
        ge=0.0,
        lt=1.0,
        description="0 = nearest .. 1 = farthest (background is 1). None: by list order, later objects nearer.",
    )


class ToyBackground(_Strict):
    """The backdrop: flat, a diagonal gradient or diagonal stripes."""

    kind: BackgroundKind = Field("plain", description="plain, gradient or stripes (textures make a pan visible).")
    colour: Colour = Field("white", description="Main background colour (the one named in the caption).")
    colour2: Colour | None = Field(
        None, description="Second colour of a gradient/stripes. None: a darker shade of `colour`."
    )


class ToyScene(_Strict):
    """A complete synthetic clip: objects, background, camera, size and seed."""

    objects: list[ToyObject] = Field(..., min_length=1, max_length=3, description="1 to 3 objects.")
    background: ToyBackground = Field(default_factory=ToyBackground, description="The background.")
    camera_pan: Pan = Field("none", description="Camera motion: none, left, right, up or down.")
    frames: int = Field(12, ge=1, le=256, description="Number of frames (8..64 is typical).")
    width: int = Field(64, ge=16, le=1024, description="Frame width in pixels.")
    height: int = Field(64, ge=16, le=1024, description="Frame height in pixels.")
    fps: float = Field(8.0, gt=0.0, le=240.0, description="Frame rate of the written video.")
    seed: int = Field(
        0,
        ge=0,
        le=2**63 - 1,
        description="Seed for everything left unspecified (start points, circle phases); below 2^63.",
    )

    @model_validator(mode="after")
    def _visible_colours(self) -> ToyScene:
        bg = {self.background.colour, self.background.colour2} - {None}
        for i, obj in enumerate(self.objects):
            if obj.colour in bg:
                raise ValueError(
                    f"objects.{i}.colour: {obj.colour!r} is also a background colour; the object would be invisible"
                )
        return self


# --------------------------------------------------------------------------- captions

_MOTION_PHRASE = {
    "static": "",
    "left": "moving left",
    "right": "moving right",
    "up": "moving up",
    "down": "moving down",
    "circle": "moving in a circle",
    "wave": "moving in a wave",
}
_BG_WORD = {"plain": "plain", "gradient": "gradient", "stripes": "striped"}


def object_caption(obj: ToyObject) -> str:
    """``"a [small|large] {colour} {shape}[ moving ...]"`` (medium size is not named)."""
    words = ["a"]
    if obj.size != "medium":
        words.append(obj.size)
    words += [obj.colour, obj.shape]
    if obj.motion != "static":
        words.append(_MOTION_PHRASE[obj.motion])
    return " ".join(words)


def caption(scene: ToyScene) -> str:
    """The scene caption, e.g. ``"a small red circle moving left and a blue square over a striped
    yellow background, camera panning left"``."""
    text = " and ".join(object_caption(o) for o in scene.objects)
    text += f" over a {_BG_WORD[scene.background.kind]} {scene.background.colour} background"
    if scene.camera_pan != "none":
        text += f", camera panning {scene.camera_pan}"
    return text


def caption_vocabulary() -> list[str]:
    """Every token captions can contain (sorted; ``","`` is a token, see :func:`tokenize_caption`)."""
    words = {"a", "and", "over", "background", "moving", "in", "camera", "panning", ","}
    words |= set(SHAPES) | set(COLOURS) | {s for s in SIZES if s != "medium"}
    words |= {"left", "right", "up", "down", "circle", "wave"} | set(_BG_WORD.values())
    return sorted(words)


def tokenize_caption(text: str) -> list[str]:
    """Lower-cased word tokens of ``text``, with ``","`` as a separate token."""
    return re.findall(r"[a-z]+|,", text.lower())


def parse_caption(text: str) -> list[dict[str, str]]:
    """Recover ``{"colour", "shape", "size", "motion"}`` of each object named in a caption.

    Accepts the grammar of :func:`caption` (articles a/an/the, an optional
    ``medium``); the background/camera part after ``over`` or ``,`` is ignored.
    Raises ``ValueError`` naming the first token it cannot place.
    """
    toks = tokenize_caption(text)
    for stop in ("over", ","):
        if stop in toks:
            toks = toks[: toks.index(stop)]
    chunks: list[list[str]] = [[]]
    for t in toks:
        if t == "and":
            chunks.append([])
        else:
            chunks[-1].append(t)
    out = []
    for chunk in chunks:
        rest = list(chunk)
        if rest and rest[0] in ("a", "an", "the"):
            rest.pop(0)
        size = rest.pop(0) if rest and rest[0] in SIZES else "medium"
        if not rest or rest[0] not in COLOURS:
            raise ValueError(f"cannot parse {' '.join(chunk)!r}: expected a colour ({', '.join(COLOURS)})")
        colour = rest.pop(0)
        if not rest or rest[0] not in SHAPES:
            raise ValueError(f"cannot parse {' '.join(chunk)!r}: expected a shape ({', '.join(SHAPES)})")
        shape = rest.pop(0)
        motion = "static"
        if rest and rest[0] == "moving":
            rest.pop(0)
            if rest and rest[0] in ("left", "right", "up", "down"):
                motion = rest.pop(0)
            elif rest[:1] == ["in"]:
                rest.pop(0)
                if rest and rest[0] in ("a", "an"):
                    rest.pop(0)
                if rest and rest[0] in ("circle", "wave"):
                    motion = rest.pop(0)
                else:
                    raise ValueError(f"cannot parse {' '.join(chunk)!r}: expected 'in a circle' or 'in a wave'")
            else:
                raise ValueError(f"cannot parse {' '.join(chunk)!r}: expected a direction after 'moving'")
        if rest:
            raise ValueError(f"cannot parse {' '.join(chunk)!r}: unexpected {rest[0]!r}")
        out.append({"colour": colour, "shape": shape, "size": size, "motion": motion})
    return out


# --------------------------------------------------------------------------- rendering


@dataclass
class ToyClip:
    """A rendered scene and its ground truth (``T`` frames, ``K`` objects, in scene order).

    * ``frames``: uint8 ``[T, H, W, 3]``.
    * ``masks``: bool ``[T, K, H, W]``, pixels where object k is visible (after occlusion);
      disjoint across objects.
    * ``full_masks``: bool ``[T, K, H, W]``, object silhouettes ignoring occlusion (clipped to the frame).
    * ``depth``: float32 ``[T, H, W]``, depth of the visible surface (background 1.0).
    * ``tracks``: float32 ``[K, T, 2]``, object centre ``(x, y)`` in pixel coordinates (image space).
    * ``visible``: bool ``[K, T]``, the centre lies inside the frame and its pixel shows object k.
    """

    frames: np.ndarray
    masks: np.ndarray
    full_masks: np.ndarray
    depth: np.ndarray
    tracks: np.ndarray
    visible: np.ndarray
    caption: str
    object_captions: list[str]
    scene: ToyScene

    @property
    def fps(self) -> float:
        return self.scene.fps

    def at(self, index: np.ndarray) -> ToyClip:
        """The clip and its ground truth at the scene frames ``index`` (e.g. a start/stride selection)."""
        return ToyClip(
            frames=self.frames[index],
            masks=self.masks[index],
            full_masks=self.full_masks[index],
            depth=self.depth[index],
            tracks=self.tracks[:, index],
            visible=self.visible[:, index],
            caption=self.caption,
            object_captions=self.object_captions,
            scene=self.scene,
        )


def frame_index(total: int, frames: dict[str, Any] | None) -> np.ndarray:
    """Indices of the scene frames a spec's ``input.frames`` (start, count, stride) keeps."""
    frames = frames or {}
    start, count, stride = frames.get("start") or 0, frames.get("count"), frames.get("stride") or 1
    stop = None if count is None else start + count * stride
    return np.arange(total)[start:stop:stride]


def _depths(scene: ToyScene) -> list[float]:
    k = len(scene.objects)
    return [o.depth if o.depth is not None else (k - i) / (k + 1) for i, o in enumerate(scene.objects)]


def _pan_offsets(scene: ToyScene) -> np.ndarray:
    """Image-space drift ``[T, 2]`` (pixels) of the whole scene caused by the camera."""
    t_n = scene.frames
    off = np.zeros((t_n, 2))
    if scene.camera_pan == "none" or t_n < 2:
        return off
    axis = 0 if scene.camera_pan in ("left", "right") else 1
    dim = scene.width if axis == 0 else scene.height
    total = min(PAN_MAX, PAN_PER_FRAME * (t_n - 1)) * dim
    sign = 1.0 if scene.camera_pan in ("left", "up") else -1.0
    off[:, axis] = sign * total * np.arange(t_n) / (t_n - 1)
    return off


#: How far each shape reaches from its centre (left, right, up, down), in radii.
_EXTENTS = {
    "circle": (1.0, 1.0, 1.0, 1.0),
    "square": (SQUARE_HALF,) * 4,
    "triangle": (TRIANGLE_R * math.sqrt(3) / 2, TRIANGLE_R * math.sqrt(3) / 2, TRIANGLE_R, TRIANGLE_R / 2),
}
_LINEAR = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}


def _tracks(scene: ToyScene, off: np.ndarray) -> np.ndarray:
    """Object centres ``[K, T, 2]`` (float64 pixels, image space)."""
    t_n, w, h = scene.frames, scene.width, scene.height
    s = min(w, h)
    t = np.arange(t_n, dtype=np.float64)
    frac = t / (t_n - 1) if t_n > 1 else np.zeros(1)
    extent = np.abs(off[-1])  # pan travel per axis
    dims = np.array([w, h], dtype=np.float64)
    rng = np.random.default_rng(scene.seed)
    out = np.zeros((len(scene.objects), t_n, 2))
    for k, obj in enumerate(scene.objects):
        u = rng.random(3)  # always drawn: x, y, phase (keeps other objects stable)
        left, right, up, down = _EXTENTS[obj.shape]
        r = MARGIN * SIZES[obj.size] * s
        lo = np.minimum(np.array([left, up]) * r - 0.5, dims / 2 - 0.5)
        hi = np.maximum(dims - 0.5 - np.array([right, down]) * r, dims / 2 - 0.5)
        room = np.maximum(hi - lo - extent, 0.0)  # travel left once the pan is accounted for
        step = obj.speed * s
        q = np.zeros((t_n, 2))
        if obj.motion in _LINEAR:
            d = np.array(_LINEAR[obj.motion])
            axis = 0 if d[0] else 1
            length = min(step * (t_n - 1), room[axis])
            q = d[None, :] * length * frac[:, None]
        elif obj.motion == "circle":
            rad = min(CIRCLE_PATH_R * s, room.min() / 2)
            omega = step / rad if rad > 0 else 0.0
            ang = 2 * math.pi * u[2] + omega * t
            q = np.stack([rad * np.cos(ang), rad * np.sin(ang)], axis=1)
        elif obj.motion == "wave":
            length = min(step * (t_n - 1), room[0])
            amp = min(WAVE_AMPLITUDE * s, room[1] / 2)
            q = np.stack([length * (frac - 0.5), -amp * np.sin(2 * math.pi * t / WAVE_PERIOD)], axis=1)
        q = q + off
        # offsets o (position of q == 0) keeping the whole image-space path inside [lo, hi]
        o_lo, o_hi = lo - q.min(axis=0), hi - q.max(axis=0)
        mid = (o_lo + o_hi) / 2
        if obj.start is not None:
            o = np.array(obj.start) * dims - 0.5
        else:
            o = o_lo + u[:2] * (o_hi - o_lo)
            if obj.motion in _LINEAR:  # start on the side opposite to the direction
                axis = 0 if obj.motion in ("left", "right") else 1
                o[axis] = o_lo[axis] if _LINEAR[obj.motion][axis] > 0 else o_hi[axis]
        o = np.where(o_lo <= o_hi, np.clip(o, o_lo, np.maximum(o_lo, o_hi)), mid)
        out[k] = q + o
    return out


def _shape_mask(shape: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    if shape == "circle":
        return dx * dx + dy * dy <= r * r
    if shape == "square":
        a = SQUARE_HALF * r
        return (np.abs(dx) <= a) & (np.abs(dy) <= a)
    # upward equilateral triangle, centroid at the centre: inside iff n_i . d <= inradius for each edge
    rr = TRIANGLE_R * r
    c = math.sqrt(3) / 2
    return (dy <= rr / 2) & (c * dx - 0.5 * dy <= rr / 2) & (-c * dx - 0.5 * dy <= rr / 2)


def _colour2(bg: ToyBackground) -> np.ndarray:
    if bg.colour2 is not None:
        return np.array(COLOURS[bg.colour2], dtype=np.float32)
    return np.rint(np.array(COLOURS[bg.colour], dtype=np.float32) * SHADE)


def _background(scene: ToyScene, off: np.ndarray) -> np.ndarray:
    t_n, h, w = scene.frames, scene.height, scene.width
    bg = scene.background
    c1 = np.array(COLOURS[bg.colour], dtype=np.float32)
    if bg.kind == "plain":
        return np.broadcast_to(c1.astype(np.uint8), (t_n, h, w, 3)).copy()
    c2 = _colour2(bg)
    off32 = off.astype(np.float32)
    xw = np.arange(w, dtype=np.float32)[None, None, :] - off32[:, 0, None, None]  # world coordinates
    yw = np.arange(h, dtype=np.float32)[None, :, None] - off32[:, 1, None, None]
    if bg.kind == "gradient":
        g = (xw / w + yw / h + GRADIENT_PAD) / (2 + 2 * GRADIENT_PAD)
        g = np.clip(g, 0.0, 1.0)[..., None]
        return np.rint(c1 + g * (c2 - c1)).astype(np.uint8)
    period = max(2.0, STRIPE_WIDTH * min(w, h))
    band = np.floor((xw + yw) / (period / 2)).astype(np.int64) & 1
    return np.stack([c1, c2]).astype(np.uint8)[band]


def render(scene: ToyScene) -> ToyClip:
    """Render ``scene`` deterministically (see the module docstring for conventions)."""
    t_n, h, w = scene.frames, scene.height, scene.width
    k_n = len(scene.objects)
    s = min(w, h)
    off = _pan_offsets(scene)
    tracks = _tracks(scene, off)
    xs = np.arange(w, dtype=np.float32)[None, None, :]
    ys = np.arange(h, dtype=np.float32)[None, :, None]
    full = np.empty((t_n, k_n, h, w), dtype=bool)
    for k, obj in enumerate(scene.objects):
        cx = tracks[k, :, 0].astype(np.float32)[:, None, None]
        cy = tracks[k, :, 1].astype(np.float32)[:, None, None]
        full[:, k] = _shape_mask(obj.shape, xs - cx, ys - cy, SIZES[obj.size] * s)
    depths = _depths(scene)
    owner = np.full((t_n, h, w), -1, dtype=np.int8)
    for k in sorted(range(k_n), key=lambda i: (-depths[i], i)):  # far to near
        owner[full[:, k]] = k
    masks = owner[:, None] == np.arange(k_n, dtype=np.int8)[None, :, None, None]
    depth = np.array([*depths, 1.0], dtype=np.float32)[owner]  # owner -1 -> background
    colours = np.array([COLOURS[o.colour] for o in scene.objects] + [(0, 0, 0)], dtype=np.uint8)
    frames = np.where((owner >= 0)[..., None], colours[owner], _background(scene, off))
    xi = np.rint(tracks[..., 0]).astype(np.int64)
    yi = np.rint(tracks[..., 1]).astype(np.int64)
    inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
    tt = np.broadcast_to(np.arange(t_n), (k_n, t_n))
    shown = owner[tt, np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)] == np.arange(k_n)[:, None]
    return ToyClip(
        frames=frames,
        masks=masks,
        full_masks=full,
        depth=depth,
        tracks=tracks.astype(np.float32),
        visible=inside & shown,
        caption=caption(scene),
        object_captions=[object_caption(o) for o in scene.objects],
        scene=scene,
    )


# --------------------------------------------------------------------------- sampling


def sample_scene(
    rng: np.random.Generator,
    *,
    max_objects: int = 3,
    frames: int = 12,
    size: int = 64,
    motions: Sequence[str] = MOTIONS,
    pan_prob: float = 0.2,
) -> ToyScene:
    """A random scene: 1..max_objects objects of distinct colours, a background colour
    distinct from all of them, random shapes/sizes/motions (from ``motions``), speeds in
    [0.04, 0.08], a random background kind, a pan with probability ``pan_prob``, and a
    random scene seed (which places the objects)."""
    if not 1 <= max_objects <= 3:
        raise ValueError(f"max_objects must be 1..3, got {max_objects}")
    motions = tuple(motions)
    bad = [m for m in motions if m not in MOTIONS]
    if not motions or bad:
        raise ValueError(f"motions must be a non-empty subset of {MOTIONS}, got {motions}")
    names = list(COLOURS)
    n = int(rng.integers(1, max_objects + 1))
    picks = rng.permutation(len(names))[: n + 1]
    objects = []
    for i in range(n):
        objects.append(
            ToyObject(
                shape=SHAPES[int(rng.integers(len(SHAPES)))],
                colour=names[int(picks[i])],
                size=tuple(SIZES)[int(rng.integers(len(SIZES)))],
                motion=motions[int(rng.integers(len(motions)))],
                speed=round(float(rng.uniform(0.04, 0.08)), 3),
            )
        )
    kind = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    pan = PANS[1 + int(rng.integers(4))] if rng.random() < pan_prob else "none"
    return ToyScene(
        objects=objects,
        background=ToyBackground(kind=kind, colour=names[int(picks[n])]),
        camera_pan=pan,
        frames=frames,
        width=size,
        height=size,
        seed=int(rng.integers(0, 2**31 - 1)),
    )


def sample_scenes(seed: int, count: int, start: int = 0, **kwargs: Any) -> Iterator[ToyScene]:
    """Scenes ``start .. start+count-1`` of the dataset ``seed``: scene ``i`` is
    ``sample_scene(np.random.default_rng([seed, i]), **kwargs)``, so it does not depend on ``count``."""
    for i in range(start, start + count):
        yield sample_scene(np.random.default_rng([seed, i]), **kwargs)


# --------------------------------------------------------------------------- files


def toy_digest(scene: ToyScene) -> str:
    """sha256 of the canonical JSON of ``scene`` and :data:`GENERATOR_VERSION` (a cache key)."""
    doc = {"generator_version": GENERATOR_VERSION, "scene": scene.model_dump(mode="json")}
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


_TRUTH = ("masks", "full_masks", "depth", "tracks", "visible")


def write_clip(clip: ToyClip, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write ``video.mp4``, ``frames.npy``, ``truth.npz`` and ``scene.json`` into ``out_dir``
    (created if needed); returns ``{"video", "frames", "truth", "scene"}`` -> path."""
    from recut.video import save_frames, write_mp4

    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    paths = {
        "video": d / "video.mp4",
        "frames": d / "frames.npy",
        "truth": d / "truth.npz",
        "scene": d / "scene.json",
    }
    write_mp4(paths["video"], clip.frames, clip.scene.fps)
    save_frames(paths["frames"], clip.frames)
    with open(paths["truth"], "wb") as fh:
        np.savez_compressed(fh, **{name: getattr(clip, name) for name in _TRUTH})
    doc = {
        "generator_version": GENERATOR_VERSION,
        "digest": toy_digest(clip.scene),
        "caption": clip.caption,
        "object_captions": clip.object_captions,
        "scene": clip.scene.model_dump(mode="json"),
    }
    paths["scene"].write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return paths


def load_truth(out_dir: str | os.PathLike[str]) -> ToyClip:
    """Read a folder written by :func:`write_clip` back into a :class:`ToyClip`.

    Frames come from the lossless ``frames.npy`` (decoded from ``video.mp4`` if that
    file is missing); ground truth from ``truth.npz``; scene and captions from
    ``scene.json``.  Raises ``FileNotFoundError`` if ``scene.json`` or ``truth.npz``
    is missing.
    """
    d = Path(out_dir)
    doc = json.loads((d / "scene.json").read_text(encoding="utf-8"))
    scene = ToyScene.model_validate(doc["scene"])
    if (d / "frames.npy").exists():
        frames = np.load(d / "frames.npy", allow_pickle=False)
    else:
        from recut.video import read_video

        frames, _ = read_video(d / "video.mp4")
        frames = frames[:, : scene.height, : scene.width]
    with np.load(d / "truth.npz", allow_pickle=False) as z:
        truth = {name: z[name] for name in _TRUTH}
    return ToyClip(
        frames=frames,
        caption=doc.get("caption", caption(scene)),
        object_captions=list(doc.get("object_captions", [object_caption(o) for o in scene.objects])),
        scene=scene,
        **truth,
    )


# --------------------------------------------------------------------------- evaluation helpers

_PALETTE_NAMES = list(COLOURS)
_PALETTE = np.array([COLOURS[n] for n in _PALETTE_NAMES], dtype=np.float32)


def _nearest_colour(rgb: np.ndarray) -> np.ndarray:
    """Index of the nearest palette colour for each ``[..., 3]`` RGB value."""
    d = ((rgb[..., None, :].astype(np.float32) - _PALETTE) ** 2).sum(-1)
    return d.argmin(-1)


def dominant_colour(frames: np.ndarray, mask: np.ndarray) -> str:
    """Palette name nearest to the per-channel median colour of ``frames`` under ``mask``.

    ``frames`` is ``[..., 3]`` (an image or a clip) and ``mask`` a bool array of the
    same leading shape.  Returns ``"unknown"`` for an empty mask.
    """
    frames = np.asarray(frames)
    mask = np.asarray(mask, dtype=bool)
    if frames.shape[:-1] != mask.shape:
        raise ValueError(f"mask shape {mask.shape} does not match frames {frames.shape}")
    px = frames[mask]
    if px.shape[0] == 0:
        return "unknown"
    return _PALETTE_NAMES[int(_nearest_colour(np.median(px, axis=0)))]


def colour_mask(frames: np.ndarray, colour: str, tol: float = 60.0) -> np.ndarray:
    """Pixels whose nearest palette colour is ``colour`` and within ``tol`` (RGB distance) of it."""
    if colour not in COLOURS:
        raise ValueError(f"unknown colour {colour!r}; known: {', '.join(COLOURS)}")
    frames = np.asarray(frames).astype(np.float32)
    target = np.array(COLOURS[colour], dtype=np.float32)
    near = _nearest_colour(frames) == _PALETTE_NAMES.index(colour)
    return near & (np.sqrt(((frames - target) ** 2).sum(-1)) <= tol)


def classify_shape(mask2d: np.ndarray, min_pixels: int = 12) -> str:
    """``"circle"``, ``"square"`` or ``"triangle"`` from the geometry of a 2-D mask.

    Uses the largest 8-connected component and its fill ratio (pixels / box area),
    taking the better of the axis-aligned box and the minimum-area rotated box:
    square ~1.0, circle ~0.785, triangle ~0.5 (rotation-invariant).  Returns
    ``"unknown"`` when the component has fewer than ``min_pixels`` pixels.
    """
    import cv2

    m = np.asarray(mask2d, dtype=bool)
    if m.ndim != 2:
        raise ValueError(f"classify_shape expects a 2-D mask, got shape {m.shape}")
    if m.sum() < min_pixels:
        return "unknown"
    n_lab, labels, stats, _ = cv2.connectedComponentsWithStats(m.astype(np.uint8), connectivity=8)
    if n_lab > 2:
        best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        m = labels == best
    n = int(m.sum())
    if n < min_pixels:
        return "unknown"
    ys, xs = np.nonzero(m)
    fill_axis = n / ((xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1))
    pts = np.stack([xs, ys], axis=1).astype(np.float32)
    (_, _), (rw, rh), _ = cv2.minAreaRect(pts)
    fill_rot = n / ((rw + 1) * (rh + 1))
    fill = max(fill_axis, fill_rot)
    if fill >= 0.9:
        return "square"
    if fill >= 0.65:
        return "circle"
    return "triangle"


def motion_direction(track: np.ndarray, min_move: float = 2.0, visible: np.ndarray | None = None) -> str:
    """Classify a centre track ``[T, 2]`` (pixels) as one of :data:`MOTIONS`.

    ``static`` if no point is ``min_move`` pixels from the first; ``left/right/up/down``
    by the larger component of the net displacement when the path is straight (no
    point deviates more than ``max(min_move, 0.1 * net)`` from the start-end line);
    otherwise ``circle`` when the path always turns the same way, ``wave`` when the
    turning changes sign.  ``visible`` ``[T]`` restricts the track to visible frames.
    Heuristic: slow or very short circle arcs read as straight motion.
    """
    p = np.asarray(track, dtype=np.float64)
    if visible is not None:
        p = p[np.asarray(visible, dtype=bool)]
    if p.ndim != 2 or p.shape[-1] != 2:
        raise ValueError(f"motion_direction expects a [T, 2] track, got shape {p.shape}")
    if len(p) < 2:
        return "static"
    rel = p - p[0]
    if np.linalg.norm(rel, axis=1).max() < min_move:
        return "static"
    net = rel[-1]
    d = float(np.linalg.norm(net))
    dev = float(np.abs(rel @ np.array([-net[1], net[0]]) / d).max()) if d > 1e-9 else float("inf")
    if dev > max(min_move, 0.1 * d):
        steps = np.diff(p, axis=0)
        steps = steps[np.linalg.norm(steps, axis=1) > 1e-6]
        heading = np.arctan2(steps[:, 1], steps[:, 0])
        turn = (np.diff(heading) + np.pi) % (2 * np.pi) - np.pi
        turn = turn[np.abs(turn) > 0.05]
        if turn.size and (np.all(turn > 0) or np.all(turn < 0)):
            return "circle"
        return "wave"
    if abs(net[0]) >= abs(net[1]):
        return "right" if net[0] > 0 else "left"
    return "down" if net[1] > 0 else "up"
