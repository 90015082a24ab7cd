"""Build the ``tiny-random`` model profile: config-built diffusers pipelines.

Writes two pipeline folders with random weights (no download, no hub):

* ``<out>/sd``: Stable Diffusion 1.5 layout (``StableDiffusionPipeline``;
  UNet2DConditionModel, AutoencoderKL, CLIPTextModel, CLIPTokenizer, DDIM).
* ``<out>/t2v``: ModelScope text-to-video layout (``TextToVideoSDPipeline``;
  UNet3DConditionModel instead of the 2D UNet).

``<out>/gen1`` (the Gen-1 layout) is built from ``<out>/t2v`` by :mod:`toyworld.tiny_gen1`.

The models are tiny (a few hundred KB) and their outputs are noise; they exist
so that every code path can run on a CPU in tests.  The same seed gives
byte-identical safetensors files.

Run ``python -m toyworld.tinymodels`` to (re)generate ``models/tiny-random``.

Heavy libraries (torch, diffusers, transformers) are imported inside the functions that use them,
so that importing this module stays cheap (:mod:`toyworld.tokenizer` imports it for its BPE).
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from recut.store import swap_in_folder

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "models" / "tiny-random"

MAX_LENGTH = 77
TEXT_HIDDEN = 32
CROSS_ATTENTION_DIM = TEXT_HIDDEN

# A small corpus from which a few hundred BPE merges are learned, so that
# common words become single tokens (purely cosmetic for random weights).
_CORPUS = """
a an the of and to in is on with for at by from as into over under man woman
person people dog cat horse bird car bike boat tree trees flower flowers sky
cloud clouds sun moon water sea ocean river lake beach mountain mountains snow
rain road street city house building forest grass field night day red blue
green yellow white black orange purple pink brown gold silver painting photo
style van gogh watercolor oil sketch cartoon anime pixel art cinematic
realistic walking running jumping flying swimming driving riding dancing
sitting standing playing eating looking turning moving camera video frame
a photo of a cat a painting of a dog in the style of van gogh a man walking on
the beach at sunset a car driving down the road in the snow a bird flying over
the sea a woman dancing in the rain a horse running in a field of flowers
"""

NUM_MERGES = 300


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte -> printable unicode character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs], strict=True))


def learn_bpe(word_counts: dict[str, int], num_merges: int | None = None) -> tuple[dict[str, int], list[str]]:
    """A CLIP-style byte-level BPE vocabulary and merges, fully deterministic.

    256 byte characters and their ``</w>`` (end-of-word) versions, then merges
    learned greedily (highest weighted pair count, ties broken
    lexicographically) from ``word_counts``, up to ``num_merges`` (None: until
    every word is one symbol), then the two special tokens.
    """
    chars = list(_bytes_to_unicode().values())
    vocab_list: list[str] = chars + [c + "</w>" for c in chars]
    # each word is a tuple of symbols, the last one carrying "</w>"
    splits = {w: (*tuple(w[:-1]), w[-1] + "</w>") for w in word_counts}
    merges: list[str] = []
    seen = set(vocab_list)
    while num_merges is None or len(merges) < num_merges:
        pairs: Counter[tuple[str, str]] = Counter()
        for w, syms in splits.items():
            for a, b in itertools.pairwise(syms):
                pairs[(a, b)] += word_counts[w]
        if not pairs:
            break
        (a, b), _count = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        merges.append(f"{a} {b}")
        new = a + b
        if new not in seen:
            seen.add(new)
            vocab_list.append(new)
        for w, syms in splits.items():
            out: list[str] = []
            i = 0
            while i < len(syms):
                if i + 1 < len(syms) and syms[i] == a and syms[i + 1] == b:
                    out.append(new)
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            splits[w] = tuple(out)
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    return {tok: i for i, tok in enumerate(vocab_list)}, merges


def build_vocab() -> tuple[dict[str, int], list[str]]:
    """The tiny-random tokenizer: merges learned from :data:`_CORPUS`."""
    return learn_bpe(dict(Counter(_CORPUS.split())), NUM_MERGES)


def build_tokenizer(work: Path) -> Any:
    """CLIPTokenizer from a generated ``vocab.json`` + ``merges.txt``."""
    from transformers import CLIPTokenizer

    vocab, merges = build_vocab()
    work.mkdir(parents=True, exist_ok=True)
    (work / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (work / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    loaded_vocab = json.loads((work / "vocab.json").read_text(encoding="utf-8"))
    merge_lines = (work / "merges.txt").read_text(encoding="utf-8").splitlines()[1:]
    tok = CLIPTokenizer(
        vocab=loaded_vocab,
        merges=[tuple(m.split(" ")) for m in merge_lines if m],
        model_max_length=MAX_LENGTH,
    )
    tok.model_max_length = MAX_LENGTH
    return tok


def _copy_vocab_files(src: Path, tokenizer_dir: Path) -> None:
    """Keep the source vocab.json/merges.txt next to tokenizer.json (older loaders)."""
    for name in ("vocab.json", "merges.txt"):
        shutil.copyfile(src / name, tokenizer_dir / name)


def _text_encoder(vocab_size: int, eos_id: int, bos_id: int) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel

    cfg = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=TEXT_HIDDEN,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=MAX_LENGTH,
        projection_dim=TEXT_HIDDEN,
        hidden_act="quick_gelu",
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
    )
    return CLIPTextModel(cfg).eval()


def _vae() -> Any:
    from diffusers import AutoencoderKL

    # 4 blocks -> downsample factor 8, as in SD 1.5 and ModelScope.
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 16, 16, 16),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=64,
        scaling_factor=0.18215,
    ).eval()


#: The noise schedule of Stable Diffusion 1.5 (and of every toy/tiny diffusion model here).
SD15_SCHEDULE: dict[str, Any] = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    clip_sample=False,
    set_alpha_to_one=False,
    steps_offset=1,
    prediction_type="epsilon",
)


def _scheduler() -> Any:
    from diffusers import DDIMScheduler

    return DDIMScheduler(**SD15_SCHEDULE)


def _unet2d() -> Any:
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(16, 32),
        layers_per_block=1,
        cross_attention_dim=CROSS_ATTENTION_DIM,
        attention_head_dim=8,
        norm_num_groups=8,
    ).eval()


def _unet3d() -> Any:
    from diffusers import UNet3DConditionModel

    return UNet3DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        block_out_channels=(16, 32),
        layers_per_block=1,
        cross_attention_dim=CROSS_ATTENTION_DIM,
        attention_head_dim=8,
        norm_num_groups=8,
    ).eval()


def build_tiny_random(out_dir: Path = DEFAULT_OUT, seed: int = 0) -> None:
    """Write ``out_dir/sd`` and ``out_dir/t2v`` (replacing existing folders)."""
    import torch
    from diffusers import StableDiffusionPipeline, TextToVideoSDPipeline

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = build_tokenizer(Path(tmp) / "tok")
        vocab = tokenizer.get_vocab()
        eos_id, bos_id = vocab["<|endoftext|>"], vocab["<|startoftext|>"]

        for kind in ("sd", "t2v"):
            # One seed per component so each is independent of build order.
            torch.manual_seed(seed)
            text_encoder = _text_encoder(len(vocab), eos_id, bos_id)
            torch.manual_seed(seed + 1)
            vae = _vae()
            torch.manual_seed(seed + 2)
            if kind == "sd":
                pipe = StableDiffusionPipeline(
                    vae=vae,
                    text_encoder=text_encoder,
                    tokenizer=tokenizer,
                    unet=_unet2d(),
                    scheduler=_scheduler(),
                    safety_checker=None,
                    feature_extractor=None,
                    requires_safety_checker=False,
                )
            else:
                pipe = TextToVideoSDPipeline(
                    vae=vae,
                    text_encoder=text_encoder,
                    tokenizer=tokenizer,
                    unet=_unet3d(),
                    scheduler=_scheduler(),
                )
            target = out_dir / kind
            staging = out_dir / f".{kind}.tmp"
            if staging.exists():
                shutil.rmtree(staging)
            pipe.save_pretrained(staging, safe_serialization=True)
            _copy_vocab_files(Path(tmp) / "tok", staging / "tokenizer")
            swap_in_folder(staging, target)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="torch seed for the random weights")
    args = parser.parse_args(argv)
    build_tiny_random(args.out, args.seed)
    total = sum(p.stat().st_size for p in Path(args.out).rglob("*") if p.is_file())
    print(f"wrote {args.out} ({total / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
