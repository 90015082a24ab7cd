"""Metrics against a toy scene's ground truth, and the spec checks they need.

Every function here takes an :class:`engines.common.metrics.EvalContext` whose ``truth`` is
the toy input's :class:`ToyTruth`; judging uses the pixel and mask statistics of
:mod:`toyworld.judge`, never a model.  Their names and descriptions are data in
:mod:`toyworld.metric_table`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from engines.common.metric_table import METRICS
from engines.common.metrics import EvalContext, MetricSkipped, psnr, trajectory_error
from toyworld import scene as toy
from toyworld.judge import judge_object, object_masks, pan_drift


@dataclass
class ToyTruth:
    """The ground truth of a toy input at the frames the run used.

    ``clip`` is the input (frames, masks, full masks, tracks, visibility) at
    those frames; ``index`` maps them to the scene's frames; ``drift`` ``[T, 2]``
    is the image-space camera drift at each (zero without a pan).
    """

    clip: Any
    index: np.ndarray
    drift: np.ndarray

    @property
    def scene(self) -> Any:
        return self.clip.scene

    def target(self, objects: list[dict[str, str]]) -> Any:
        """The input scene re-rendered with the prompt's objects (:func:`target_scene`), at the same frames."""

        return toy.render(target_scene(self.scene, objects)).at(self.index)


def load_toy_truth(pre_dir: Any, frames: dict[str, Any] | None = None) -> ToyTruth | None:
    """The ground truth a toy preprocess artifact carries; None for any other input.

    ``frames`` is the spec's ``input.frames`` (start/count/stride); default: all frames.
    """

    d = Path(pre_dir)
    if not (d / "truth.npz").exists() or not (d / "scene.json").exists():
        return None
    clip = toy.load_truth(d)
    scene = clip.scene
    idx = toy.frame_index(scene.frames, frames)
    if len(idx) != clip.frames.shape[0]:
        raise ValueError(
            f"the toy truth has {clip.frames.shape[0]} frames, but input.frames selects {len(idx)} of the scene's "
            f"{scene.frames}"
        )
    drift = pan_drift(scene.camera_pan, scene.frames, scene.width, scene.height)[idx]
    return ToyTruth(clip, idx, drift)


_ATTRS = ("colour", "shape", "size", "motion")


def target_scene(scene: Any, objects: list[dict[str, str]]) -> Any:
    """``scene`` with object k given the colour, shape, size and motion of ``objects[k]``.

    Objects the prompt does not name (k >= len(objects)) are dropped; objects it
    adds (k >= len(scene.objects)) have no known place and are left out.
    Everything else (start points, speed, depth, background, pan, seed) is kept,
    so an object whose motion changes follows the path the toy renderer gives
    that motion from the same seed.  Not re-validated: a prompt may recolour an
    object to the background colour.
    """
    kept = [
        obj.model_copy(update={a: objects[k][a] for a in _ATTRS}) for k, obj in enumerate(scene.objects[: len(objects)])
    ]
    return scene.model_copy(update={"objects": kept})


def changed_objects(src: list[dict[str, str]], dst: list[dict[str, str]]) -> list[int]:
    """Indices of the source objects the prompt changes (any of colour/shape/size/motion) or drops."""
    return [k for k, o in enumerate(src) if k >= len(dst) or any(o[a] != dst[k][a] for a in _ATTRS)]


def _parse(truth: ToyTruth, prompt: str) -> tuple[list[dict[str, str]], list[dict[str, str]]]:

    try:
        dst = toy.parse_caption(prompt)
    except ValueError as exc:
        raise ValueError(f"toy metrics need a prompt in the toy caption grammar: {exc}") from None
    return toy.parse_caption(toy.caption(truth.scene)), dst


def edited_region_from_truth(pre_dir: Any, prompt: str, frames: dict[str, Any] | None = None) -> np.ndarray | None:
    """Toy inputs: where the objects the prompt changes are ([T,H,W], True = edited).

    The source caption and the prompt are parsed with the toy grammar and
    paired object by object; an object whose colour, shape, size or motion
    differs (or that the prompt drops) is edited.  Its region is its silhouette
    in the input plus its silhouette in :func:`target_scene` (where the prompt
    puts it: a new motion or size moves it).  None when the input is not a toy
    scene or the prompt does not parse.
    """
    truth = load_toy_truth(pre_dir, frames)
    if truth is None:
        return None
    try:
        src, dst = _parse(truth, prompt)
    except ValueError:
        return None
    return _edited_region(truth, src, dst)


def _edited_region(truth: ToyTruth, src: list[dict[str, str]], dst: list[dict[str, str]]) -> np.ndarray:
    full = truth.clip.full_masks  # [T, K, H, W]
    changed = changed_objects(src, dst)
    edited = np.zeros((full.shape[0], full.shape[2], full.shape[3]), dtype=bool)
    for k in changed:
        edited |= full[:, k]
    moved = [k for k in changed if k < len(dst)]
    if moved:
        new = truth.target(dst).full_masks
        for k in moved:
            edited |= new[:, k]
    return edited


def judge_toy_object(
    frames: np.ndarray, obj: dict[str, str], drift: np.ndarray, unoccluded: np.ndarray | None = None
) -> dict[str, Any]:
    """:func:`toyworld.judge.judge_object` with the exact camera drift of the used frames.

    ``track`` is the centroid per frame minus ``drift`` (NaN where the object is
    not found), and the motion is judged on that track.  ``unoccluded`` ``[T]``
    (from the truth: frames where no other object hides a tenth of this one)
    restricts the shape vote to those frames, since an occluded silhouette is
    not its shape; without such frames all frames vote.
    """

    res = judge_object(frames, obj["colour"], obj["shape"], None, pan="none")
    if unoccluded is not None and unoccluded.any() and not unoccluded.all():
        clear = judge_object(frames[unoccluded], obj["colour"], obj["shape"], None, pan="none")
        res.update(shape=res["colour"] and clear["shape_pred"] == obj["shape"], shape_pred=clear["shape_pred"])
    track = res["track"] - drift
    present = np.isfinite(track).all(1)
    pred = toy.motion_direction(np.nan_to_num(track), visible=present) if present.any() else "unknown"
    res.update(track=track, motion_pred=pred, motion=res["colour"] and pred == obj["motion"])
    res["all"] = bool(res["colour"] and res["shape"] and res["motion"])
    return res


@dataclass
class ToyAnalysis:
    truth: ToyTruth
    frames: np.ndarray  # the output at the truth's size
    src: list[dict[str, str]]
    dst: list[dict[str, str]]
    judged: list[dict[str, Any]]  # one per prompt object


def toy_analysis(ctx: EvalContext) -> ToyAnalysis:
    """Parse, judge every object the prompt names (memoised on ctx)."""
    if "toy" in ctx.extras:
        return ctx.extras["toy"]
    truth: ToyTruth | None = ctx.truth
    if truth is None:
        # validation refuses toy metrics on other inputs; a toy clip the method resampled in time or
        # space (Dreamix's degradation to another base size) no longer matches its truth
        raise MetricSkipped("no ground truth matches this output (the method resampled the toy clip)")
    src, dst = _parse(truth, ctx.prompt)
    frames = _at_truth_size(ctx.output, truth)
    target = truth.target(dst)  # where the prompt puts each object, to know when it is occluded
    shown = target.masks.sum((2, 3)) >= 0.9 * np.maximum(target.full_masks.sum((2, 3)), 1)  # [T, K]
    judged = [
        judge_toy_object(frames, o, truth.drift, shown[:, k] if k < shown.shape[1] else None) for k, o in enumerate(dst)
    ]
    ctx.extras["toy"] = ToyAnalysis(truth, frames, src, dst, judged)
    return ctx.extras["toy"]


def _at_truth_size(output: np.ndarray, truth: ToyTruth) -> np.ndarray:
    """The output resized to the truth's frame size (nearest), with as many frames."""

    t, h, w = truth.clip.frames.shape[:3]
    if output.shape[0] != t:
        raise ValueError(f"the output has {output.shape[0]} frames, the toy truth {t}")
    if output.shape[1:3] == (h, w):
        return output
    return np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_NEAREST) for f in output])


def toy_edit_success(ctx: EvalContext) -> dict[str, float]:
    """1.0 if every object the prompt names is judged right in colour, shape and motion; per-attribute rates."""
    a = toy_analysis(ctx)
    j = a.judged
    return {
        "toy_edit_success": float(all(r["all"] for r in j)),
        "toy_edit_colour": float(np.mean([r["colour"] for r in j])),
        "toy_edit_shape": float(np.mean([r["shape"] for r in j])),
        "toy_edit_motion": float(np.mean([r["motion"] for r in j])),
    }


def toy_unedited_psnr(ctx: EvalContext) -> float:
    """PSNR vs the input outside the changed objects' input and target silhouettes (and any added object)."""

    a = toy_analysis(ctx)
    edited = _edited_region(a.truth, a.src, a.dst)
    for k in range(len(a.src), len(a.dst)):  # an added object has no place in the truth: where it was found
        edited |= object_masks(a.frames, a.dst[k]["colour"])[0]
    kernel = np.ones((3, 3), np.uint8)
    edited = np.stack([cv2.dilate(f.astype(np.uint8), kernel) > 0 for f in edited])
    if edited.all():
        raise MetricSkipped("the edit covers every pixel; nothing is left to compare")
    ref = a.truth.clip.frames
    return psnr(a.frames, ref, ~edited)


def toy_unedited_objects_kept(ctx: EvalContext) -> float:
    """Fraction of the objects the prompt leaves unchanged that keep colour, shape and motion."""

    a = toy_analysis(ctx)
    changed = set(changed_objects(a.src, a.dst))
    same = [k for k in range(min(len(a.src), len(a.dst))) if k not in changed]
    if not same:
        raise MetricSkipped("the prompt changes every object of the scene")
    return float(np.mean([a.judged[k]["all"] for k in same]))


def trajectory_object(src: list[dict[str, str]], dst: list[dict[str, str]], requested: int | None) -> int:
    """The object whose path is measured: ``requested``, else the first one the prompt changes, else 0."""
    if requested is not None:
        return requested
    moved = [k for k in changed_objects(src, dst) if k < len(dst)]
    return moved[0] if moved else 0


def requested_path(a: ToyAnalysis, k: int, path: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(points [T, 2] pan compensated, visible [T])`` of the requested path of object ``k``.

    ``truth``: the object's ground-truth track in the input; ``prompt``: its track
    in :func:`target_scene`; a list: image-space points per frame (None = no request).
    """
    t = a.truth.clip.frames.shape[0]
    if path in ("truth", "prompt"):
        clip = a.truth.clip if path == "truth" else a.truth.target(a.dst)
        if k >= clip.tracks.shape[0]:
            raise ValueError(f"evaluate.trajectory.path {path!r}: the input scene has no object {k}")
        return clip.tracks[k].astype(np.float64) - a.truth.drift, clip.visible[k].astype(bool)
    pts = np.full((t, 2), np.nan)
    if len(path) != t:
        raise ValueError(f"evaluate.trajectory.path has {len(path)} points, the output has {t} frames")
    for i, p in enumerate(path):
        if p is not None:
            pts[i] = p
    visible = np.isfinite(pts).all(1)
    return pts - a.truth.drift, visible


def toy_trajectory_error(ctx: EvalContext) -> dict[str, float | str]:
    """Mean pixel distance of the object's judged track from the requested path; coverage of the path."""

    a = toy_analysis(ctx)
    req = ctx.trajectory or {}
    k = trajectory_object(a.src, a.dst, req.get("object"))
    if k >= len(a.dst):
        raise ValueError(f"evaluate.trajectory.object is {k}, but the prompt names {len(a.dst)} object(s)")
    path, visible = requested_path(a, k, req.get("path", "truth"))
    track = a.judged[k]["track"]
    found = np.isfinite(track).all(1) & visible
    coverage = float(found.sum() / max(1, visible.sum()))
    err = trajectory_error(track, path, visible)
    if not np.isfinite(err):
        o = a.dst[k]
        return {
            "toy_trajectory_error": f"n/a: the {o['colour']} {o['shape']} is not found on any frame of the path",
            "toy_trajectory_coverage": coverage,
        }
    return {"toy_trajectory_error": err, "toy_trajectory_coverage": coverage}


# --------------------------------------------------------------------------- spec checks


def check_evaluate(spec: Any, listed: bool = False) -> list[tuple[str, str]]:
    """Cross-field checks of a spec's ``evaluate`` section: ``(field.path, message)`` pairs.

    1. a toy metric, and ``mask: truth``, need a toy input; 2. their prompts must parse with the
    toy grammar; 3. ``trajectory`` needs ``toy_trajectory_error``, points one per frame, an object
    the prompts (and, for ``truth``/``prompt`` paths, the scene) have.
    """

    ev = spec.evaluation
    issues: list[tuple[str, str]] = []
    toy_metrics = [(i, m) for i, m in enumerate(ev.metrics) if "truth" in METRICS[m].needs]
    scene = spec.input.toy
    truth_mask = isinstance(ev.mask, str) and ev.mask == "truth"
    if truth_mask and scene is None:
        issues.append(
            (
                "evaluate.mask",
                f"'truth' is a toy scene's ground truth (its edited objects), but the input is "
                f"`input.{spec.input.kind}`, which has none; use `auto`, `engine`, a .npy file or `none`",
            )
        )
    # 1. toy input
    if scene is None:
        for i, m in toy_metrics:
            where = f"evaluate.{i}" if listed else f"evaluate.metrics.{i}"
            issues.append(
                (
                    where,
                    f"metric {m!r} measures against a toy scene's ground truth, but the input is "
                    f"`input.{spec.input.kind}`, not `input.toy`",
                )
            )
        if ev.trajectory is not None:
            issues.append(("evaluate.trajectory", "a trajectory request needs a toy input (`input.toy`)"))
        return issues
    # 2. prompts in the toy grammar
    named: dict[int, int] = {}
    if toy_metrics or truth_mask:
        needs = "toy metrics need" if toy_metrics else "evaluate.mask 'truth' needs"
        for i, e in enumerate(spec.edits):
            try:
                named[i] = len(toy.parse_caption(e.prompt))
            except ValueError as exc:
                issues.append((f"edits.{i}.prompt", f"{needs} a prompt in the toy caption grammar: {exc}"))
    # 3. the trajectory request
    tr = ev.trajectory
    if tr is None:
        return issues
    if "toy_trajectory_error" not in ev.metrics:
        issues.append(("evaluate.trajectory", "is set, but `toy_trajectory_error` is not in evaluate.metrics"))
        return issues
    fr = spec.input.frames
    n_frames = len(toy.frame_index(scene.frames, fr.model_dump()))
    if isinstance(tr.path, list) and len(tr.path) != n_frames:
        issues.append(
            (
                "evaluate.trajectory.path",
                f"has {len(tr.path)} points, but the edit has {n_frames} frames; give one [x, y] (or null) per frame",
            )
        )
    if tr.object is not None:
        for i, n in named.items():
            if tr.object >= n:
                issues.append(
                    ("evaluate.trajectory.object", f"is {tr.object}, but edits.{i}.prompt names {n} object(s)")
                )
                break
        if tr.path in ("truth", "prompt") and tr.object >= len(scene.objects):
            issues.append(
                (
                    "evaluate.trajectory.object",
                    f"is {tr.object}, but the toy scene has {len(scene.objects)} "
                    f"object(s); path {tr.path!r} follows a scene object",
                )
            )
    return issues
