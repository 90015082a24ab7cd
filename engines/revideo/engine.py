"""ReVideo (Mou et al., "ReVideo: Remake a Video with Motion and Content Control", NeurIPS 2024).

Local editing of content and motion: each edit area gets new content (an edited first frame) and a
motion (the input's own tracks, a drawn trajectory, or none); an SVD-class image-to-video model
regenerates the clip from the edited first frame while a control module (content and trajectory
encoders fused by SAFM, a trainable copy of the UNet's encoder) holds the unedited region to the input
and moves the edited content along the trajectories. Clips longer than the base model's frame count
are made window by window, each window starting from the last frame the previous one made.

Stages: ``preprocess`` -> ``track`` (Lucas-Kanade tracks of a grid, once per input video) ->
``first_frame`` (per edit: the areas' masks and the edited frame 0, by image or SDEdit) -> ``sample``
(per edit and sweep point) -> ``evaluate``. The model folder (role ``revideo``) is laid out as
``StableVideoDiffusionPipeline`` (``unet``, ``vae``, ``image_encoder``, ``feature_extractor``,
``scheduler``) plus ``control`` (:class:`engines.revideo.control.ControlModule`) and
``base_kv.safetensors`` (the base's temporal K/V after the deblocking stage). Without ``control`` the
engine runs the base alone (``params.control: false`` does the same on purpose). SDEdit content uses
the model's ``image`` role.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from engines.common.stages import EVALUATE, PREPROCESS, evaluate, preprocess
from engines.revideo.params import ReVideoParams
from recut import video
from recut.engine import Engine, Stage, StageContext

__all__ = ["FIRST_FRAME", "SAMPLE", "TRACK", "ReVideoEngine"]

ROLE = "revideo"

TRACK = Stage(
    name="track",
    kind="extract",
    version="1",
    reads=("params.tracking.stride", "params.tracking.window"),
    after=("preprocess",),
    description="Pyramidal Lucas-Kanade tracks of a grid of points from frame 0, with a forward-backward "
    "check; tracks.npz (points [N,T,2], visible [N,T]). No model.",
)

FIRST_FRAME = Stage(
    name="first_frame",
    kind="extract",
    version="1",
    reads=("params.areas", "model", "seed"),
    after=("preprocess",),
    options=("runtime.files",),
    per_edit=True,
    uses_model=True,
    description="Each area's mask and the edited frame 0 (the areas' content images, or SDEdit of frame 0 "
    "with the model's image role, pasted inside each area); areas.npy (bool [A,T,H,W]), first.png.",
)

SAMPLE = Stage(
    name="sample",
    kind="sample",
    version="1",
    reads=(
        "params.areas",
        "params.steps",
        "params.min_guidance",
        "params.max_guidance",
        "params.fps",
        "params.motion_bucket_id",
        "params.noise_aug_strength",
        "params.control",
        "params.control_scale",
        "params.window",
        "params.tracking.max_tracks",
        "params.tracking.sigma",
        "model",
        "seed",
    ),
    after=("preprocess", "track", "first_frame"),
    options=("params.decode_chunk",),
    per_edit=True,
    uses_model=True,
    description="Controlled image-to-video sampling from the edited first frame, window by window: the "
    "unedited region as content, the areas' tracks as trajectory maps; frames.npy, edit_mask.npy, "
    "motion.npy.",
)


class ReVideoEngine(Engine):
    name = "revideo"
    description = (
        "ReVideo: local content and motion editing; an SVD-class image-to-video model from the edited first "
        "frame, with a control module (content + trajectory encoders fused by SAFM) and sliding windows."
    )
    params_model = ReVideoParams
    requires_prompt = False
    smoke_params: ClassVar[dict[str, Any]] = {"steps": 2}
    writes_edit_mask = True
    file_params = ("areas.*.mask.file", "areas.*.content.image")
    stages = (PREPROCESS, TRACK, FIRST_FRAME, SAMPLE, EVALUATE)

    preprocess = staticmethod(preprocess)
    evaluate = staticmethod(evaluate)

    def __init__(self, model: Any = None, device: str = "cpu") -> None:
        super().__init__(model, device)
        self._c: Any = None
        self._image: Any = None

    # -- model lifecycle -------------------------------------------------
    def load(self) -> None:
        """Load the base and the control module once (the image model loads on the first SDEdit)."""
        from diffusers import AutoModel, EulerDiscreteScheduler, UNetSpatioTemporalConditionModel
        from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection
        from transformers.utils import logging as hf_logging

        from engines.common.svd import SVDComponents
        from engines.revideo.control import ControlModule
        from engines.revideo.sampler import ReVideoComponents
        from recut.models import ModelNotAvailable

        if self.model is None:
            raise RuntimeError("revideo needs a model (ResolvedModel) to load")
        hf_logging.set_verbosity_error()  # a CLIPModel folder loads as its vision tower without a report
        dtype = self.model.torch_dtype(self.device)

        def get(cls: Any, sub: str) -> Any:
            m = self.model.from_pretrained(cls, ROLE, subfolder=sub, torch_dtype=dtype)
            return m.to(self.device).eval().requires_grad_(False)

        unet = get(UNetSpatioTemporalConditionModel, "unet")
        vae = get(AutoModel, "vae")
        encoder = get(CLIPVisionModelWithProjection, "image_encoder")
        proc = self.model.from_pretrained(CLIPImageProcessor, ROLE, subfolder="feature_extractor")
        sched = self.model.from_pretrained(EulerDiscreteScheduler, ROLE, subfolder="scheduler").config
        try:
            control = get(ControlModule, "control")
        except ModelNotAvailable:
            control = None
        kv = self._base_kv()
        if kv is not None:
            from engines.common.finetune import load_delta

            load_delta(unet, kv)
        self._c = ReVideoComponents(SVDComponents(unet, vae, encoder, proc, sched, dtype), control)
        super().load()

    def _base_kv(self) -> Path | None:
        loc = Path(self.model.location(ROLE))
        p = loc / "base_kv.safetensors"
        return p if p.is_file() else None

    @property
    def components(self) -> Any:
        """The loaded :class:`engines.revideo.sampler.ReVideoComponents` (loads them on first use)."""
        self.ensure_loaded()
        return self._c

    def _image_model(self) -> Any:
        if self._image is None:
            from diffusers import UNet2DConditionModel

            from engines.common import sampling

            self._image = sampling.load_components(self.model, "image", UNet2DConditionModel, self.device)
        return self._image

    # -- stages ------------------------------------------------------------
    def track(self, ctx: StageContext) -> dict[str, Any]:
        from engines.common.tracks import track_grid

        frames = video.load_frames(ctx.inputs["preprocess"] / "frames.npy")
        v = ctx.values
        tr = track_grid(frames, stride=int(v["params.tracking.stride"]), window=int(v["params.tracking.window"]))
        np.savez_compressed(ctx.out_dir / "tracks.npz", points=tr.points, visible=tr.visible)
        lengths = tr.lengths()
        return {"tracks": len(tr), "kept_to_end": int(tr.visible[:, -1].sum()), "mean_length": float(lengths.mean())}

    def first_frame(self, ctx: StageContext) -> dict[str, Any]:
        """Steps: 1. each area's mask; 2. each area's content; 3. paste inside the areas; 4. write."""
        from engines.revideo.editing import area_mask
        from engines.revideo.editing import first_frame as compose

        v = ctx.values
        pre = ctx.inputs["preprocess"]
        frames = video.load_frames(pre / "frames.npy")
        shape = tuple(int(x) for x in frames.shape[:3])
        files = v["runtime.files"]
        areas = v["params.areas"]
        # 1. masks
        masks = np.stack(
            [area_mask(a["mask"], files.get(f"areas.{i}.mask.file"), pre, shape) for i, a in enumerate(areas)]
        )
        empty = [i for i, m in enumerate(masks) if not m.any()]
        if empty:
            raise ValueError(f"params.areas.{empty[0]}.mask: the area is empty on these frames")
        # 2. contents
        contents: list[np.ndarray | None] = []
        for i, a in enumerate(areas):
            c = a.get("content")
            if c is None:
                contents.append(None)
            elif c.get("image") is not None:
                img = video.read_image(files[f"areas.{i}.content.image"])
                if img.shape[:2] != shape[1:]:
                    raise ValueError(
                        f"params.areas.{i}.content.image is {img.shape[1]}x{img.shape[0]}, the frames are "
                        f"{shape[2]}x{shape[1]}"
                    )
                contents.append(img)
            else:
                contents.append(self._sdedit(frames[0], c["sdedit"], int(v["seed"]) + i))
        # 3.-4.
        first = compose(frames[0], masks, contents)
        np.save(ctx.out_dir / "areas.npy", masks)
        video.write_image(ctx.out_dir / "first.png", first)
        return {"areas": len(areas), "edited_content": sum(c is not None for c in contents)}

    def _sdedit(self, frame: np.ndarray, c: dict[str, Any], seed: int) -> np.ndarray:
        from engines.sdedit.engine import Settings, edit_frames

        s = Settings(float(c["strength"]), int(c["steps"]), float(c["guidance_scale"]), seed=seed)
        out, _ = edit_frames(
            self._image_model(), frame[None], c["prompt"], c["negative_prompt"], s, "image", self.device
        )
        return out[0]

    def sample(self, ctx: StageContext) -> dict[str, Any]:
        """Steps: 1. inputs; 2. the areas' tracks and the trajectory maps; 3. M; 4. sample; 5. write."""
        from engines.common.svd import I2VSettings
        from engines.common.tracks import Tracks
        from engines.revideo.editing import area_tracks, condition_maps, seam_figures
        from engines.revideo.sampler import generate

        v = ctx.values
        c = self.components
        # 1. inputs
        pre = ctx.inputs["preprocess"]
        frames = video.load_frames(pre / "frames.npy")
        t, h, w = frames.shape[:3]
        if h % c.multiple or w % c.multiple:
            raise ValueError(f"frames of {w}x{h} are not multiples of {c.multiple} (this model); set input.size")
        masks = np.load(ctx.inputs["first_frame"] / "areas.npy")
        first = video.read_image(ctx.inputs["first_frame"] / "first.png")
        # 2. tracks and maps
        z = np.load(ctx.inputs["track"] / "tracks.npz")
        grid = Tracks(z["points"], z["visible"])
        rng = np.random.default_rng(int(v["seed"]))
        most = int(v["params.tracking.max_tracks"])
        areas = v["params.areas"]
        tracks = [area_tracks(a, m, grid, rng, most) for a, m in zip(areas, masks, strict=True)]
        motion = condition_maps(tracks, (t, h, w), float(v["params.tracking.sigma"]))
        # 3. M: 1 where the input is unedited
        edited = masks.any(0)
        # 4. sample
        use_control = bool(v["params.control"]) and c.control is not None
        win = v["params.window"]
        size = int(win["frames"] or c.frames)
        s = I2VSettings(
            frames=size,
            steps=int(v["params.steps"]),
            fps=int(v["params.fps"]),
            motion_bucket_id=int(v["params.motion_bucket_id"]),
            noise_aug_strength=float(v["params.noise_aug_strength"]),
            min_guidance=float(v["params.min_guidance"]),
            max_guidance=float(v["params.max_guidance"]),
            seed=int(v["seed"]),
            decode_chunk=int(v["params.decode_chunk"]),
        )
        run_c = c if use_control else type(c)(c.base, None)
        out, spans = generate(
            run_c,
            frames,
            first,
            ~edited,
            motion,
            s,
            size,
            int(win["overlap"]),
            float(v["params.control_scale"]),
            ctx.progress,
        )
        # 5. write
        video.save_frames(ctx.out_dir / "frames.npy", out)
        np.save(ctx.out_dir / "edit_mask.npy", edited)
        np.save(ctx.out_dir / "motion.npy", motion.astype(np.float16))
        info = json.loads((pre / "info.json").read_text())
        meta: dict[str, Any] = {
            "fps": float(info.get("fps", 8.0)),
            "control": use_control,
            "windows": [list(sp) for sp in spans],
            "tracks": [0 if x is None else len(x) for x in tracks],
        }
        meta |= seam_figures(out, spans, int(win["overlap"]))
        return meta

    # -- validation --------------------------------------------------------
    @classmethod
    def check_spec(cls, spec: Any) -> list[tuple[str, str]]:
        from engines.revideo.checks import check_spec

        return check_spec(spec)
