"""Content from an image: a CLIP image embedding as cross-attention context, and a prior from text.

* :class:`ContentProjection` maps one CLIP image embedding ``[B, E]`` to ``tokens`` context vectors
  ``[B, tokens, D]`` for a UNet's cross-attention (Gen-1's content path; also how IP-Adapter-style
  image prompts enter a text-conditioned UNet).
* :class:`EmbeddingPrior` maps a CLIP *text* embedding to a CLIP *image* embedding (a small MLP;
  the role of the DALL-E 2 prior in Gen-1's text edits on an image-conditioned model).

Both are diffusers ``ModelMixin`` + ``ConfigMixin`` models, so they save and load with
``save_pretrained`` / ``from_pretrained`` like every other component.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


class ContentProjection(ModelMixin, ConfigMixin):
    """CLIP image embedding ``[B, embed_dim]`` -> context ``[B, tokens, cross_attention_dim]``."""

    @register_to_config
    def __init__(self, embed_dim: int = 768, cross_attention_dim: int = 768, tokens: int = 4) -> None:
        super().__init__()
        self.proj = nn.Linear(embed_dim, tokens * cross_attention_dim)
        self.norm = nn.LayerNorm(cross_attention_dim)

    def forward(self, embeds: torch.Tensor) -> torch.Tensor:
        b = embeds.shape[0]
        x = self.proj(embeds).reshape(b, self.config.tokens, self.config.cross_attention_dim)
        return self.norm(x)


class EmbeddingPrior(ModelMixin, ConfigMixin):
    """CLIP text embedding -> CLIP image embedding (unit vectors in, a unit vector out)."""

    @register_to_config
    def __init__(self, embed_dim: int = 768, hidden: int = 1024, layers: int = 2) -> None:
        super().__init__()
        dims = [embed_dim] + [hidden] * layers
        blocks: list[nn.Module] = []
        for a, b in itertools.pairwise(dims):
            blocks += [nn.Linear(a, b), nn.GELU()]
        blocks.append(nn.Linear(dims[-1], embed_dim))
        self.net = nn.Sequential(*blocks)

    def forward(self, text_embeds: torch.Tensor) -> torch.Tensor:
        x = torch.nn.functional.normalize(text_embeds, dim=-1)
        return torch.nn.functional.normalize(x + self.net(x), dim=-1)


@torch.no_grad()
def image_embeddings(clip: Any, processor: Any, images: np.ndarray) -> torch.Tensor:
    """Unit CLIP image embeddings ``[N, E]`` of uint8 images ``[N, H, W, 3]`` of any size: resized by
    the shortest edge, then center-cropped to the model's input (whatever the processor's config says)."""
    pv = processor(images=list(images), do_center_crop=True, return_tensors="pt")["pixel_values"]
    p = next(clip.parameters())
    emb = clip.get_image_features(pixel_values=pv.to(p.device, p.dtype))
    emb = getattr(emb, "pooler_output", emb)
    return torch.nn.functional.normalize(emb.float(), dim=-1)


@torch.no_grad()
def text_embeddings(clip: Any, processor: Any, texts: list[str]) -> torch.Tensor:
    """Unit CLIP text embeddings ``[N, E]``."""
    tok = processor(text=texts, return_tensors="pt", padding=True, truncation=True)
    p = next(clip.parameters())
    emb = clip.get_text_features(
        input_ids=tok["input_ids"].to(p.device), attention_mask=tok.get("attention_mask", None)
    )
    emb = getattr(emb, "pooler_output", emb)
    return torch.nn.functional.normalize(emb.float(), dim=-1)
