"""ReVideo sampling: the SVD-class model from the edited first frame, with the control module's
residuals from the content (the unedited region of the input) and the trajectory maps, window by window.

Steps of :func:`generate`: 1. the windows; 2. per window: the reference frame (the edited first frame,
then the last generated frame the window shares), the window's conditions, the controlled Euler
sampling (engines.common.svd.sample with a ``unet_fn``), decode; 3. stitch, keeping the frames a
window shares with the previous one from the previous one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from engines.common import svd
from engines.revideo.editing import windows


@dataclass
class ReVideoComponents:
    base: svd.SVDComponents
    control: Any = None  # engines.revideo.control.ControlModule, or None (the base alone)

    @property
    def frames(self) -> int:
        """The base UNet's frame count (its ``num_frames``)."""
        return int(self.base.unet.config.num_frames)

    @property
    def multiple(self) -> int:
        """Frame sizes must be multiples of this (the VAE's and the UNet's downsampling)."""
        return self.base.vae_scale * 2 ** (len(self.base.unet.config.block_out_channels) - 1)


def controlled(
    c: ReVideoComponents, content: torch.Tensor, motion: torch.Tensor, keep: torch.Tensor, scale: float
) -> svd.UNetFn:
    """A ``unet_fn`` that adds the control module's residuals (the same conditions in both guidance branches)."""

    def run(x: torch.Tensor, t: Any, emb: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        down, mid = c.control(
            x,
            t,
            emb,
            ids,
            content.expand(b, -1, -1, -1, -1),
            motion.expand(b, -1, -1, -1, -1),
            keep.expand(b, -1, -1, -1, -1),
            scale,
        )
        return svd.unet_forward(c.base.unet, x, t, emb, ids, down, mid)

    return run


@torch.no_grad()
def generate(
    c: ReVideoComponents,
    frames: np.ndarray,
    first: np.ndarray,
    keep: np.ndarray,
    motion: np.ndarray,
    s: svd.I2VSettings,
    window: int,
    overlap: int,
    scale: float = 1.0,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """``(frames uint8 [T, H, W, 3], windows)``: the edit of ``frames`` (uint8 ``[T, H, W, 3]``) from the
    edited ``first`` frame, with ``keep`` (bool ``[T, H, W]``, M: True where the input is unedited) and
    the trajectory maps ``motion`` (``[T, 2, H, W]``); ``c.control`` None runs the base alone."""
    t_total = frames.shape[0]
    # 1. the windows
    spans = windows(t_total, window, overlap)
    out = np.zeros_like(frames)
    done, total = 0, s.steps * len(spans)

    def tick(i: int, n: int) -> None:
        if progress is not None:
            progress(done + i, total)

    for k, (a, b) in enumerate(spans):
        # 2. the window: reference, conditions, sampling, decode
        ref = first if k == 0 else out[a]
        fn = None
        if c.control is not None:
            content = torch.from_numpy(frames[a:b]).permute(0, 3, 1, 2)[None].float() / 127.5 - 1.0
            mot = torch.from_numpy(motion[a:b]).clone()[None]
            mot[:, 0] = 0.0  # a window's first frame has no displacement of its own
            m = torch.from_numpy(keep[a:b]).float()[None, :, None]
            dt = c.base.dtype
            fn = controlled(c, content.to(dt), mot.to(dt), m.to(dt), scale)
        lat = svd.sample(c.base, ref, replace(s, frames=b - a, seed=s.seed + k), unet_fn=fn, progress=tick)
        dec = svd.decode(c.base, lat, s.decode_chunk)
        # 3. stitch: frames shared with the previous window stay as that window made them
        keep_from = 0 if k == 0 else overlap
        out[a + keep_from : b] = dec[keep_from:]
        done += s.steps
    return out, spans
