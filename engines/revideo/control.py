"""The ReVideo control module (Mou et al., "ReVideo: Remake a Video with Motion and Content Control", 2024).

* Two condition encoders, each three conv + downsample blocks ending in a zero-initialised conv:
  E_c over the content condition (the masked video V·M and the mask M, 4 channels) and E_m over the
  trajectory maps (2 channels: x and y displacement), both at the latent resolution.
* SAFM, the spatially adaptive fusion: a small conv net predicts Γ = H(M, t) in (0, 1) per latent pixel
  from the mask and the timestep, and f_c = E_c(c_con)·Γ + E_m(c_mot)·(1 − Γ). ``fusion`` selects the
  paper's ablations: ``sum`` (f_c = E_c + E_m) and ``safm_no_t`` (Γ = H(M)).
* A trainable copy of the base UNet's encoder (time embeddings, conv_in, down blocks, mid block); f_c
  is added to its conv_in output, and every skip feature and the mid block's output leave through a
  zero-initialised 1x1 conv as a residual for the base UNet (ControlNet style). At initialisation the
  residuals are zero, so the controlled model starts as the base.

The encoders' strides are configurable so that the condition reaches the VAE's latent size: SVD's
VAE downsamples by 8 (strides 2, 2, 2), the toy VAE by 4 (2, 2, 1).
"""

from __future__ import annotations

import copy
import math
from typing import Any, Literal

import torch
from diffusers import UNetSpatioTemporalConditionModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from engines.common.svd import encoder_pass

Fusion = Literal["safm", "sum", "safm_no_t"]
FUSIONS: tuple[str, ...] = ("safm", "sum", "safm_no_t")
CONTENT_CHANNELS = 4  # V·M (3) and M (1)
MOTION_CHANNELS = 2


def zero_module(m: nn.Module) -> nn.Module:
    for p in m.parameters():
        nn.init.zeros_(p)
    return m


class ConditionEncoder(nn.Module):
    """Three conv + downsample blocks, then a zero conv to the base's first channel count."""

    def __init__(self, in_channels: int, channels: tuple[int, ...], strides: tuple[int, ...], out_channels: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels[0], 3, padding=1), nn.SiLU()]
        prev = channels[0]
        for ch, stride in zip(channels, strides, strict=True):
            layers += [nn.Conv2d(prev, ch, 3, padding=1), nn.SiLU(), nn.Conv2d(ch, ch, 3, padding=1, stride=stride)]
            layers.append(nn.SiLU())
            prev = ch
        self.body = nn.Sequential(*layers)
        self.out = zero_module(nn.Conv2d(prev, out_channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x))


class SAFM(nn.Module):
    """Γ = H(M, t): the fusion weight per latent pixel from the (downsampled) mask and the timestep
    embedding (``use_time`` False: from the mask alone)."""

    def __init__(self, temb_channels: int, hidden: int, strides: tuple[int, ...], use_time: bool = True):
        super().__init__()
        self.use_time = use_time
        self.pool = math.prod(strides)  # plain ints: a tensor here fails under torch.device('meta')
        self.conv_in = nn.Conv2d(1, hidden, 3, padding=1)
        self.time = nn.Linear(temb_channels, hidden) if use_time else None
        self.body = nn.Sequential(nn.SiLU(), nn.Conv2d(hidden, hidden, 3, padding=1), nn.SiLU())
        self.out = nn.Conv2d(hidden, 1, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)  # Γ = 0.5 at first: an even blend

    def forward(self, mask: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        m = nn.functional.avg_pool2d(mask, self.pool) if self.pool > 1 else mask
        h = self.conv_in(m)
        if self.time is not None:
            h = h + self.time(temb)[:, :, None, None]
        return torch.sigmoid(self.out(self.body(h)))


class ControlModule(ModelMixin, ConfigMixin):
    """ReVideo's control module for an SVD-class ``UNetSpatioTemporalConditionModel``."""

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        unet_config: dict[str, Any] | None = None,
        encoder_channels: tuple[int, ...] = (16, 32, 64),
        encoder_strides: tuple[int, ...] = (2, 2, 2),
        fusion: Fusion = "safm",
        safm_channels: int = 32,
    ):
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}; got {fusion!r}")
        if len(encoder_channels) != 3 or len(encoder_strides) != 3:
            raise ValueError(
                f"the condition encoders are three blocks: got channels {encoder_channels}, strides {encoder_strides}"
            )
        cfg = {k: v for k, v in (unet_config or {}).items() if not k.startswith("_")}
        base = UNetSpatioTemporalConditionModel(**cfg)
        # the encoder half, under the base's own attribute names (so that its weights copy by name)
        self.time_proj, self.time_embedding = base.time_proj, base.time_embedding
        self.add_time_proj, self.add_embedding = base.add_time_proj, base.add_embedding
        self.conv_in, self.down_blocks, self.mid_block = base.conv_in, base.down_blocks, base.mid_block
        del base
        c0 = int(self.conv_in.out_channels)
        self.content_encoder = ConditionEncoder(CONTENT_CHANNELS, tuple(encoder_channels), tuple(encoder_strides), c0)
        self.motion_encoder = ConditionEncoder(MOTION_CHANNELS, tuple(encoder_channels), tuple(encoder_strides), c0)
        temb = int(self.time_embedding.linear_2.out_features)
        self.safm = (
            SAFM(temb, safm_channels, tuple(encoder_strides), use_time=fusion == "safm") if fusion != "sum" else None
        )
        skip_channels = [c0]
        for block in self.down_blocks:
            skip_channels += [int(r.spatial_res_block.out_channels) for r in block.resnets]
            if block.downsamplers is not None:
                skip_channels.append(int(block.downsamplers[0].out_channels))
        self.zero_convs = nn.ModuleList([zero_module(nn.Conv2d(c, c, 1)) for c in skip_channels])
        mid = int(self.mid_block.resnets[-1].spatial_res_block.out_channels)
        self.mid_zero_conv = zero_module(nn.Conv2d(mid, mid, 1))

    @classmethod
    def from_unet(cls, unet: Any, **kwargs: Any) -> ControlModule:
        """A control module whose encoder starts as a copy of ``unet``'s."""
        module = cls(unet_config={k: v for k, v in unet.config.items() if not k.startswith("_")}, **kwargs)
        own = {k: v for k, v in copy.deepcopy(unet.state_dict()).items() if k.split(".")[0] in _ENCODER_PARTS}
        missing = module.load_state_dict(own, strict=False)
        if missing.unexpected_keys:
            raise RuntimeError(f"control module: unexpected encoder weights {missing.unexpected_keys[:4]}")
        return module

    def fused(
        self, content: torch.Tensor, motion: torch.Tensor, mask: torch.Tensor, temb: torch.Tensor
    ) -> torch.Tensor:
        """f_c ``[B*T, C0, h, w]`` from the flattened conditions ``[B*T, ·, H, W]``."""
        fc, fm = self.content_encoder(content), self.motion_encoder(motion)
        if self.safm is None:
            return fc + fm
        gamma = self.safm(mask, temb)
        return fc * gamma + fm * (1.0 - gamma)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: Any,
        encoder_hidden_states: torch.Tensor,
        added_time_ids: torch.Tensor,
        content: torch.Tensor,
        motion: torch.Tensor,
        mask: torch.Tensor,
        scale: float = 1.0,
    ) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """Residuals (one per skip feature, and the mid block's) for ``sample`` ``[B, T, C, h, w]``.

        ``content`` ``[B, T, 3, H, W]`` is the video in [-1, 1] (multiplied by ``mask`` here),
        ``motion`` ``[B, T, 2, H, W]`` the trajectory maps, ``mask`` ``[B, T, 1, H, W]`` M (1 = unedited)."""
        b, t = sample.shape[:2]
        m = mask.flatten(0, 1)
        c_con = torch.cat([content.flatten(0, 1) * m, m], dim=1)
        ts = torch.as_tensor(timestep, device=sample.device)
        ts = (ts[None] if ts.ndim == 0 else ts).expand(b)
        temb = self.time_embedding(self.time_proj(ts).to(sample.dtype)).repeat_interleave(t, dim=0)
        feature = self.fused(c_con.to(sample.dtype), motion.flatten(0, 1).to(sample.dtype), m.to(sample.dtype), temb)
        e = encoder_pass(self, sample, timestep, encoder_hidden_states, added_time_ids, feature=feature)
        down = tuple(conv(s) * scale for conv, s in zip(self.zero_convs, e.skips, strict=True))
        return down, self.mid_zero_conv(e.hidden) * scale


_ENCODER_PARTS = (
    "time_proj",
    "time_embedding",
    "add_time_proj",
    "add_embedding",
    "conv_in",
    "down_blocks",
    "mid_block",
)


def temporal_kv_names(module: nn.Module) -> list[str]:
    """Parameter names of W_k and W_v in the temporal self-attention of ``module`` (an SVD UNet or a
    control module): the deblocking stage trains these (and H) only."""
    return [
        n
        for n, _ in module.named_parameters()
        if ".temporal_transformer_blocks." in n and ".attn1." in n and (".to_k." in n or ".to_v." in n)
    ]
