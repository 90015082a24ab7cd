"""The product's metrics as data (:class:`recut.engine.MetricInfo`).

Pure data, no evaluation code: :data:`METRICS` merges this table with the toy world's
(toyworld.metric_table, data too), and the core reads it through :func:`recut.registry.metrics`.
"""

from __future__ import annotations

from recut.engine import MetricInfo
from toyworld.metric_table import TABLE as TOY_TABLE

_M = "engines.common.metrics"
_E = "engines.common.evaluation"

TABLE: tuple[MetricInfo, ...] = (
    MetricInfo(
        "psnr",
        "Peak signal-to-noise ratio vs the reference, dB (capped at 100).",
        higher_is_better=True,
        needs_reference=True,
        impl=f"{_M}:psnr",
    ),
    MetricInfo(
        "ssim",
        "Mean SSIM on luma vs the reference (11x11 Gaussian window, sigma 1.5).",
        higher_is_better=True,
        needs_reference=True,
        impl=f"{_M}:ssim",
    ),
    MetricInfo(
        "temporal_l1",
        "Mean absolute difference between consecutive output frames, in [0, 1].",
        higher_is_better=False,
        needs_reference=False,
        impl=f"{_M}:temporal_l1",
    ),
    MetricInfo(
        "clip_text",
        "CLIP text alignment: mean cosine of each frame with the prompt.",
        higher_is_better=True,
        needs_reference=False,
        impl=f"{_E}:clip_text",
        contextual=True,
        needs=frozenset({"clip"}),
    ),
    MetricInfo(
        "clip_consistency_consecutive",
        "CLIP frame consistency, consecutive pairs: mean cosine of frames t and t+1.",
        higher_is_better=True,
        needs_reference=False,
        impl=f"{_E}:clip_consistency_consecutive",
        contextual=True,
        needs=frozenset({"clip"}),
    ),
    MetricInfo(
        "clip_consistency_all_pairs",
        "CLIP frame consistency, all pairs: mean cosine over every pair of frames.",
        higher_is_better=True,
        needs_reference=False,
        impl=f"{_E}:clip_consistency_all_pairs",
        contextual=True,
        needs=frozenset({"clip"}),
    ),
    MetricInfo(
        "masked_psnr",
        "PSNR of the region the edit should leave alone, dB.",
        higher_is_better=True,
        needs_reference=True,
        impl=f"{_E}:masked_psnr",
        contextual=True,
        needs=frozenset({"mask"}),
    ),
    MetricInfo(
        "masked_ssim",
        "SSIM of the region the edit should leave alone.",
        higher_is_better=True,
        needs_reference=True,
        impl=f"{_E}:masked_ssim",
        contextual=True,
        needs=frozenset({"mask"}),
    ),
    MetricInfo(
        "lpips",
        "LPIPS (AlexNet) perceptual distance to the reference, mean over frames; lower is closer. "
        "Runs only with local weights ($RECUT_LPIPS_WEIGHTS or models/lpips/alex.pth), else skipped.",
        higher_is_better=False,
        needs_reference=True,
        impl=f"{_E}:lpips",
        contextual=True,
        needs=frozenset({"lpips"}),
    ),
    MetricInfo(
        "flow_warp_error",
        "Flow warping error: frame t warped onto t+1 by OpenCV optical flow, occlusions "
        "excluded by a forward-backward check; mean absolute difference in [0, 1].",
        higher_is_better=False,
        needs_reference=False,
        impl=f"{_M}:flow_warp_error",
    ),
)

#: Every metric a spec's ``evaluate`` can name, in listing order.
METRICS: dict[str, MetricInfo] = {m.name: m for m in (*TABLE, *TOY_TABLE)}
