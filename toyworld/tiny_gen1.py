"""Build ``models/tiny-random/gen1``: the Gen-1 layout (engines/gen1) with random weights.

The t2v folder's text encoder, tokenizer, VAE and scheduler (linked), a UNet3D whose ``conv_in`` takes
the 8 structure channels too, a content projection, a prior, a CLIPModel and a DPT depth model, all
tiny. Run ``python -m toyworld.tiny_gen1`` after ``python -m toyworld.tinymodels``.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

from recut.store import swap_in_folder
from toyworld.tinymodels import CROSS_ATTENTION_DIM, DEFAULT_OUT, TEXT_HIDDEN, _text_encoder, _unet3d


def _clip(vocab_size: int, eos_id: int, bos_id: int) -> Any:
    from transformers import CLIPConfig, CLIPModel

    text = _text_encoder(vocab_size, eos_id, bos_id).config.to_dict()
    vision = dict(
        image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4
    )
    return CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=TEXT_HIDDEN)).eval()


def _clip_processor(tokenizer: Any) -> Any:
    from transformers import CLIPImageProcessor, CLIPProcessor

    image = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return CLIPProcessor(image_processor=image, tokenizer=tokenizer)


def _depth() -> tuple[Any, Any]:
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    cfg = DPTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=64,
        backbone_out_indices=[0, 1, 2, 3],
        reassemble_factors=[2, 1, 0.5, 0.25],
        neck_hidden_sizes=[8, 16, 16, 16],
        fusion_hidden_size=16,
        head_in_index=-1,
    )
    proc = DPTImageProcessor(
        size={"height": 32, "width": 32}, keep_aspect_ratio=False, ensure_multiple_of=1, do_pad=False
    )
    return DPTForDepthEstimation(cfg).eval(), proc


def build_tiny_gen1(out_dir: Path = DEFAULT_OUT, seed: int = 0) -> None:
    """Write ``out_dir/gen1`` from ``out_dir/t2v`` (which must exist) and new random components."""
    import torch

    from engines.common.content import ContentProjection, EmbeddingPrior
    from engines.common.structure import TS_CHANNELS, widen_conv_in

    out_dir = Path(out_dir)
    t2v = out_dir / "t2v"
    staging = out_dir / ".gen1.tmp"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    for sub in ("text_encoder", "tokenizer", "vae", "scheduler"):
        (staging / sub).symlink_to(Path("..") / "t2v" / sub)
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(t2v / "tokenizer")
    vocab = tokenizer.get_vocab()
    torch.manual_seed(seed + 3)
    unet = widen_conv_in(_unet3d(), 4 + TS_CHANNELS)
    with torch.no_grad():  # random, not zero: the tiny model should react to its structure channels
        unet.conv_in.weight[:, 4:].normal_(0.0, 0.02)
    unet.save_pretrained(staging / "unet")
    torch.manual_seed(seed + 4)
    ContentProjection(TEXT_HIDDEN, CROSS_ATTENTION_DIM, 4).save_pretrained(staging / "content_projection")
    EmbeddingPrior(TEXT_HIDDEN, 2 * TEXT_HIDDEN, 2).save_pretrained(staging / "prior")
    torch.manual_seed(seed + 5)
    _clip(len(vocab), vocab["<|endoftext|>"], vocab["<|startoftext|>"]).save_pretrained(staging / "clip")
    _clip_processor(tokenizer).save_pretrained(staging / "clip")
    torch.manual_seed(seed + 6)
    depth, proc = _depth()
    depth.save_pretrained(staging / "depth")
    proc.save_pretrained(staging / "depth")
    swap_in_folder(staging, out_dir / "gen1")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the tiny-random folder (holding t2v)")
    parser.add_argument("--seed", type=int, default=0, help="torch seed for the random weights")
    args = parser.parse_args(argv)
    build_tiny_gen1(args.out, args.seed)
    print(f"wrote {args.out / 'gen1'}")


if __name__ == "__main__":
    main()
