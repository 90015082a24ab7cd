"""Model profiles: names a spec can use for a set of model components.

A profile maps *roles* (``image``: an SD-1.5-layout text-to-image pipeline
folder, ``video``: a ModelScope-layout text-to-video pipeline folder, ...) to
either a folder inside this repository or a public hub id.  Everything loads
through ``from_pretrained``; recut never downloads at run time: a hub id must
already be in the local Hugging Face cache (``huggingface-cli download`` on a
machine with network), or loading fails with a message that says so. The ``fullsize-random``
profile holds the public configs of the full-size models in the repository; :mod:`recut.fullsize`
draws their weights at random on first use.
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
#: The public configs of the ``fullsize-random`` profile (see :mod:`recut.fullsize`).
FULLSIZE_CONFIGS = MODELS_DIR / "fullsize"


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    components: dict[str, str]
    #: dtype used when CUDA is present; the CPU computes in float32, or in bfloat16 when that is the dtype.
    cuda_dtype: str = "float32"
    local: bool = True
    options: dict[str, Any] = field(default_factory=dict)
    #: Video profiles: the sampling cascade, base model first. Each stage is a dict
    #: ``{role, width, height, frames}``; a later stage is a video-to-video
    #: super-resolution model (``kind: v2v``) with ``from: [width, height, frames]``
    #: (what it takes from the previous stage) and its noise ``strength``.
    #: Used by the ``dreamix`` engine; part of the model identity when present.
    cascade: tuple[dict[str, Any], ...] = ()
    #: Components are folders of public configs (under :data:`FULLSIZE_CONFIGS`) whose weights
    #: :mod:`recut.fullsize` draws with seeded random values into a local cache on first use.
    built_on_use: bool = False


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
            "fullsize-random",
            "The real architectures with seeded random weights, built from the public config.json of "
            "SD-1.5 (UNet, VAE, CLIP ViT-L/14 text encoder; role image), ModelScope T2V (video), zeroscope "
            "v2 576w (zeroscope), CLIP ViT-L/14 (clip), DPT-Large (depth), Gen-1 (the ModelScope UNet widened "
            "by the 8 structure channels, CLIP ViT-L/14 content; gen1), SVD-XT (UNet, temporal VAE decoder, "
            "CLIP ViT-H/14 image encoder; image2video) and ReVideo (SVD-XT with a control module sized from "
            "its UNet config, no base_kv; revideo). The tokenizer is tiny-random's offline BPE (780 ids, 77 "
            "tokens), which indexes the first rows of the published 49408-row text embeddings. Weights are "
            "drawn on first use into ~/.cache/recut/fullsize-random ($RECUT_FULLSIZE_DIR), stored as "
            "bfloat16, and the model computes in bfloat16 (model.dtype: float32 for float32). Proves "
            "shapes, memory, dtypes and timings at real size; outputs are noise.",
            {
                "image": "models/fullsize/sd",
                "video": "models/fullsize/modelscope",
                "zeroscope": "models/fullsize/zeroscope",
                "clip": "models/fullsize/clip-vit-l14",
                "depth": "models/fullsize/dpt-large",
                "gen1": "models/fullsize/gen1",
                "image2video": "models/fullsize/svd",
                "revideo": "models/fullsize/revideo",
            },
            cuda_dtype="bfloat16",
            cascade=({"role": "video", "width": 256, "height": 256, "frames": 16},),
            built_on_use=True,
        ),
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
    """``"in repo"``, ``"in local cache"`` or ``"not on this machine"`` (every component must be there);
    a profile built on first use says whether its weights are built yet, and where."""
    prof = PROFILES[profile]
    if prof.built_on_use:
        from recut import fullsize  # local: only this profile needs the builder

        if not all((REPO_ROOT / loc).is_dir() for loc in prof.components.values()):
            return "missing"
        cache = fullsize.default_cache()
        todo = [
            m
            for loc in prof.components.values()
            for m in fullsize.missing(FULLSIZE_CONFIGS, cache, _config_folder(loc))
        ]
        state = "weights built" if not todo else "configs in repo, weights built on first use"
        return f"{state} ({cache})"
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
    #: A profile built on first use: ``(config folder, cache folder)`` of :mod:`recut.fullsize`.
    build: tuple[str, str] | None = None

    def location(self, role: str) -> str:
        """Local folder or hub id for ``role`` (``image``, ``video``, ...); a profile built on first use
        builds the role's folder here (its diffusers and transformers components)."""
        if role not in self.components:
            raise ModelNotAvailable(
                f"model {self.name!r} has no {role!r} component "
                f"(it has: {', '.join(sorted(self.components)) or 'none'})"
            )
        loc = self.components[role]
        if self.build is not None:
            from recut import fullsize  # local: only profiles built on use need the builder

            configs, cache = self.build
            fullsize.ensure_folder(Path(configs), Path(cache), Path(loc).relative_to(cache).as_posix())
        return loc

    def torch_dtype(self, device: str) -> Any:
        """The compute dtype: ``dtype`` on CUDA; on the CPU bfloat16 when asked for, float32 otherwise
        (float16 matmuls are slow or missing there)."""
        import torch  # local: torch takes seconds to import

        if device == "cpu":
            return torch.bfloat16 if self.dtype == "bfloat16" else torch.float32
        return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[self.dtype]

    def from_pretrained(self, cls: Any, role: str, device: str = "cpu", **kwargs: Any) -> Any:
        """``cls.from_pretrained`` on the component, offline, with a clear error. A profile built on first
        use first builds the component with ``cls`` (an engine's own class is built only this way)."""
        loc = self.location(role)
        if self.build is not None and kwargs.get("subfolder"):
            from recut import fullsize  # local: only profiles built on use need the builder

            configs, cache = self.build
            rel = (Path(loc).relative_to(cache) / str(kwargs["subfolder"])).as_posix()
            if (Path(configs) / rel).is_dir():
                fullsize.ensure_component(Path(configs), Path(cache), rel, cls)
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


def _config_folder(loc: str) -> str:
    """A built-on-use profile's component (``models/fullsize/sd``) as a folder under the configs (``sd``)."""
    return (REPO_ROOT / loc).relative_to(FULLSIZE_CONFIGS).as_posix()


def _resolve_built(prof: Profile, revision: str | None, dtype: str | None) -> ResolvedModel:
    """A profile built on first use: components in the cache; the identity is the configs' digest (the
    weights are a function of them), so resolving builds nothing."""
    from recut import fullsize  # local: only this profile needs the builder

    cache = fullsize.default_cache()
    comps = {role: str(cache / _config_folder(loc)) for role, loc in prof.components.items()}
    dt = dtype or prof.cuda_dtype
    desc: dict[str, Any] = {"fullsize": fullsize.config_digest(FULLSIZE_CONFIGS), "dtype": dt}
    if prof.cascade:
        desc["cascade"] = list(prof.cascade)
    ident = hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()
    return ResolvedModel(
        prof.name,
        comps,
        revision,
        dt,
        ident,
        dict(prof.options),
        tuple(prof.cascade),
        (str(FULLSIZE_CONFIGS), str(cache)),
    )


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
        if prof.built_on_use:
            return _resolve_built(prof, revision, dtype)
        comps = {role: str(REPO_ROOT / loc) if prof.local else loc for role, loc in prof.components.items()}
        dt = dtype or prof.cuda_dtype
        ident = _identity(comps, revision, dt, prof.cascade)
        return ResolvedModel(profile, comps, revision, dt, ident, dict(prof.options), tuple(prof.cascade))
    loc = str(path) if path is not None else str(repo)
    comps = {role: loc for role in ("image", "video", "clip", "depth", "gen1", "image2video", "revideo")}
    dt = dtype or "float32"
    return ResolvedModel(loc, comps, revision, dt, _identity(comps, revision, dt))
