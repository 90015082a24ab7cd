"""`recut import`: edit specs from the configs researchers already have.

Two sources:

* **Tune-A-Video and Video-P2P** (``recut import tune-a-video CONFIG…``): a Tune-A-Video training
  config (``train_data``, ``validation_data``, learning rate, ... as in showlab/Tune-A-Video's
  ``configs/*.yaml`` and Video-P2P's ``*-tune.yaml``), a Video-P2P p2p config (``image_path``,
  ``prompt``, ``prompts``, ``blend_word``, ``eq_params``, ``is_word_swap``, ...; Video-P2P's
  ``*-p2p.yaml``), or both (tuning config first or second, either order), or one file holding both.
* **LOVEU-TGVE** (``recut import loveu CSV``): the benchmark's CSV (video name, original caption, and
  the style, object, background and multiple-changes prompts), one spec per video.

The method is ``videop2p`` in every case.  It is the one recut method that tunes a text-to-set model
on the clip and then samples each edit from the clip's DDIM inversion, which is what both projects
do; its knobs cover Tune-A-Video as a special case, so a plain Tune-A-Video config needs no other
method:

* a Video-P2P config (it has p2p keys) gives Video-P2P itself: ``mode`` replace (``is_word_swap:
  true``) or refine, ``cross_replace``/``self_replace``, local ``blend`` from ``blend_word``, the
  ``equalizer`` from ``eq_params`` (applied over replace/refine, as Video-P2P's AttentionReweight
  wraps its controller), null-text inversion, first-frame attention, guidance 7.5 and 50 DDIM steps
  (the constants of Video-P2P's ``run_videop2p.py``);
* a plain Tune-A-Video config gives Tune-A-Video's sampling: ``mode: none`` (no attention control),
  ``frame_attention: sparse_causal`` (first + previous frame), ``inversion.null_text: fast`` (the
  plain DDIM-inverted latent, no null-text optimisation: Tune-A-Video's ``use_inv_latent``), with
  the config's guidance scale and steps.  Two differences remain, and the import says so when they
  matter: recut inverts under the source prompt (Tune-A-Video's validation inverts under ""), and
  it always starts from the inverted latent (``use_inv_latent: false``, pure noise, has no
  counterpart).
* a LOVEU-TGVE row gives the benchmark's official baseline, Tune-A-Video (as above, with
  Tune-A-Video's default settings and the whole clip), since its prompts are free-form rewrites
  of different lengths, which word swap cannot take.

Every key of the input is accounted for: mapped, or reported as a warning naming the key (unknown,
or known with no recut counterpart).  Bad input (no file, not YAML, not a mapping, a required key
missing or of the wrong type, a CSV without the needed columns) raises :class:`ImportProblem`,
which the CLI prints as one ``file: key: message`` line before exiting 2.

The mapping functions (:func:`tune_a_video_spec`, :func:`loveu_specs`) are pure: dicts in, a spec
dict and warnings out.  :func:`place_media` then looks for the media on disk and writes their paths
relative to the spec; :func:`write_spec` writes it, and the CLI validates the written file with
:func:`recut.spec.load_spec`.
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
import yaml

from recut.cli_guard import Exit, err
from recut.cli_guard import guard as _guard

# --------------------------------------------------------------------------- results and errors


class ImportProblem(Exception):
    """Input the importer cannot use: one line, ``file: key: message``."""

    def __init__(self, source: str, key: str, message: str):
        self.source, self.key, self.message = source, key, message
        super().__init__(f"{source}: {key}: {message}" if key else f"{source}: {message}")


@dataclass
class Imported:
    """One spec made by an importer."""

    spec: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    #: Folders a relative media path in ``spec["input"]`` may be relative to, most likely first
    #: (the CLI fills it from the config's or the CSV's place; the pure mappers leave it empty).
    search: list[Path] = field(default_factory=list)
    #: The file name the spec would like (LOVEU: one per video), relative to the output folder.
    name: str = ""


class _Report:
    """Warnings and errors about one input file."""

    def __init__(self, source: str, warnings: list[str]):
        self.source = source
        self.warnings = warnings

    def warn(self, key: str, message: str) -> None:
        self.warnings.append(f"{self.source}: {key}: {message}" if key else f"{self.source}: {message}")

    def fail(self, key: str, message: str) -> NoReturn:
        raise ImportProblem(self.source, key, message)

    # -- typed reads -------------------------------------------------------------------------
    def number(self, value: Any, key: str, integer: bool = False) -> float | int:
        """A number, also from a string (PyYAML reads Tune-A-Video's ``3e-5`` as a string)."""
        v: Any = value
        if isinstance(v, str):
            try:
                v = float(v.strip())
            except ValueError:
                self.fail(key, f"expected a number, got {value!r}")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            self.fail(key, f"expected a{'n integer' if integer else ' number'}, got {value!r}")
        if integer:
            if float(v) != int(v):
                self.fail(key, f"expected an integer, got {value!r}")
            return int(v)
        return float(v)

    def text(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not value.strip():
            self.fail(key, f"expected a non-empty text, got {value!r}")
        return value.strip()

    def texts(self, value: Any, key: str) -> list[str]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            self.fail(key, f"expected a list of texts, got {value!r}")
        return [self.text(v, f"{key}.{i}") for i, v in enumerate(value)]

    def flag(self, value: Any, key: str) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no"):
            return value.strip().lower() in ("true", "yes")
        self.fail(key, f"expected true or false, got {value!r}")

    def mapping(self, value: Any, key: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(key, f"expected a mapping (key: value), got {value!r}")
        return value

    def unknown(self, section: Mapping[str, Any], known: set[str], prefix: str = "") -> None:
        for k in section:
            if k not in known:
                self.warn(f"{prefix}{k}", "unknown key, not imported")


# --------------------------------------------------------------------------- models

#: Folder names of local checkouts (Tune-A-Video's `./checkpoints/stable-diffusion-v1-4`) -> hub id.
KNOWN_MODEL_FOLDERS = {
    "stable-diffusion-v1-4": "CompVis/stable-diffusion-v1-4",
    "stable-diffusion-v1-5": "runwayml/stable-diffusion-v1-5",
}
#: Hub ids that name the same weights as a profile's component under another owner (the official mirror).
HUB_ALIASES = {
    "stable-diffusion-v1-5/stable-diffusion-v1-5": "runwayml/stable-diffusion-v1-5",
}
#: The base model of Video-P2P (and of recut's videop2p method): SD 1.5.
VIDEOP2P_BASE_PROFILE = "sd15"

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def hub_profiles() -> dict[str, str]:
    """Lower-cased hub id -> profile name, for every hub profile with an ``image`` component (the
    role the videop2p method loads)."""
    from recut.models import PROFILES

    out: dict[str, str] = {}
    for p in PROFILES.values():
        repo = p.components.get("image")
        if not p.local and repo:
            out.setdefault(repo.lower(), p.name)
    return out


def map_model(value: Any, report: _Report, key: str) -> tuple[dict[str, Any], str, str]:
    """``(spec model, status, message)`` for a ``pretrained_model_path`` (or ``--model``).

    status: ``profile`` (a profile name, or a hub id or checkout folder of weights a profile holds),
    ``known`` (a well-known hub model with no profile: kept as ``repo``), ``repo`` (any other hub id)
    or ``path`` (any other local folder).  ``message`` says what was done when it was not plain.
    """
    from recut.models import PROFILES

    raw = report.text(value, key)
    if raw in PROFILES:
        return {"profile": raw}, "profile", ""
    profiles = hub_profiles()
    known_repos = {r.lower(): r for r in KNOWN_MODEL_FOLDERS.values()}

    def hub(repo: str, note: str, status: str) -> tuple[dict[str, Any], str, str]:
        canon = HUB_ALIASES.get(repo.lower(), known_repos.get(repo.lower(), repo))
        prof = profiles.get(canon.lower())
        if prof is not None:
            message = f"{note}; it maps to recut's profile `{prof}` ({canon})" if note else ""
            return {"profile": prof}, "profile", message
        if canon.lower() in known_repos:
            status = "known"
        return (
            {"repo": canon},
            status,
            f"{note + '; ' if note else ''}recut has no profile for {canon!r}: kept as `repo: {canon}`, which must "
            f"be in the local Hugging Face cache (`huggingface-cli download {canon}`); `recut profiles` lists "
            "the profiles",
        )

    looks_local = raw.startswith((".", "/", "~")) or "\\" in raw or os.path.isabs(raw)
    if not looks_local and (raw.lower() in profiles or raw.lower() in known_repos or raw.lower() in HUB_ALIASES):
        return hub(raw, "", "known")
    folder = Path(raw.rstrip("/\\")).name
    if folder.lower() in KNOWN_MODEL_FOLDERS:
        repo = KNOWN_MODEL_FOLDERS[folder.lower()]
        return hub(repo, f"the local folder {raw!r} is read as the hub model {repo} (by its name)", "known")
    if not looks_local and _HUB_ID.match(raw):
        return hub(raw, "", "repo")
    return (
        {"path": raw},
        "path",
        f"{raw!r} is not a model recut knows: kept as `model.path` (a local diffusers pipeline folder, "
        "relative to the spec); check it, or use a profile (`recut profiles`)",
    )


_DTYPES = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32", "no": "float32"}


def _dtype(value: Any, report: _Report, key: str) -> str | None:
    name = str(value).strip().lower() if value is not None else "no"
    if name in _DTYPES:
        return _DTYPES[name]
    report.warn(key, f"unknown mixed precision {value!r} (fp16, bf16, fp32 or no); not imported")
    return None


# --------------------------------------------------------------------------- names


def slug(text: str, limit: int = 40) -> str:
    """A spec/edit name from free text: lower-case words joined by ``-``, cut at a word boundary."""
    words = re.findall(r"[A-Za-z0-9]+", text.lower())
    out = ""
    for w in words:
        nxt = f"{out}-{w}" if out else w
        if len(nxt) > limit:
            break
        out = nxt
    return out or (words[0][:limit] if words else "edit")


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        k = seen.get(n, 0) + 1
        seen[n] = k
        out.append(n if k == 1 else f"{n}-{k}")
    return out


# --------------------------------------------------------------------------- Tune-A-Video / Video-P2P

#: Tune-A-Video's training defaults (its ``main`` and ``TuneAVideoDataset`` signatures).
TAV_DEFAULTS = {
    "width": 512,
    "height": 512,
    "n_sample_frames": 8,
    "sample_start_idx": 0,
    "sample_frame_rate": 1,
    "learning_rate": 3e-5,
    "max_train_steps": 500,
    "num_inference_steps": 50,
    "guidance_scale": 12.5,
}
#: Top-level keys of a tuning config that map.
TAV_MAPPED = {
    "pretrained_model_path",
    "train_data",
    "validation_data",
    "learning_rate",
    "max_train_steps",
    "trainable_modules",
    "max_grad_norm",
    "seed",
    "mixed_precision",
}
#: Known keys with no recut counterpart (checkpoints, previews, memory savers, logging).
TAV_RUNTIME = {
    "output_dir",
    "checkpointing_steps",
    "validation_steps",
    "resume_from_checkpoint",
    "use_8bit_adam",
    "gradient_checkpointing",
    "enable_xformers_memory_efficient_attention",
}
#: Known optimiser keys recut does not expose: its finetune's fixed value for each.
TAV_FIXED = {
    "train_batch_size": 1,
    "gradient_accumulation_steps": 1,
    "scale_lr": False,
    "lr_scheduler": "constant",
    "lr_warmup_steps": 0,
    "adam_beta1": 0.9,
    "adam_beta2": 0.999,
    "adam_epsilon": 1e-8,
    "adam_weight_decay": 0.0,
}
TRAIN_DATA_KEYS = {
    "video_path",
    "prompt",
    "n_sample_frames",
    "width",
    "height",
    "sample_start_idx",
    "sample_frame_rate",
}
VALIDATION_KEYS = {
    "prompts",
    "negative_prompt",
    "video_length",
    "width",
    "height",
    "num_inference_steps",
    "guidance_scale",
    "use_inv_latent",
    "num_inv_steps",
}
#: Keys that mark a Video-P2P p2p config (``run_videop2p.py``'s ``main`` arguments).
P2P_KEYS = {
    "image_path",
    "prompt",
    "prompts",
    "blend_word",
    "eq_params",
    "save_name",
    "is_word_swap",
    "cross_replace_steps",
    "self_replace_steps",
    "video_len",
    "fast",
}
#: Video-P2P's defaults (``run_videop2p.py``: main's arguments and its module constants).
P2P_DEFAULTS = {
    "cross_replace_steps": 0.2,
    "self_replace_steps": 0.5,
    "video_len": 8,
    "guidance_scale": 7.5,
    "steps": 50,
    "blend_threshold": 0.3,
    "blend_start": 0.2,
}


def config_kind(config: Mapping[str, Any]) -> str:
    """``tune`` (a tuning config), ``p2p`` (a Video-P2P p2p config), ``both`` (one file with both), or ``""``."""
    tune = "train_data" in config
    p2p = any(k in config for k in P2P_KEYS)
    return "both" if tune and p2p else "tune" if tune else "p2p" if p2p else ""


def tune_a_video_spec(configs: Sequence[tuple[str, Mapping[str, Any]]]) -> Imported:
    """Map one or two configs (``(name shown in messages, parsed YAML)``) to a ``videop2p`` spec.

    One tuning config, one p2p config, both (two files, any order), or one file holding both.
    Media paths stay as written (see :func:`place_media`); ``Imported.search`` is left empty.
    """
    warnings: list[str] = []
    tune: tuple[_Report, dict[str, Any]] | None = None
    p2p: tuple[_Report, dict[str, Any]] | None = None
    if not 1 <= len(configs) <= 2:
        raise ImportProblem("recut import tune-a-video", "", f"give one or two config files, got {len(configs)}")
    for source, cfg in configs:
        rep = _Report(source, warnings)
        if not isinstance(cfg, dict):
            rep.fail("", "expected a YAML mapping (key: value) of Tune-A-Video or Video-P2P settings")
        kind = config_kind(cfg)
        if not kind:
            rep.fail(
                "",
                "neither a Tune-A-Video config (no `train_data`) nor a Video-P2P p2p config (no `prompts`, "
                "`image_path`, ...)",
            )
        if kind in ("tune", "both"):
            if tune is not None:
                rep.fail("train_data", f"a second tuning config (the first is {tune[0].source})")
            tune = (rep, cfg)
        if kind in ("p2p", "both"):
            if p2p is not None:
                rep.fail("prompts", f"a second Video-P2P p2p config (the first is {p2p[0].source})")
            p2p = (rep, cfg)

    spec: dict[str, Any] = {}
    params: dict[str, Any] = {}
    inp: dict[str, Any] = {}
    model: dict[str, Any] = {}
    edits: list[dict[str, Any]] = []
    names: list[str] = []
    dtype: str | None = None
    same_file = any(config_kind(cfg) == "both" for _, cfg in configs)  # one file holds both parts

    # ---- the tuning config: model, input, source prompt, finetune, (Tune-A-Video) sampling
    if tune is not None:
        rep, cfg = tune
        model, _, note = map_model(_require(rep, cfg, "pretrained_model_path"), rep, "pretrained_model_path")
        if note:
            rep.warn("pretrained_model_path", note)
        td = rep.mapping(_require(rep, cfg, "train_data"), "train_data")
        rep.unknown(td, TRAIN_DATA_KEYS, "train_data.")
        video = rep.text(_require(rep, td, "video_path", "train_data."), "train_data.video_path")
        source_prompt = rep.text(_require(rep, td, "prompt", "train_data."), "train_data.prompt")
        n = _int(rep, td, "n_sample_frames", "train_data.", TAV_DEFAULTS["n_sample_frames"])
        start = _int(rep, td, "sample_start_idx", "train_data.", TAV_DEFAULTS["sample_start_idx"])
        stride = _int(rep, td, "sample_frame_rate", "train_data.", TAV_DEFAULTS["sample_frame_rate"])
        width = _int(rep, td, "width", "train_data.", TAV_DEFAULTS["width"])
        height = _int(rep, td, "height", "train_data.", TAV_DEFAULTS["height"])
        # Tune-A-Video reads frames with decord at width x height: a plain resize, no crop
        inp = {
            "video": video,
            "frames": {"start": start, "count": n, "stride": stride},
            "size": {"width": width, "height": height, "mode": "stretch"},
        }
        params["source_prompt"] = source_prompt
        finetune: dict[str, Any] = {
            "steps": _int(rep, cfg, "max_train_steps", "", TAV_DEFAULTS["max_train_steps"]),
            "lr": _float(rep, cfg, "learning_rate", "", TAV_DEFAULTS["learning_rate"]),
        }
        if "trainable_modules" in cfg:
            finetune["trainable"] = rep.texts(cfg["trainable_modules"], "trainable_modules")
        if "max_grad_norm" in cfg:
            finetune["max_grad_norm"] = _float(rep, cfg, "max_grad_norm", "", 1.0)
        params["finetune"] = finetune
        if "seed" in cfg:
            if cfg["seed"] is None:
                rep.warn("seed", "null (Tune-A-Video then seeds nothing); recut needs one: seed 0")
            else:
                spec["seed"] = _int(rep, cfg, "seed", "", 0)
        if "mixed_precision" in cfg:
            dtype = _dtype(cfg["mixed_precision"], rep, "mixed_precision")
        _fixed_and_runtime(rep, cfg, set(TAV_MAPPED) | (P2P_KEYS if same_file else set()))

        vd = cfg.get("validation_data")
        if vd is not None:
            vd = rep.mapping(vd, "validation_data")
            rep.unknown(vd, VALIDATION_KEYS, "validation_data.")
            for k in ("width", "height"):
                if k in vd and _int(rep, vd, k, "validation_data.", 0) != (width if k == "width" else height):
                    rep.warn(
                        f"validation_data.{k}",
                        f"{vd[k]} differs from train_data.{k}; recut samples at the tuning size ({width}x{height})",
                    )
            if "video_length" in vd and _int(rep, vd, "video_length", "validation_data.", 0) != n:
                rep.warn(
                    "validation_data.video_length",
                    f"{vd['video_length']} differs from train_data.n_sample_frames ({n}); recut edits the "
                    f"{n} tuned frames",
                )
        if p2p is None:
            # plain Tune-A-Video: the edits are the validation prompts, sampled from the DDIM inversion
            if vd is None:
                rep.fail("validation_data", "missing: its `prompts` are the edits")
            prompts = rep.texts(_require(rep, vd, "prompts", "validation_data."), "validation_data.prompts")
            steps = _int(rep, vd, "num_inference_steps", "validation_data.", TAV_DEFAULTS["num_inference_steps"])
            if "num_inv_steps" in vd and _int(rep, vd, "num_inv_steps", "validation_data.", steps) != steps:
                rep.warn(
                    "validation_data.num_inv_steps",
                    f"{vd['num_inv_steps']} differs from num_inference_steps ({steps}); recut inverts and "
                    f"samples with the same steps: {steps}",
                )
            if "use_inv_latent" in vd and not rep.flag(vd["use_inv_latent"], "validation_data.use_inv_latent"):
                rep.warn(
                    "validation_data.use_inv_latent",
                    "false (sampling from pure noise) has no recut counterpart: recut always samples from the "
                    "clip's DDIM inversion (Tune-A-Video's use_inv_latent: true)",
                )
            params.update(
                {
                    "frame_attention": "sparse_causal",
                    "inversion": {"steps": steps, "null_text": "fast"},
                    "guidance_scale": _float(
                        rep, vd, "guidance_scale", "validation_data.", TAV_DEFAULTS["guidance_scale"]
                    ),
                    "mode": "none",
                }
            )
            negative = vd.get("negative_prompt")
            negative = rep.text(negative, "validation_data.negative_prompt") if negative else ""
            names = _unique([slug(p) for p in prompts])
            for name, prompt in zip(names, prompts, strict=True):
                edits.append({"name": name, "prompt": prompt, **({"negative_prompt": negative} if negative else {})})
        elif vd is not None:
            rep.warn(
                "validation_data",
                "the tuning run's preview settings (prompts, guidance, steps); not imported: the edits and the "
                f"sampling come from the p2p config {p2p[0].source}",
            )

    # ---- the p2p config: prompts and attention control
    if p2p is not None:
        rep, cfg = p2p
        known_keys = P2P_KEYS | {"pretrained_model_path", "mixed_precision"}
        if not same_file:
            rep.unknown(cfg, known_keys)
        prompt = rep.text(_require(rep, cfg, "prompt"), "prompt")
        prompts = rep.texts(_require(rep, cfg, "prompts"), "prompts")
        if len(prompts) < 2:
            rep.fail("prompts", "needs the source prompt and at least one target prompt")
        if prompts[0] != prompt:
            rep.warn("prompts.0", f"{prompts[0]!r} differs from `prompt` {prompt!r}; the source prompt is `prompt`")
        targets = prompts[1:]
        if tune is None:
            raw_model = _require(rep, cfg, "pretrained_model_path")
            model, status, note = map_model(raw_model, rep, "pretrained_model_path")
            if status in ("profile", "known"):
                if note:
                    rep.warn("pretrained_model_path", note)
            else:
                model = {"profile": VIDEOP2P_BASE_PROFILE}
                rep.warn(
                    "pretrained_model_path",
                    f"{raw_model!r} is the model Video-P2P's tuning step wrote; recut tunes on its own from the "
                    f"base model, so the spec uses profile `{VIDEOP2P_BASE_PROFILE}` (SD 1.5, Video-P2P's base). "
                    "Import the tuning config too (`recut import tune-a-video TUNE.yaml P2P.yaml`) to take the "
                    "base model and the tuning settings from it",
                )
            count = _int(rep, cfg, "video_len", "", P2P_DEFAULTS["video_len"])
            # run_videop2p.py centre-crops each frame to a square, then resizes it to 512x512
            inp = {
                "video": rep.text(_require(rep, cfg, "image_path"), "image_path"),
                "frames": {"start": 0, "count": count, "stride": 1},
                "size": {"width": 512, "height": 512, "mode": "crop"},
            }
            params["source_prompt"] = prompt
            params["finetune"] = {"steps": TAV_DEFAULTS["max_train_steps"], "lr": TAV_DEFAULTS["learning_rate"]}
            rep.warn(
                "",
                "no tuning config: recut tunes with Video-P2P's tuning defaults (500 steps at lr 3e-5, the "
                "query projections and temporal attention)",
            )
        else:
            if "pretrained_model_path" in cfg and not same_file:
                rep.warn(
                    "pretrained_model_path",
                    f"the tuned model ({cfg['pretrained_model_path']!r}); not imported: recut tunes on its own, "
                    f"from the tuning config's base model",
                )
            if "image_path" in cfg and not same_file:
                img, vid = str(cfg["image_path"]), str(inp["video"])
                if os.path.normpath(img) != os.path.normpath(vid):
                    rep.warn(
                        "image_path",
                        f"{img!r} differs from the tuning clip {vid!r}; recut tunes on and edits one clip: {vid!r}",
                    )
            if "video_len" in cfg:
                vl = _int(rep, cfg, "video_len", "", 8)
                if vl != inp["frames"]["count"]:
                    rep.warn(
                        "video_len",
                        f"{vl} differs from train_data.n_sample_frames ({inp['frames']['count']}); recut edits "
                        "the tuned frames",
                    )
            if prompt != params["source_prompt"]:
                rep.warn(
                    "prompt",
                    f"{prompt!r} differs from the tuning prompt {params['source_prompt']!r}; recut tunes and "
                    f"inverts with one source prompt: {prompt!r}",
                )
            params["source_prompt"] = prompt
        word_swap = rep.flag(cfg["is_word_swap"], "is_word_swap") if "is_word_swap" in cfg else False
        if "is_word_swap" not in cfg:
            rep.warn("is_word_swap", "missing; Video-P2P then refines (mode: refine)")
        params.update(
            {
                "frame_attention": "first",
                "inversion": {
                    "steps": P2P_DEFAULTS["steps"],
                    "null_text": "fast" if "fast" in cfg and rep.flag(cfg["fast"], "fast") else "shared",
                },
                "guidance_scale": P2P_DEFAULTS["guidance_scale"],
                "mode": "replace" if word_swap else "refine",
                "cross_replace": _fraction(rep, cfg, "cross_replace_steps", P2P_DEFAULTS["cross_replace_steps"]),
                "self_replace": _fraction(rep, cfg, "self_replace_steps", P2P_DEFAULTS["self_replace_steps"]),
                "guidance": "decoupled",
            }
        )
        blend = _blend(rep, cfg.get("blend_word"))
        if blend:
            params["blend"] = blend
        eq = _equalizer(rep, cfg.get("eq_params"))
        if eq:
            params["equalizer"] = eq
        if len(targets) > 1 and (blend or eq):
            rep.warn(
                "prompts",
                f"{len(targets)} target prompts: Video-P2P applies blend_word and eq_params to prompts[1] only; "
                "recut applies them to every edit",
            )
        if "mixed_precision" in cfg:
            d = _dtype(cfg["mixed_precision"], rep, "mixed_precision")
            if dtype is not None and d is not None and d != dtype:
                rep.warn("mixed_precision", f"{cfg['mixed_precision']!r} differs from the tuning config's: {dtype}")
            dtype = dtype or d
        base = slug(str(cfg["save_name"])) if cfg.get("save_name") else ""
        if len(targets) == 1:
            names = [base or slug(targets[0])]
        else:
            names = _unique([f"{base}-{i + 1}" if base else slug(t) for i, t in enumerate(targets)])
        edits = [{"name": nm, "prompt": t} for nm, t in zip(names, targets, strict=True)]

    if dtype is not None:
        model["dtype"] = dtype
    which = "Video-P2P" if p2p is not None else "Tune-A-Video"
    sources = " + ".join(dict.fromkeys(src for src, _ in configs))
    title = (p2p or tune)[0].source  # type: ignore[index]
    out: dict[str, Any] = {
        "name": f"{which}: {Path(title).stem}",
        "description": f"Imported from {sources} ({which}) by `recut import tune-a-video`.",
        "method": "videop2p",
        "input": inp,
        "model": model,
        "seed": spec.get("seed", 0),
        "params": params,
        "edits": edits,
        "outputs": {"formats": ["mp4", "gif"]},
    }
    return Imported(out, warnings, name=f"{slug(Path(title).stem, 60) or 'imported'}.yaml")


def _require(rep: _Report, section: Mapping[str, Any], key: str, prefix: str = "") -> Any:
    if key not in section or section[key] is None:
        rep.fail(f"{prefix}{key}", "missing (required)")
    return section[key]


def _int(rep: _Report, section: Mapping[str, Any], key: str, prefix: str, default: int) -> int:
    if key not in section or section[key] is None:
        return default
    return int(rep.number(section[key], f"{prefix}{key}", integer=True))


def _float(rep: _Report, section: Mapping[str, Any], key: str, prefix: str, default: float) -> float:
    if key not in section or section[key] is None:
        return default
    return float(rep.number(section[key], f"{prefix}{key}"))


def _fixed_and_runtime(rep: _Report, cfg: Mapping[str, Any], mapped: set[str]) -> None:
    """Report the tuning config's keys that do not map: each one, never silently."""
    dropped = []
    for k, v in cfg.items():
        if k in mapped:
            continue
        if k in TAV_RUNTIME:
            dropped.append(k)
        elif k in TAV_FIXED:
            fixed = TAV_FIXED[k]
            same = v == fixed
            if isinstance(fixed, (int, float)) and not isinstance(fixed, bool) and not isinstance(v, bool):
                try:
                    same = math.isclose(float(v), float(fixed), rel_tol=1e-9, abs_tol=1e-12)
                except (TypeError, ValueError):
                    same = False
            if same:
                dropped.append(k)
            else:
                rep.warn(k, f"{v!r} is not imported: recut's finetune always uses {fixed!r} (not configurable)")
        else:
            rep.warn(k, "unknown key, not imported")
    if dropped:
        rep.warn(
            ", ".join(dropped),
            "no recut counterpart, not imported (checkpoints, previews and memory savers, which recut's store "
            "and outputs replace, or a value recut's finetune already uses)",
        )


def _fraction(rep: _Report, cfg: Mapping[str, Any], key: str, default: float) -> float:
    """A P2P ``*_replace_steps``: a fraction, ``{default_: x}``, or ``[0, x]``."""
    v = cfg.get(key)
    if v is None:
        return default
    if isinstance(v, dict):
        if "default_" not in v:
            rep.fail(key, f"expected a fraction or {{default_: fraction}}, got {v!r}")
        others = [k for k in v if k != "default_"]
        if others:
            words = ", ".join(map(str, others))
            rep.warn(key, f"per-word fractions ({words}) have no recut counterpart; kept default_")
        v = v["default_"]
    elif isinstance(v, list):
        if len(v) != 2:
            rep.fail(key, f"expected a fraction or [start, end], got {v!r}")
        lo = rep.number(v[0], f"{key}.0")
        if lo != 0:
            rep.warn(key, f"a start of {lo} has no recut counterpart (injection starts at step 0); kept the end")
        v = v[1]
    x = float(rep.number(v, key))
    if not 0.0 <= x <= 1.0:
        rep.fail(key, f"expected a fraction of the steps in [0, 1], got {x}")
    return x


def _blend(rep: _Report, value: Any) -> dict[str, Any] | None:
    """Video-P2P's ``blend_word: [source word, target word]`` -> local blend (its mask_th 0.3, start 0.2)."""
    if value is None or value == [] or value == "":
        return None
    words = rep.texts(value, "blend_word")
    if len(words) > 2:
        rep.warn("blend_word", f"{len(words)} words: Video-P2P reads the first two (source, target); so does recut")
    out: dict[str, Any] = {"source_words": [words[0]]}
    if len(words) > 1:
        out["target_words"] = [words[1]]
    out["threshold"] = P2P_DEFAULTS["blend_threshold"]
    out["start"] = P2P_DEFAULTS["blend_start"]
    return out


def _equalizer(rep: _Report, value: Any) -> dict[str, float] | None:
    """Video-P2P's ``eq_params: {words: [...], values: [...]}`` -> ``equalizer: {word: scale}``."""
    if value is None:
        return None
    eq = rep.mapping(value, "eq_params")
    rep.unknown(eq, {"words", "values"}, "eq_params.")
    if not eq.get("words"):
        return None
    words = rep.texts(eq["words"], "eq_params.words")
    values = eq.get("values")
    if not isinstance(values, list):
        values = [values]
    if len(values) != len(words):
        rep.fail("eq_params.values", f"{len(values)} values for {len(words)} words; give one scale per word")
    out = {}
    for i, (w, v) in enumerate(zip(words, values, strict=True)):
        x = float(rep.number(v, f"eq_params.values.{i}"))
        if x < 0:
            rep.fail(f"eq_params.values.{i}", f"a scale must be >= 0, got {x}")
        out[w] = x
    return out


# --------------------------------------------------------------------------- LOVEU-TGVE

#: The four edit kinds of LOVEU-TGVE, in order: (edit name, normalised column name).
LOVEU_EDITS = (("style", "style"), ("object", "object"), ("background", "background"), ("multiple", "multiple"))
_COLUMN_NOISE = {"caption", "captions", "prompt", "prompts", "change", "changes", "edit", "edits", "editing", "text"}
_COLUMN_ALIASES = {
    "video": {"videoname", "video", "videoid", "name", "clip", "clipname", "videos"},
    "caption": {"ourgt", "gt", "original", "", "groundtruth", "originalvideo", "ourgroundtruth"},
    "style": {"style"},
    "object": {"object", "objects"},
    "background": {"background", "backgrounds", "bg"},
    "multiple": {"multiple", "multi", "multiples"},
}


def loveu_column(name: str) -> str | None:
    """Which LOVEU column a header names (case, spacing, `_`/`-` and words like "caption" ignored)."""
    all_words = re.findall(r"[a-z0-9]+", name.lower())
    key = "".join(w for w in all_words if w not in _COLUMN_NOISE)
    if key == "source" and {"caption", "prompt"} & set(all_words):
        return "caption"  # "Source caption"; a bare "Source" column (where a clip came from) is not
    for col, aliases in _COLUMN_ALIASES.items():
        if key in aliases:
            return col
    return None


@dataclass(frozen=True)
class LoveuOptions:
    """What a LOVEU row does not say: the model, the frames and the size (Tune-A-Video's baseline:
    SD at 512x512, every frame of the clip, its tuning and sampling defaults)."""

    model: str = VIDEOP2P_BASE_PROFILE
    frames: int | None = None
    size: int = 512


def loveu_specs(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    source: str = "CSV",
    options: LoveuOptions | None = None,
    lines: Sequence[int] | None = None,
) -> list[Imported]:
    """One spec per video row of a LOVEU-TGVE CSV (``header`` and ``rows`` as :mod:`csv` reads them;
    ``lines``: each row's line in the file, for messages; default: the header on line 1, no gaps).

    A row with a name and no prompts is a section title (the real CSV's ``DAVIS_480p``,
    ``youtube_480p``, ``videvo_480p``); it becomes the video's folder (``input.video`` is
    ``<section>/480p_videos/<name>.mp4``, the dataset's layout, until :func:`place_media` finds the file).
    """
    opts = options or LoveuOptions()
    warnings: list[str] = []
    rep = _Report(source, warnings)
    columns: dict[str, int] = {}
    for i, name in enumerate(header):
        col = loveu_column(name)
        if col is None:
            if name.strip():
                rep.warn(f"column {name!r}", "unknown column, not imported")
            continue
        if col in columns:
            rep.fail(f"column {name!r}", f"a second {col} column (the first is {header[columns[col]]!r})")
        columns[col] = i
    needs = {
        "video": "Video name",
        "caption": "Our GT caption",
        "style": "Style Change Caption",
        "object": "Object Change Caption",
        "background": "Background Change Caption",
        "multiple": "Multiple Changes Caption",
    }
    missing = [f"{c} ({needs[c]!r})" for c in needs if c not in columns]
    if missing:
        found = ", ".join(repr(h) for h in header) or "none"
        rep.fail("", f"missing column(s): {', '.join(missing)}; found: {found}")
    model, _, note = map_model(opts.model, rep, "--model")
    if note:
        rep.warn("--model", note)

    def cell(row: Sequence[str], col: str) -> str:
        i = columns[col]
        return row[i].strip() if i < len(row) and row[i] is not None else ""

    out: list[Imported] = []
    section = ""
    seen: set[str] = set()
    numbers = list(lines) if lines is not None else list(range(2, len(rows) + 2))
    for n, row in zip(numbers, rows, strict=True):
        row_warnings: list[str] = []
        row_rep = _Report(source, row_warnings)
        name = cell(row, "video")
        caption = cell(row, "caption")
        prompts = {e: cell(row, c) for e, c in LOVEU_EDITS}
        if not name and not caption and not any(prompts.values()):
            continue  # a blank row
        if name and not caption and not any(prompts.values()):
            section = name  # a section title
            continue
        if not name:
            rep.warn(f"line {n}", "a row with prompts but no video name; skipped")
            continue
        if not caption:
            rep.warn(f"line {n}", f"video {name!r} has no original caption (the source prompt); skipped")
            continue
        edits = [{"name": e, "prompt": p} for e, p in prompts.items() if p]
        for e, p in prompts.items():
            if not p:
                row_rep.warn(f"line {n}", f"video {name!r} has no {e} prompt; that edit is left out")
        if not edits:  # not reached: a row with a name and no prompt at all is a section title
            continue
        stem = Path(name).stem if Path(name).suffix.lower() in VIDEO_SUFFIXES else name
        folder = f"{section}/" if section else ""
        file = f"{folder}{slug(stem, 80) or 'video'}.yaml"
        if file in seen:
            rep.warn(f"line {n}", f"video {name!r} appears twice; its second row is skipped")
            continue
        seen.add(file)
        clip = name if stem != name else f"{name}.mp4"
        video = f"{section}/480p_videos/{clip}" if section else clip
        frames: dict[str, Any] = {"start": 0, "count": opts.frames, "stride": 1}
        if opts.frames is None:
            del frames["count"]
        spec = {
            "name": f"LOVEU-TGVE {folder}{stem}",
            "description": f"Imported from {source} line {n} by `recut import loveu` (the Tune-A-Video baseline).",
            "method": "videop2p",
            "input": {
                "video": video,
                "frames": frames,
                "size": {"width": opts.size, "height": opts.size, "mode": "stretch"},
            },
            "model": dict(model),
            "seed": 0,
            "params": {
                "source_prompt": caption,
                "frame_attention": "sparse_causal",
                "finetune": {"steps": TAV_DEFAULTS["max_train_steps"], "lr": TAV_DEFAULTS["learning_rate"]},
                "inversion": {"steps": TAV_DEFAULTS["num_inference_steps"], "null_text": "fast"},
                "guidance_scale": TAV_DEFAULTS["guidance_scale"],
                "mode": "none",
            },
            "edits": edits,
            "outputs": {"formats": ["mp4", "gif"]},
        }
        out.append(Imported(spec, row_warnings, name=file))
    if not out:
        rep.fail("", "no video rows (a row needs a video name, the original caption and at least one prompt)")
    out[0].warnings[:0] = warnings  # file-level warnings, reported once
    return out


# --------------------------------------------------------------------------- files

VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".gif", ".m4v", ".mpg", ".mpeg"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def read_config(path: Path) -> dict[str, Any]:
    """A YAML config as a mapping; :class:`ImportProblem` for a missing, unreadable or non-mapping file."""
    shown = str(path)
    if not path.exists():
        raise ImportProblem(shown, "", "file not found")
    if path.is_dir():
        raise ImportProblem(shown, "", "is a directory, expected a YAML config file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportProblem(shown, "", f"cannot read: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ImportProblem(shown, "", f"invalid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise ImportProblem(shown, "", "expected a YAML mapping (key: value) of Tune-A-Video or Video-P2P settings")
    return data


def read_csv(path: Path) -> tuple[list[str], list[list[str]], list[int]]:
    """``(header, rows, the line each row ends on)``; blank lines before the header are skipped."""
    shown = str(path)
    if not path.exists():
        raise ImportProblem(shown, "", "file not found")
    if path.is_dir():
        raise ImportProblem(shown, "", "is a directory, expected a CSV file")
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f)
            rows, lines = [], []
            for row in reader:
                if rows or any(c.strip() for c in row):
                    rows.append(row)
                    lines.append(reader.line_num)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ImportProblem(shown, "", f"cannot read as CSV: {exc}") from None
    if not rows:
        raise ImportProblem(shown, "", "empty CSV (expected a header row and one row per video)")
    return rows[0], rows[1:], lines[1:]


def _frame_files(folder: Path) -> list[Path]:
    """The images of a frame folder in frame order (numeric names by number, as Tune-A-Video sorts them)."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]

    def key(p: Path) -> tuple[int, int | str]:
        return (0, int(p.stem)) if p.stem.isdigit() else (1, p.name)

    return sorted(files, key=key)


def _spec_path(target: Path, spec_dir: Path) -> str:
    """``target`` as the spec should name it: relative to the spec's folder, else absolute."""
    try:
        return Path(os.path.relpath(target, spec_dir)).as_posix()
    except ValueError:  # another drive
        return str(target)


def place_media(
    imported: Imported, out: Path, override: Path | None = None, hint: str = "import again with --video PATH"
) -> None:
    """Find ``spec["input"]["video"]`` on disk and rewrite it relative to the spec file ``out``.

    Looks at ``override`` (``--video``) alone when given, else at the raw path under each folder of
    ``imported.search``.  A frame folder (Video-P2P's ``./data/rabbit``, LOVEU's ``480p_frames``)
    becomes ``input.images``, with the frame selection applied here.  Media outside the spec's project
    root set ``allow_outside_root`` (with a warning).  Media not found stay as the best guess, with a
    warning: the spec is written, but does not validate until the file is there.
    """
    from recut.spec import find_project_root  # local: recut.spec builds the method registry on first use

    inp = imported.spec["input"]
    raw = str(inp["video"])
    spec_dir = out.resolve().parent
    if override is not None:
        candidates = [override.expanduser().resolve()]
    elif os.path.isabs(os.path.expanduser(raw)):
        candidates = [Path(os.path.expanduser(raw))]
    else:
        bases = list(dict.fromkeys(p.resolve() for p in imported.search)) or [Path.cwd().resolve()]
        candidates = [Path(os.path.normpath(b / raw)) for b in bases]
    found = next((c for c in candidates if c.exists()), None)
    if found is None:
        guess = candidates[0]
        inp["video"] = _spec_path(guess, spec_dir)
        tried = ", ".join(str(c) for c in candidates)
        imported.warnings.append(
            f"{out}: input.video: {raw!r} was not found (looked at {tried}); the spec is written with "
            f"{inp['video']!r}, but does not validate until that file exists: put it there, edit the spec, "
            f"or {hint}"
        )
        return
    found = found.resolve()
    root = find_project_root(spec_dir)
    if found.is_dir():
        files = _frame_files(found)
        fr = inp.pop("frames", {}) or {}
        start, stride, count = int(fr.get("start", 0)), int(fr.get("stride", 1)), fr.get("count")
        picked = files[start::stride][:count] if count is not None else files[start::stride]
        if not picked:
            inp["video"] = _spec_path(found, spec_dir)
            imported.warnings.append(
                f"{out}: input.video: {found} is a folder with no frames ({', '.join(sorted(IMAGE_SUFFIXES))}) "
                f"for start {start}, stride {stride}; the spec does not validate until it has them"
            )
            return
        if count is not None and len(picked) < count:
            imported.warnings.append(
                f"{out}: input.images: {found} gives {len(picked)} frames, fewer than the {count} asked for; "
                f"the spec uses those {len(picked)}"
            )
        del inp["video"]
        inp["images"] = [_spec_path(p, spec_dir) for p in picked]
        inside = all(p.resolve().is_relative_to(root) for p in picked)
        where = found
    else:
        inp["video"] = _spec_path(found, spec_dir)
        inside = found.is_relative_to(root)
        where = found
    if not inside:
        imported.spec["allow_outside_root"] = True
        imported.warnings.append(
            f"{out}: input: {where} is outside the spec's project root {root}; the spec sets "
            "`allow_outside_root: true` to read it (or move the media into the project)"
        )


def _order(spec: dict[str, Any]) -> dict[str, Any]:
    """The keys in the order the example specs use."""
    order = [
        "name",
        "description",
        "allow_outside_root",
        "method",
        "input",
        "model",
        "seed",
        "params",
        "edits",
        "evaluate",
        "outputs",
    ]
    out = {k: spec[k] for k in order if k in spec}
    out.update({k: v for k, v in spec.items() if k not in out})
    inp = out.get("input")
    if isinstance(inp, dict):
        out["input"] = {k: inp[k] for k in ("video", "image", "images", "frames", "size") if k in inp}
    return out


def render_spec(spec: dict[str, Any], out: Path, warnings: Sequence[str] = ()) -> str:
    """The YAML text of ``spec`` as it will be written to ``out``: the schema header (when the project
    has ``specs/schema.json``), the import's warnings as comments (its `description` says where it came
    from), then the spec in the examples' style."""
    from recut.spec import find_project_root

    lines = []
    schema = find_project_root(out.resolve().parent) / "specs" / "schema.json"
    if schema.is_file():
        lines.append(f"# yaml-language-server: $schema={_spec_path(schema, out.resolve().parent)}")
    for w in warnings:
        lines.append("# warning: " + " ".join(w.split()))
    body = yaml.safe_dump(_order(spec), sort_keys=False, default_flow_style=None, width=1000, allow_unicode=True)
    return "".join(f"{line}\n" for line in lines) + body


def write_spec(spec: dict[str, Any], out: Path, warnings: Sequence[str] = ()) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(render_spec(spec, out, warnings), encoding="utf-8")
    os.replace(tmp, out)


def media_exists(spec: dict[str, Any], out: Path) -> bool:
    inp = spec.get("input", {})
    paths = [inp["video"]] if "video" in inp else list(inp.get("images") or [])
    base = out.resolve().parent
    return bool(paths) and all((base / os.path.expanduser(str(p))).exists() for p in paths)


# --------------------------------------------------------------------------- CLI

import_app = typer.Typer(
    help="Make edit specs from Tune-A-Video / Video-P2P configs and LOVEU-TGVE CSVs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@import_app.callback()
def _import() -> None:
    """Make edit specs from the configs researchers already have."""


def _shown(p: Path) -> str:
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


def _fail(exc: ImportProblem) -> NoReturn:
    err.print(f"error: {exc}", markup=False, highlight=False)
    raise Exit(2)


def _check_written(out: Path, spec: dict[str, Any]) -> list[str]:
    """Validate the written spec with recut's own loader; its problems as lines (empty when it validates)."""
    from recut.spec import SpecError, load_spec

    try:
        load_spec(out, check_files=media_exists(spec, out))
    except SpecError as exc:
        return [str(i) for i in exc.issues]
    return []


def _finish(written: list[tuple[Path, Imported]]) -> None:
    problems: list[str] = []
    for out, imp in written:
        for w in imp.warnings:
            err.print(f"warning: {w}", markup=False, highlight=False)
        typer.echo(f"wrote {_shown(out)}")
        problems += _check_written(out, imp.spec)
    if problems:
        for p in problems:
            err.print(p, markup=False, highlight=False)
        n = len(problems)
        err.print(
            f"{n} problem{'s' if n != 1 else ''} in the written spec{'s' if len(written) > 1 else ''}: the config's "
            "values do not make a valid spec; edit the spec or the config",
            markup=False,
            highlight=False,
        )
        raise Exit(2)


def _config_search(path: Path) -> list[Path]:
    """Where a config's relative paths may point: the current folder (where the official scripts run),
    the config's folder, and the folder above it (the repository root, for `configs/x.yaml`)."""
    here = path.resolve().parent
    return [Path.cwd(), here, here.parent]


@import_app.command("tune-a-video")
@_guard
def tune_a_video(
    configs: Annotated[
        list[Path],
        typer.Argument(
            metavar="CONFIG...",
            help="A Tune-A-Video/Video-P2P tuning config, a Video-P2P p2p config, or both (two files).",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Spec file to write (default: specs/<config name>.yaml).", show_default=False),
    ] = None,
    video: Annotated[
        Path | None,
        typer.Option(
            "--video", help="The input video or frame folder (default: the config's, as found).", show_default=False
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing spec file.")] = False,
) -> None:
    """Turn a Tune-A-Video or Video-P2P config into a `videop2p` edit spec."""
    try:
        parsed = [(str(p), read_config(p)) for p in configs]
        imp = tune_a_video_spec(parsed)
    except ImportProblem as exc:
        _fail(exc)
    origin = next((p for p, (_, c) in zip(configs, parsed, strict=True) if "train_data" in c), configs[0])
    imp.search = _config_search(origin)
    target = out if out is not None else Path("specs") / imp.name
    if target.is_dir():
        _fail(ImportProblem(str(target), "", "is a directory; --out takes the spec file to write"))
    if target.exists() and not force:
        _fail(ImportProblem(str(target), "", "exists; pass --force to overwrite it, or --out PATH"))
    place_media(imp, target, video)
    write_spec(imp.spec, target, imp.warnings)
    _finish([(target, imp)])


@import_app.command("loveu")
@_guard
def loveu(
    csv_file: Annotated[Path, typer.Argument(metavar="CSV", help="A LOVEU-TGVE-style CSV.", show_default=False)],
    out_dir: Annotated[
        Path, typer.Option("--out-dir", help="Folder for the specs (one per video, <section>/<video>.yaml).")
    ] = Path("specs/loveu"),
    videos: Annotated[
        Path | None,
        typer.Option(
            "--videos",
            help="The dataset folder (<section>/480p_videos/<name>.mp4, or <name>.mp4); default: the CSV's folder.",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        str, typer.Option("--model", help="A profile (`recut profiles`), a hub id or a pipeline folder.")
    ] = VIDEOP2P_BASE_PROFILE,
    frames: Annotated[
        int | None,
        typer.Option("--frames", min=1, help="Frames per clip (default: all, as the benchmark).", show_default=False),
    ] = None,
    size: Annotated[int, typer.Option("--size", min=8, help="Square frame side in pixels.")] = 512,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing spec files.")] = False,
) -> None:
    """Turn a LOVEU-TGVE CSV into one `videop2p` spec per video (edits: style, object, background, multiple)."""
    try:
        header, rows, lines = read_csv(csv_file)
        options = LoveuOptions(model=model, frames=frames, size=size)
        specs = loveu_specs(header, rows, str(csv_file), options, lines)
    except ImportProblem as exc:
        _fail(exc)
    base = (videos if videos is not None else csv_file.parent).expanduser()
    targets = [out_dir / imp.name for imp in specs]
    existing = [t for t in targets if t.exists()]
    if existing and not force:
        _fail(ImportProblem(str(existing[0]), "", f"exists ({len(existing)} of the specs do); pass --force"))
    written = []
    for imp, target in zip(specs, targets, strict=True):
        imp.search = _loveu_search(base, imp)
        place_media(imp, target, hint="import again with --videos DIR")
        write_spec(imp.spec, target, imp.warnings)
        written.append((target, imp))
    _finish(written)
    typer.echo(f"{len(written)} spec{'s' if len(written) != 1 else ''} in {_shown(out_dir)}")


def _loveu_search(base: Path, imp: Imported) -> list[Path]:
    """Pick the first of the dataset's layouts that exists under ``base``: ``<section>/480p_videos/<name>.mp4``
    (as :func:`loveu_specs` wrote it), ``<section>/<name>.mp4``, ``<name>.mp4``, ``480p_videos/<name>.mp4``,
    or a frame folder (``<section>/480p_frames/<name>/``, ``480p_frames/<name>/``, ``<name>/``)."""
    raw = str(imp.spec["input"]["video"])
    parts = raw.split("/")
    file = parts[-1]
    stem = Path(file).stem
    section = [parts[0]] if len(parts) == 3 else []
    alts = [raw]
    for sec in [*section, ""]:
        pre = f"{sec}/" if sec else ""
        alts += [f"{pre}{file}", f"{pre}480p_videos/{file}", f"{pre}480p_frames/{stem}", f"{pre}{stem}"]
    found = next((a for a in dict.fromkeys(alts) if (base / a).exists()), raw)
    imp.spec["input"]["video"] = found
    return [base]
