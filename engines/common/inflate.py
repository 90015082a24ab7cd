"""Inflate a text-to-image UNet into a text-to-set (T2S) model over the frames of a clip.

The pattern of Tune-A-Video and Video-P2P, built by wrapping diffusers modules,
never by forking them:

1. **Per-frame convolutions (1x3x3).**  The clip ``[B, C, F, h, w]`` is folded
   to ``[B*F, C, h, w]``; every 2-D convolution, norm and resnet of the image
   UNet then acts on each frame alone, which is exactly a 1x3x3 3-D convolution.
2. **Frame attention.**  Every self-attention (``attn1``) gets a
   :class:`T2SAttnProcessor` whose keys and values come from other frames:
   ``first`` (Video-P2P: the first frame), ``sparse_causal`` (Tune-A-Video:
   the first and the previous frame) or ``self`` (each frame alone; the image
   model's attention, kept as an ablation).  The projections are the image
   model's own weights.
3. **Temporal attention.**  Every transformer block gets ``attn_temp``
   (attention over the frame axis at each spatial position) and ``norm_temp``,
   applied residually after the block through a forward hook.  The output
   projection starts at zero, so before tuning the T2S model is the image model
   frame by frame (for ``first``/``sparse_causal`` on frame 0 and on any static
   clip; for ``self`` on every frame).

Attention hooks: when ``state.hook`` is set, attention probabilities are
computed explicitly and passed through
``hook(probs, is_cross, place, heads) -> probs`` with ``probs`` of shape
``[B*F*heads, N, M]`` (``place`` is ``down``/``mid``/``up``).  That is how
:mod:`engines.common.p2p` edits attention.  A hook with a ``wants(is_cross) -> bool``
method is only called (and maps only materialised) where it returns True; a hook with a
``rowwise(is_cross) -> bool`` method that returns True acts on each query row alone, and gets the maps
in blocks of rows (at most :data:`HOOK_BLOCK_ELEMENTS` at once).  Without a hook the processors use
``scaled_dot_product_attention`` (the memory-efficient path), and
``state.frame_chunk`` bounds how many frames' self-attention run at once.

Heavy libraries (diffusers) are imported inside the functions that use them, so that importing
this module costs only torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

FrameAttention = Literal["first", "sparse_causal", "self"]
FRAME_ATTENTION: tuple[str, ...] = ("first", "sparse_causal", "self")
AttentionHook = Callable[[torch.Tensor, bool, str, int], torch.Tensor]

__all__ = ["FRAME_ATTENTION", "T2SAttnProcessor", "T2SState", "T2SUNet", "frame_context", "inflate"]

#: The largest block of attention maps the hook path materialises at once (elements: 2^27, 256 MiB in
#: bfloat16), for a hook whose ``rowwise(is_cross)`` says it acts on each query row alone. Frame
#: attention at 512x512 over 4 frames and two prompts with guidance holds 16 x 8 heads x 4096 x 4096 maps
#: in one layer: 4 GiB in bfloat16, 8 GiB in float32 (measured in benchmarks/fullsize.py).
HOOK_BLOCK_ELEMENTS = 1 << 27


@dataclass
class T2SState:
    """Shared, mutable settings every processor and temporal hook reads."""

    frame_attention: str = "first"
    num_frames: int = 1
    latent_hw: tuple[int, int] = (0, 0)
    hook: AttentionHook | None = None
    #: Frames per self-attention call on the hook-free path (0 = all at once); memory only.
    frame_chunk: int = 0


def frame_context(hidden: torch.Tensor, num_frames: int, mode: str) -> torch.Tensor:
    """Keys/values source for frame attention: ``[B*F, N, C] -> [B*F, N or 2N, C]``."""
    if mode == "self" or num_frames == 1:
        return hidden
    bf, n, c = hidden.shape
    b = bf // num_frames
    hb = hidden.view(b, num_frames, n, c)
    first = hb[:, [0] * num_frames]
    if mode == "first":
        return first.reshape(bf, n, c)
    if mode == "sparse_causal":
        prev = hb[:, [max(i - 1, 0) for i in range(num_frames)]]
        return torch.cat([first, prev], dim=2).reshape(bf, 2 * n, c)
    raise ValueError(f"frame_attention {mode!r} is not one of {', '.join(FRAME_ATTENTION)}")


class T2SAttnProcessor:
    """Attention processor for ``attn1`` (frame attention) and ``attn2`` (cross-attention) of a T2S UNet."""

    def __init__(self, state: T2SState, place: str, name: str) -> None:
        self.state = state
        self.place = place
        self.name = name

    def __call__(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        st = self.state
        residual = hidden_states
        if hidden_states.ndim != 3:
            raise ValueError(f"{self.name}: T2S attention expects [B*F, N, C] tokens, got {tuple(hidden_states.shape)}")
        is_cross = encoder_hidden_states is not None
        if is_cross:
            context = encoder_hidden_states
            if attn.norm_cross:
                context = attn.norm_encoder_hidden_states(context)
        else:
            context = frame_context(hidden_states, st.num_frames, st.frame_attention)
        query = attn.to_q(hidden_states)
        key = attn.to_k(context)
        value = attn.to_v(context)
        wants = getattr(st.hook, "wants", None)
        if st.hook is not None and (wants is None or wants(is_cross)):
            q, k, v = attn.head_to_batch_dim(query), attn.head_to_batch_dim(key), attn.head_to_batch_dim(value)
            mask = attn.prepare_attention_mask(attention_mask, context.shape[1], context.shape[0])
            rowwise = getattr(st.hook, "rowwise", None)
            rows = max(1, HOOK_BLOCK_ELEMENTS // (q.shape[0] * k.shape[1]))
            if mask is None and rows < q.shape[1] and rowwise is not None and rowwise(is_cross):
                # 1. the maps a block of query rows at a time: a softmax runs over one row's keys, so the
                #    rows give the same result in any grouping, and the hook acts row by row
                outs = []
                for r in range(0, q.shape[1], rows):
                    probs = attn.get_attention_scores(q[:, r : r + rows], k, None)
                    outs.append(torch.bmm(st.hook(probs, is_cross, self.place, attn.heads), v))
                out = attn.batch_to_head_dim(torch.cat(outs, dim=1))
            else:
                probs = attn.get_attention_scores(q, k, mask)
                probs = st.hook(probs, is_cross, self.place, attn.heads)
                out = attn.batch_to_head_dim(torch.bmm(probs, v))
        else:
            out = self._sdpa(attn, query, key, value, attention_mask)
        out = attn.to_out[1](attn.to_out[0](out))
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor

    def _sdpa(
        self, attn: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        b, n, _ = query.shape
        h = attn.heads
        d = query.shape[-1] // h

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(x.shape[0], x.shape[1], h, d).transpose(1, 2)

        if mask is not None:
            mask = attn.prepare_attention_mask(mask, key.shape[1], b).view(b, h, -1, key.shape[1])
        chunk = self.state.frame_chunk if self.state.frame_chunk > 0 and mask is None else b
        outs = []
        for i in range(0, b, chunk):
            q, k, v = split(query[i : i + chunk]), split(key[i : i + chunk]), split(value[i : i + chunk])
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=attn.scale)
            outs.append(o.transpose(1, 2).reshape(q.shape[0], n, h * d))
        return torch.cat(outs)


def _place(name: str) -> str:
    for p in ("down", "mid", "up"):
        if name.startswith(p):
            return p
    return "other"


def _temporal_hook(state: T2SState) -> Callable[[nn.Module, Any, torch.Tensor], torch.Tensor]:
    def hook(block: nn.Module, args: Any, out: torch.Tensor) -> torch.Tensor:
        f = state.num_frames
        if f <= 1:
            return out
        bf, n, c = out.shape
        b = bf // f
        x = out.view(b, f, n, c).permute(0, 2, 1, 3).reshape(b * n, f, c)
        x = block.attn_temp(block.norm_temp(x)) + x
        return x.view(b, n, f, c).permute(0, 2, 1, 3).reshape(bf, n, c)

    return hook


class T2SUNet(nn.Module):
    """A T2I UNet used as a text-to-set model: ``forward(sample [B,C,F,h,w], t, text [B,L,D] or [B,F,L,D])``."""

    def __init__(self, unet: nn.Module, frame_attention: str = "first", temporal: bool = True) -> None:
        super().__init__()
        if frame_attention not in FRAME_ATTENTION:
            raise ValueError(f"frame_attention {frame_attention!r} is not one of {', '.join(FRAME_ATTENTION)}")
        self.unet = unet
        self.state = T2SState(frame_attention=frame_attention)
        self.temporal = temporal
        self._install()

    @property
    def config(self) -> Any:
        return self.unet.config

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    def _install(self) -> None:
        from diffusers.models.attention import BasicTransformerBlock
        from diffusers.models.attention_processor import Attention

        # 1. frame attention + cross-attention processors
        procs = {name: T2SAttnProcessor(self.state, _place(name), name) for name in self.unet.attn_processors}
        self.unet.set_attn_processor(procs)
        if not self.temporal:
            return
        # 2. temporal attention after every transformer block, zero output projection; the other
        #    weights of the new layers come from a fixed seed, so inflation is reproducible
        ref = next(self.unet.parameters())
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self._add_temporal(ref, BasicTransformerBlock, Attention)

    def _add_temporal(self, ref: torch.Tensor, block_cls: type, attention_cls: type) -> None:
        for _, block in self.unet.named_modules():
            if not isinstance(block, block_cls):
                continue
            dim = block.attn1.to_q.in_features
            heads = block.attn1.heads
            block.norm_temp = nn.LayerNorm(dim).to(ref.device, ref.dtype)
            block.attn_temp = attention_cls(query_dim=dim, heads=heads, dim_head=dim // heads, bias=False).to(
                ref.device, ref.dtype
            )
            nn.init.zeros_(block.attn_temp.to_out[0].weight)
            nn.init.zeros_(block.attn_temp.to_out[0].bias)
            block.register_forward_hook(_temporal_hook(self.state))

    def forward(self, sample: torch.Tensor, timestep: Any, encoder_hidden_states: torch.Tensor) -> Any:
        from diffusers.models.unets.unet_2d_condition import UNet2DConditionOutput

        b, c, f, h, w = sample.shape
        x = sample.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)
        t = torch.as_tensor(timestep, device=sample.device)
        if t.ndim == 1 and t.shape[0] == b:
            t = t.repeat_interleave(f)
        text = encoder_hidden_states
        if text.ndim == 4:  # one text state per frame (per-frame null-text)
            text = text.reshape(b * f, *text.shape[2:])
        else:
            text = text.repeat_interleave(f, dim=0)
        self.state.num_frames = f
        self.state.latent_hw = (h, w)
        out = self.unet(x, t, encoder_hidden_states=text).sample
        return UNet2DConditionOutput(sample=out.view(b, f, *out.shape[1:]).permute(0, 2, 1, 3, 4))


def inflate(unet: nn.Module, frame_attention: str = "first", temporal: bool = True) -> T2SUNet:
    """Turn a ``UNet2DConditionModel`` (modified in place) into a :class:`T2SUNet`."""
    return T2SUNet(unet, frame_attention=frame_attention, temporal=temporal)
