"""Model profiles: names a spec can use for a set of model components.

A profile maps *roles* (``image``: an SD-1.5-layout text-to-image pipeline
folder, ``video``: a ModelScope-layout text-to-video pipeline folder, ...) to
either a folder inside this repository or a public hub id.  Everything loads
through ``from_pretrained``; recut never downloads at run time: a hub id must
already be in the local Hugging Face cache (``huggingface-cli download`` on a
machine with network), or loading fails with a message that says so.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = REPO_ROOT / "models"


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    components: dict[str, str]
    #: dtype used when CUDA is present; CPU always computes in float32.
    cuda_dtype: str = "float32"
    local: bool = True
    options: dict[str, Any] = field(default_factory=dict)
    #: Video profiles: the sampling cascade, base model first. Each stage is a dict
    #: ``{role, width, height, frames}``; a later stage is a video-to-video
    #: super-resolution model (``kind: v2v``) with ``from: [width, height, frames]``
    #: (what it takes from the previous stage) and its noise ``strength``.
    #: Used by the ``dreamix`` engine; part of the model identity when present.
    cascade: tuple[dict[str, Any], ...] = ()


#: The toy zoo's models one by one: profile ``toy-<name>`` -> (role, folder under models/toy, what it is).
TOY_COMPONENTS = {
    "toy-t2i": ("image", "t2i", "SD-1.5-layout text-to-image pipeline (StableDiffusionPipeline)"),
    "toy-t2v": ("video", "t2v", "ModelScope-layout text-to-video pipeline (TextToVideoSDPipeline)"),
    "toy-clip": ("clip", "clip", "CLIP, text and vision towers (CLIPModel + CLIPProcessor)"),
    "toy-vae": ("vae", "vae", "VAE (AutoencoderKL), latents 4x16x16"),
    "toy-depth": ("depth", "depth", "monocular depth (DPTForDepthEstimation)"),
    "toy-gen1": ("gen1", "gen1", "Gen-1: the toy T2V widened for depth structure, content projection and prior"),
    "toy-svd": ("image2video", "svd", "SVD-class image-to-video (UNetSpatioTemporalConditionModel), 8 frames"),
    "toy-revideo": ("revideo", "revideo", "ReVideo: the toy SVD with its control module (three-stage trained)"),
}


#: The toy text-to-video model's sampling cascade (base only: 64x64, 8 frames), for the video profiles.
TOY_VIDEO_CASCADE: tuple[dict[str, Any], ...] = ({"role": "video", "width": 64, "height": 64, "frames": 8},)


def _toy_component_profiles() -> list[Profile]:
    return [
        Profile(
            name,
            f"One model of the toy zoo: {what}; trained on toyworld.scene scenes.",
            {role: f"models/toy/{folder}"},
            cascade=TOY_VIDEO_CASCADE if role == "video" else (),
        )
        for name, (role, folder, what) in TOY_COMPONENTS.items()
    ]


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in [
        Profile(
            "tiny-random",
            "Randomly initialised, config-built diffusers/transformers models kept in "
            "the repo (3.6 MB). Exercises every code path; outputs are noise.",
            {
                "image": "models/tiny-random/sd",
                "video": "models/tiny-random/t2v",
                "gen1": "models/tiny-random/gen1",
                "revideo": "models/tiny-random/revideo",
            },
            cascade=(
                {"role": "video", "width": 32, "height": 32, "frames": 4},
                {
                    "role": "video",
                    "kind": "v2v",
                    "width": 64,
                    "height": 64,
                    "frames": 4,
                    "from": [32, 32, 4],
                    "strength": 0.5,
                },
            ),
        ),
        Profile(
            "toy",
            "Small models trained on the synthetic world of toyworld.scene (64x64): toy CLIP, "
            "VAE (latents 4x16x16), depth (DPT), text-to-image/-video UNets, the Gen-1 model and the SVD-class "
            "image-to-video model with its ReVideo control module. "
            "Edits can be verified against exact ground truth.",
            {
                "image": "models/toy/t2i",
                "video": "models/toy/t2v",
                "clip": "models/toy/clip",
                "depth": "models/toy/depth",
                "vae": "models/toy/vae",
                "gen1": "models/toy/gen1",
                "image2video": "models/toy/svd",
                "revideo": "models/toy/revideo",
            },
            cascade=TOY_VIDEO_CASCADE,
        ),
        *_toy_component_profiles(),
        Profile(
            "sd15",
            "Stable Diffusion 1.5 (512x512), the image backbone of SDEdit and Video-P2P.",
            {"image": "runwayml/stable-diffusion-v1-5"},
            cuda_dtype="float16",
            local=False,
            options={"attention_slicing": True},
        ),
        Profile(
            "modelscope-t2v",
            "ModelScope text-to-video 1.7B (256x256, 16 frames).",
            {"video": "damo-vilab/text-to-video-ms-1.7b"},
            cuda_dtype="float16",
            local=False,
            cascade=({"role": "video", "width": 256, "height": 256, "frames": 16},),
        ),
        Profile(
            "clip-vit-l14",
            "OpenAI CLIP ViT-L/14, the usual CLIP-score model for edit evaluation.",
            {"clip": "openai/clip-vit-large-patch14"},
            local=False,
        ),
        Profile(
            "zeroscope",
            "Zeroscope v2 576w (576x320, 24 frames), ModelScope-layout; cascade: the XL model "
            "upscales its output to 1024x576 as a video-to-video stage.",
            {"video": "cerspense/zeroscope_v2_576w", "video_xl": "cerspense/zeroscope_v2_XL"},
            cuda_dtype="float16",
            local=False,
            cascade=(
                {"role": "video", "width": 576, "height": 320, "frames": 24},
                {
                    "role": "video_xl",
                    "kind": "v2v",
                    "width": 1024,
                    "height": 576,
                    "frames": 24,
                    "from": [576, 320, 24],
                    "strength": 0.6,
                },
            ),
        ),
        Profile(
            "dpt-large",
            "DPT-Large monocular depth (DPTForDepthEstimation), the depth extractor of Gen-1-style conditioning.",
            {"depth": "Intel/dpt-large"},
            local=False,
        ),
        Profile(
            "svd",
            "Stable Video Diffusion img2vid-xt (1024x576, 25 frames), image-to-video; for revideo it is the base "
            "alone (no public diffusers-format ReVideo control module exists: give one as a model path).",
            {
                "image2video": "stabilityai/stable-video-diffusion-img2vid-xt",
                "revideo": "stabilityai/stable-video-diffusion-img2vid-xt",
            },
            cuda_dtype="float16",
            local=False,
        ),
    ]
}


class ModelNotAvailable(RuntimeError):
    """A profile's weights are not on this machine."""


@contextmanager
def hub_offline() -> Iterator[None]:
    """huggingface_hub in offline mode while loading, unless RECUT_ALLOW_DOWNLOAD=1.

    ``local_files_only`` alone is not enough: huggingface_hub 2.x still fetches
    its agent registry from huggingface.co while building request headers
    (measured in tests/test_models.py), so recut turns the hub's offline switch
    on for the duration of a load.
    """
    if os.environ.get("RECUT_ALLOW_DOWNLOAD") == "1":
        yield
        return
    from huggingface_hub import constants  # local: ~0.1 s to import; the CLI imports this module

    old = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = old


def in_local_cache(repo: str, revision: str | None = None) -> bool:
    """Whether hub id ``repo`` is in the local Hugging Face cache (looks at files only; no network)."""
    from huggingface_hub import try_to_load_from_cache  # local: ~0.1 s to import; the CLI imports this module

    for name in ("model_index.json", "config.json"):
        if isinstance(try_to_load_from_cache(repo, name, revision=revision), str):
            return True
    return False


def availability(profile: str) -> str:
    """``"in repo"``, ``"in local cache"`` or ``"not on this machine"`` (every component must be there)."""
    prof = PROFILES[profile]
    if prof.local:
        return "in repo" if all((REPO_ROOT / loc).is_dir() for loc in prof.components.values()) else "missing"
    return "in local cache" if all(in_local_cache(loc) for loc in prof.components.values()) else "not on this machine"


@dataclass(frozen=True)
class ResolvedModel:
    """A concrete, hashable description of which weights a stage uses."""

    name: str
    components: dict[str, str]
    revision: str | None = None
    dtype: str = "float32"
    identity: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    #: The profile's sampling cascade (see :class:`Profile`); empty for ``repo``/``path`` models.
    cascade: tuple[dict[str, Any], ...] = ()

    def location(self, role: str) -> str:
        """Local folder or hub id for ``role`` (``image``, ``video``, ...)."""
        if role not in self.components:
            raise ModelNotAvailable(
                f"model {self.name!r} has no {role!r} component "
                f"(it has: {', '.join(sorted(self.components)) or 'none'})"
            )
        return self.components[role]

    def torch_dtype(self, device: str) -> Any:
        import torch  # local: torch takes seconds to import

        if device == "cpu":
            return torch.float32
        return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[self.dtype]

    def from_pretrained(self, cls: Any, role: str, device: str = "cpu", **kwargs: Any) -> Any:
        """``cls.from_pretrained`` on the component, offline, with a clear error."""
        loc = self.location(role)
        kw: dict[str, Any] = dict(kwargs)
        if not Path(loc).is_dir():
            kw.setdefault("local_files_only", os.environ.get("RECUT_ALLOW_DOWNLOAD") != "1")
            if self.revision:
                kw.setdefault("revision", self.revision)
        try:
            with hub_offline():
                return cls.from_pretrained(loc, **kw)
        except (OSError, EnvironmentError, ValueError) as exc:  # noqa: UP024 - explicit for readers
            if Path(loc).is_dir():
                raise ModelNotAvailable(f"cannot load {cls.__name__} from {loc}: {exc}") from exc
            raise ModelNotAvailable(
                f"model {self.name!r} ({loc}) is not on this machine (not in the local Hugging Face "
                "cache); recut never downloads at run time. On a machine with network run "
                f"`huggingface-cli download {loc}` (or set RECUT_ALLOW_DOWNLOAD=1)."
            ) from exc


def _dir_digest(folder: Path) -> str:
    """Content hash of a model folder, memoised by (path, size, mtime)."""
    entries = []
    for p in sorted(folder.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts and not p.name.startswith("."):
            st = p.stat()
            entries.append((p.relative_to(folder).as_posix(), st.st_size, st.st_mtime_ns))
    memo_key = hashlib.sha256(json.dumps([str(folder), entries]).encode()).hexdigest()
    hit = _DIGESTS.get(memo_key)
    if hit:
        return hit
    h = hashlib.sha256()
    for rel, _, _ in entries:
        h.update(rel.encode() + b"\0")
        with open(folder / rel, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    digest = h.hexdigest()
    _DIGESTS[memo_key] = digest
    return digest


_DIGESTS: dict[str, str] = {}


def _identity(
    components: dict[str, str], revision: str | None, dtype: str, cascade: tuple[dict[str, Any], ...] = ()
) -> str:
    parts = {}
    for role, loc in sorted(components.items()):
        p = Path(loc)
        parts[role] = ("sha256:" + _dir_digest(p)) if p.is_dir() else f"hub:{loc}@{revision or 'main'}"
    desc: dict[str, Any] = {"components": parts, "dtype": dtype}
    if cascade:
        desc["cascade"] = list(cascade)
    blob = json.dumps(desc, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def resolve(
    profile: str | None = None,
    repo: str | None = None,
    path: str | Path | None = None,
    revision: str | None = None,
    dtype: str | None = None,
) -> ResolvedModel:
    """Turn a spec's ``model`` section into a :class:`ResolvedModel`."""
    if profile is not None:
        if profile not in PROFILES:
            raise KeyError(profile)
        prof = PROFILES[profile]
        comps = {role: str(REPO_ROOT / loc) if prof.local else loc for role, loc in prof.components.items()}
        dt = dtype or prof.cuda_dtype
        ident = _identity(comps, revision, dt, prof.cascade)
        return ResolvedModel(profile, comps, revision, dt, ident, dict(prof.options), tuple(prof.cascade))
    loc = str(path) if path is not None else str(repo)
    comps = {role: loc for role in ("image", "video", "clip", "depth", "gen1", "image2video", "revideo")}
    dt = dtype or "float32"
    return ResolvedModel(loc, comps, revision, dt, _identity(comps, revision, dt))
