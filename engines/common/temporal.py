"""Temporal masking of a video UNet: treat a clip as an unordered set of frames.

Dreamix's *frames objective* finetunes a text-to-video UNet on the frames of a
video (or an image collection) as independent images.  Inside
:func:`frames_mode` a diffusers ``UNet3DConditionModel`` computes every frame
on its own:

1. temporal convolutions (``TemporalConvLayer``, residual) are bypassed: they
   return their input;
2. temporal self-attention (the ``Attention`` modules inside every
   ``TransformerTemporalModel``, including ``transformer_in``) is masked to the
   diagonal, so each frame attends only to itself;
3. the ``GroupNorm`` at the entrance of each temporal transformer normalises
   per frame instead of over (channels, frames, height, width) jointly, which
   would otherwise leak statistics across frames.

The weights are shared with the normal (video) mode, so a finetune step in
frames mode trains the spatial layers and the temporal transformers' per-frame
paths.  Everything is restored on exit, also after an exception.

Heavy libraries (diffusers) are imported inside the functions that use them, so that importing
this module costs only torch.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F

__all__ = ["FrameMaskedAttnProcessor", "frames_mode", "temporal_modules"]


class FrameMaskedAttnProcessor:
    """Self-attention over frames with a diagonal mask: frame i attends only to frame i.

    Used on the attention modules of temporal transformers, whose sequence
    axis is the frame axis (``[batch*height*width, frames, channels]``).
    """

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        if getattr(attn, "spatial_norm", None) is not None or getattr(attn, "norm_cross", None) is not None:
            raise NotImplementedError("frame masking supports plain self-attention modules only")
        residual = hidden_states
        b, n, _ = hidden_states.shape
        ctx = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        q, k, v = attn.to_q(hidden_states), attn.to_k(ctx), attn.to_v(ctx)
        if getattr(attn, "norm_q", None) is not None:
            q = attn.norm_q(q)
        if getattr(attn, "norm_k", None) is not None:
            k = attn.norm_k(k)
        heads = attn.heads
        d = k.shape[-1] // heads
        q, k, v = (x.view(b, -1, heads, d).transpose(1, 2) for x in (q, k, v))
        mask = None
        if encoder_hidden_states is None:
            mask = torch.eye(n, dtype=torch.bool, device=hidden_states.device)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=attn.scale)
        out = out.transpose(1, 2).reshape(b, n, heads * d).to(q.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


def _per_frame_group_norm(self: torch.nn.GroupNorm, x: torch.Tensor) -> torch.Tensor:
    """GroupNorm of ``[B, C, T, H, W]`` with statistics per frame (the same affine parameters)."""
    if x.dim() != 5:
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)
    b, c, t, h, w = x.shape
    y = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
    y = F.group_norm(y, self.num_groups, self.weight, self.bias, self.eps)
    return y.reshape(b, t, c, h, w).permute(0, 2, 1, 3, 4)


def _bypass(self: torch.nn.Module, hidden_states: torch.Tensor, num_frames: int = 1) -> torch.Tensor:
    return hidden_states


def temporal_modules(unet: torch.nn.Module) -> tuple[list[torch.nn.Module], list[torch.nn.Module]]:
    """``(temporal convolution layers, temporal transformers)`` of a diffusers video UNet."""
    from diffusers.models.resnet import TemporalConvLayer
    from diffusers.models.transformers.transformer_temporal import TransformerTemporalModel

    convs = [m for m in unet.modules() if isinstance(m, TemporalConvLayer)]
    transformers = [m for m in unet.modules() if isinstance(m, TransformerTemporalModel)]
    return convs, transformers


@contextmanager
def frames_mode(unet: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Within the block, ``unet`` treats the frames of its input as independent images."""
    from diffusers.models.attention_processor import Attention

    convs, transformers = temporal_modules(unet)
    if not convs and not transformers:
        raise ValueError(f"{type(unet).__name__} has no temporal layers to mask")
    patched: list[torch.nn.Module] = []
    processors: list[tuple[Any, Any]] = []
    try:
        # 1. temporal convolutions: identity
        for conv in convs:
            conv.forward = types.MethodType(_bypass, conv)  # type: ignore[method-assign]
            patched.append(conv)
        for tr in transformers:
            # 3. per-frame statistics at the transformer's entrance
            tr.norm.forward = types.MethodType(_per_frame_group_norm, tr.norm)  # type: ignore[method-assign]
            patched.append(tr.norm)
            # 2. diagonal attention over frames
            for m in tr.modules():
                if isinstance(m, Attention):
                    processors.append((m, m.processor))
                    m.set_processor(FrameMaskedAttnProcessor())
        yield unet
    finally:
        for m in patched:
            del m.forward
        for m, proc in processors:
            m.set_processor(proc)
