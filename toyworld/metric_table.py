"""The toy world's metrics as data: measured against a toy scene's ground truth (``needs: truth``).

Merged with the product's table by :func:`recut.registry.metrics`; the functions live in
:mod:`toyworld.metrics` and are imported only when a metric runs.
"""

from __future__ import annotations

from recut.engine import MetricInfo

_T = "toyworld.metrics"
_TRUTH = frozenset({"truth"})

TABLE: tuple[MetricInfo, ...] = (
    MetricInfo(
        "toy_edit_success",
        "Toy input: 1 if every object the prompt names is found in the output with its colour, shape "
        "and motion (ground-truth judges, pan compensated), else 0. Also reports the fraction of named "
        "objects with the right colour, shape and motion.",
        higher_is_better=True,
        needs_reference=False,
        impl=f"{_T}:toy_edit_success",
        contextual=True,
        needs=_TRUTH,
        outputs=("toy_edit_colour", "toy_edit_shape", "toy_edit_motion"),
    ),
    MetricInfo(
        "toy_unedited_psnr",
        "Toy input: PSNR (dB) vs the input outside the objects the prompt changes (their input "
        "silhouettes and their silhouettes where the prompt puts them), 1-pixel margin.",
        higher_is_better=True,
        needs_reference=True,
        impl=f"{_T}:toy_unedited_psnr",
        contextual=True,
        needs=_TRUTH,
    ),
    MetricInfo(
        "toy_unedited_objects_kept",
        "Toy input: fraction of the objects the prompt leaves unchanged that keep their colour, "
        "shape and motion in the output.",
        higher_is_better=True,
        needs_reference=False,
        impl=f"{_T}:toy_unedited_objects_kept",
        contextual=True,
        needs=_TRUTH,
    ),
    MetricInfo(
        "toy_trajectory_error",
        "Toy input: mean distance (pixels) between the edited object's judged centroid track and the "
        "requested path (evaluate.trajectory), pan compensated. Also reports the fraction of path "
        "frames in which the object was found.",
        higher_is_better=False,
        needs_reference=False,
        impl=f"{_T}:toy_trajectory_error",
        contextual=True,
        needs=_TRUTH,
        outputs=("toy_trajectory_coverage",),
    ),
)
