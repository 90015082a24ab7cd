"""Edit specs: the pydantic schema, YAML loading with line numbers, errors.

A spec is validated once, at the edge.  Every problem becomes a
:class:`SpecIssue` (``file:line: field.path: message``); the CLI prints them
and exits 2.  The method-specific part (``params``) is a discriminated union
built from the engine registry, so a new engine folder extends the schema.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from recut import models as model_registry
from recut.engine import file_param_slots, spec_file
from recut.registry import evaluate_checks, methods, toy_scenes
from recut.registry import metrics as registered_metrics
from recut.sweep import edit_params_at, set_path, sweep_points

ToyScene = toy_scenes().ToyScene

# --------------------------------------------------------------------------- errors


@dataclass(frozen=True)
class SpecIssue:
    file: str
    line: int | None
    path: str
    message: str
    #: A warning (printed, the spec still runs) rather than an error.
    warning: bool = False

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        message = f"warning: {self.message}" if self.warning else self.message
        return f"{where}: {self.path}: {message}" if self.path else f"{where}: {message}"


class SpecError(Exception):
    """One or more problems with a spec file."""

    def __init__(self, issues: list[SpecIssue]):
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


# --------------------------------------------------------------------------- helpers


#: Limits of what the code can hold or use (see the fields that use them).
MAX_SEED = 2**63 - 1  # torch's manual_seed takes < 2**64, and the revideo sampler adds a window index
MAX_FRAMES = 4096  # input.frames.count; the engines' frame fields have the same bound
MAX_SIDE = 4096  # input.size width/height
MAX_FPS = 1000.0
#: The slowest frame rate of an output (500 s a frame): a GIF frame lasts at most 655.35 s (16-bit centiseconds).
MIN_FPS = 0.002
#: The decoded input clip (uint8 RGB, [T, H, W, 3], at the source size and at input.size) must fit in this.
MAX_CLIP_BYTES = 8 * 2**30


class _Strict(BaseModel):
    # allow_inf_nan=False: every float field (and float in a list, tuple or dict) refuses inf and nan
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def outside_root(p: Path, root: Path | None, what: str, value: Any) -> str | None:
    """Why ``p`` (absolute) may not be used: it, or where its symbolic links lead, is outside ``root``."""
    if root is None:
        return None
    root = Path(root).resolve()
    real = p.resolve()  # follows every symbolic link on the way (the file, or a folder above it)
    if real.is_relative_to(root):
        return None
    allow = "set `allow_outside_root: true` at the top of the spec to allow it"
    if Path(os.path.normpath(p)).is_relative_to(root):
        return (
            f"{what} {str(value)!r} is a symbolic link (or lies under one) that leads to {real}, outside the "
            f"project root {root}; {allow}"
        )
    return f"{what} {str(value)!r} resolves to {p}, outside the project root {root}; {allow}"


def _resolve_path(value: Any, info: ValidationInfo, what: str) -> Path:
    """Resolve ``value`` against the spec's folder and enforce the project root (links followed)."""
    ctx = info.context or {}
    base = Path(ctx.get("base_dir", "."))
    p = Path(os.path.expanduser(str(value)))
    if not p.is_absolute():
        p = base / p
    p = Path(os.path.normpath(p))
    if not ctx.get("allow_outside_root", False):
        problem = outside_root(p, ctx.get("root"), what, value)
        if problem:
            raise ValueError(problem)
    return p


def _existing_file(value: Any, info: ValidationInfo) -> Path:
    p = _resolve_path(value, info, "path")
    if (info.context or {}).get("check_files", True):
        if not p.exists():
            raise ValueError(f"file not found: {value!r} (looked at {p})")
        if p.is_dir():
            raise ValueError(f"{value!r} is a directory, expected a file")
    return p


# --------------------------------------------------------------------------- sections


class FrameSampling(_Strict):
    """Which frames of the input video to use."""

    start: int = Field(
        0, ge=0, le=10_000_000, description="Index of the first frame to use (at most 10^7: 46 h at 60 fps)."
    )
    count: int | None = Field(
        None,
        gt=0,
        le=MAX_FRAMES,
        description=f"Number of frames to use (default: all that remain). At most {MAX_FRAMES}, and the decoded "
        f"clip (width x height x 3 bytes per frame, at the source size and at `size`) must stay within "
        f"{MAX_CLIP_BYTES // 2**30} GiB.",
    )
    stride: int = Field(
        1,
        gt=0,
        le=10_000,
        description=f"Take every n-th frame (at most 10000; the resulting frame rate must stay >= {MIN_FPS}). "
        "Ignored when `fps` is set.",
    )
    fps: float | None = Field(
        None,
        ge=MIN_FPS,
        le=MAX_FPS,
        description=f"Resample to this frame rate (nearest frame) instead of `stride`; {MIN_FPS} to {MAX_FPS:g} "
        "(a GIF frame lasts at most 655 s).",
    )


class Size(_Strict):
    """Output size of the preprocessed frames."""

    width: int = Field(..., gt=0, le=MAX_SIDE, description=f"Frame width in pixels (at most {MAX_SIDE}).")
    height: int = Field(..., gt=0, le=MAX_SIDE, description=f"Frame height in pixels (at most {MAX_SIDE}).")
    mode: Literal["crop", "stretch", "pad"] = Field(
        "crop",
        description="crop: scale to cover then centre-crop; stretch: plain resize; "
        "pad: scale to fit then pad with black.",
    )


class InputSpec(_Strict):
    """The media to edit: exactly one of `video`, `image`, `images` or `toy`."""

    video: Path | None = Field(None, description="A video file (anything ffmpeg decodes).")
    image: Path | None = Field(None, description="A single image (animated by methods that can).")
    images: list[Path] | None = Field(
        None, min_length=1, description="An image collection (e.g. one subject, several views)."
    )
    toy: ToyScene | None = Field(
        None,
        description="A generated toy scene with ground truth (see `recut toy make`); "
        "its width/height/frames set the size, so `size` must be left out.",
    )
    frames: FrameSampling = Field(default_factory=FrameSampling, description="Frame sampling.")
    size: Size | None = Field(None, description="Resize/crop every frame to this size.")

    @field_validator("video", "image", mode="before")
    @classmethod
    def _file(cls, v: Any, info: ValidationInfo) -> Any:
        return None if v is None else _existing_file(v, info)

    @field_validator("images", mode="before")
    @classmethod
    def _files(cls, v: Any, info: ValidationInfo) -> Any:
        if v is None or not isinstance(v, list):
            return v
        return [_existing_file(x, info) for x in v]

    @model_validator(mode="after")
    def _exactly_one(self) -> InputSpec:
        given = [k for k in ("video", "image", "images", "toy") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of `video`, `image`, `images` or `toy`"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if self.toy is not None and self.size is not None:
            raise ValueError("`size` does not apply to a toy scene; set `toy.width` and `toy.height`")
        if self.toy is not None and self.frames.fps is not None:
            raise ValueError("`frames.fps` does not apply to a toy scene; use `stride` or `toy.fps`")
        return self

    @property
    def kind(self) -> str:
        if self.toy is not None:
            return "toy"
        return "video" if self.video else "image" if self.image else "images"

    @property
    def media(self) -> list[Path]:
        if self.video:
            return [self.video]
        if self.image:
            return [self.image]
        return list(self.images or [])


DType = Literal["float32", "float16", "bfloat16"]


class ModelSpec(_Strict):
    """Which weights to use: a registry `profile`, or an explicit `repo`/`path`."""

    profile: str | None = Field(None, description="A profile name from `recut profiles`.")
    repo: str | None = Field(None, description="A Hugging Face repo id (must be in the local cache).")
    path: Path | None = Field(None, description="A local diffusers pipeline folder.")
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit).")
    dtype: DType | None = Field(
        None, description="Compute dtype: as given on CUDA; on the CPU bfloat16 when asked for, else float32."
    )

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, v: str | None) -> str | None:
        if v is not None and v not in model_registry.PROFILES:
            known = ", ".join(sorted(model_registry.PROFILES))
            raise ValueError(f"unknown profile {v!r}; known profiles: {known}")
        return v

    @field_validator("path", mode="before")
    @classmethod
    def _dir(cls, v: Any, info: ValidationInfo) -> Any:
        if v is None:
            return None
        p = _resolve_path(v, info, "path")
        if (info.context or {}).get("check_files", True) and not p.is_dir():
            raise ValueError(f"model folder not found: {v!r} (looked at {p})")
        return p

    @model_validator(mode="after")
    def _exactly_one(self) -> ModelSpec:
        given = [k for k in ("profile", "repo", "path") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of `profile`, `repo` or `path`")
        return self

    def resolve(self) -> model_registry.ResolvedModel:
        return model_registry.resolve(self.profile, self.repo, self.path, self.revision, self.dtype)


class Edit(_Strict):
    """One target of the edit. All edits of a spec share the upstream stages."""

    name: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="Output name (default: edit-<index>). Letters, digits, `_`, `.`, `-`.",
    )
    prompt: str = Field("", description="Target prompt.")
    negative_prompt: str = Field("", description="Negative prompt for classifier-free guidance.")
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Overrides of the method's `params` for this edit only "
        "(e.g. a different strength or guidance scale).",
    )


class Outputs(_Strict):
    """Where results go."""

    dir: Path | None = Field(None, description="Output folder (default: outputs/<spec path without .yaml>).")
    formats: list[Literal["mp4", "npy", "gif"]] = Field(
        default_factory=lambda: ["mp4"],
        min_length=1,
        description="mp4: H.264 video; npy: lossless uint8 frames [T,H,W,3]; gif: preview.",
    )

    @field_validator("dir", mode="before")
    @classmethod
    def _dir(cls, v: Any, info: ValidationInfo) -> Any:
        return None if v is None else _resolve_path(v, info, "output dir")


DEFAULT_METRICS = ("psnr", "ssim", "temporal_l1", "flow_warp_error")


Coordinate = Annotated[float, Field(allow_inf_nan=False)]


class TrajectoryRequest(_Strict):
    """The path an object should follow, for `toy_trajectory_error`."""

    object: int | None = Field(
        None,
        ge=0,
        le=63,
        description="Which object (its index in the edit's prompt, which pairs with `input.toy.objects`). "
        "Default: the first object the prompt changes, else 0.",
    )
    path: Literal["truth", "prompt"] | list[tuple[Coordinate, Coordinate] | None] = Field(
        "truth",
        description="`truth`: the object's ground-truth track in the input (it should stay on its path); "
        "`prompt`: the track the toy renderer gives the object with the prompt's attributes (e.g. a new "
        "motion); or one image-space point [x, y] in pixels per output frame (null = no request for that "
        "frame). The camera pan is removed from both the path and the judged track.",
    )

    @field_validator("path", mode="before")
    @classmethod
    def _path(cls, v: Any) -> Any:
        # checked here, so that a bad value gives one message instead of one per union branch
        if isinstance(v, str) and v in ("truth", "prompt"):
            return v
        if not isinstance(v, list):
            raise ValueError(f"expected `truth`, `prompt` or a list of [x, y] points, got {v!r}")
        for i, p in enumerate(v):
            finite = isinstance(p, (list, tuple)) and len(p) == 2
            finite = finite and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in p)
            finite = finite and all(abs(c) < 1e9 if isinstance(c, int) else math.isfinite(c) for c in p)
            if p is not None and not finite:
                raise ValueError(f"point {i}: expected [x, y] (finite pixel coordinates) or null, got {p!r}")
        if all(p is None for p in v):
            raise ValueError("give at least one [x, y] point (null means no request for that frame)")
        return v


class EvaluateSpec(_Strict):
    """What the evaluate stage measures for every output."""

    metrics: list[str] = Field(
        default_factory=lambda: list(DEFAULT_METRICS),
        min_length=1,
        description="Metric names (see `recut metrics`).",
    )
    clip: ModelSpec | None = Field(
        None,
        description="CLIP model for the clip_* metrics (default: the `toy` profile's CLIP; "
        "e.g. {profile: clip-vit-l14} on a machine that has it).",
    )
    mask: Literal["auto", "truth", "engine", "none"] | Path = Field(
        "auto",
        description="Region the edit should leave alone, for masked_psnr/masked_ssim: `truth` (a toy "
        "scene's edited objects), `engine` (the engine's own edit mask), a .npy file of bool [T,H,W] "
        "or [H,W] (True = edited), `none`, or `auto` (engine, else truth, else none).",
    )
    trajectory: TrajectoryRequest | None = Field(
        None,
        description="The requested path of `toy_trajectory_error` (toy inputs): {object, path}. "
        "Default when that metric is asked for: {path: truth}.",
    )

    @field_validator("mask", mode="before")
    @classmethod
    def _mask_file(cls, v: Any, info: ValidationInfo) -> Any:
        if isinstance(v, str) and v in ("auto", "truth", "engine", "none"):
            return v
        return _existing_file(v, info)


def _evaluate_form(v: Any) -> str:
    return "list" if isinstance(v, list) else "object"


#: `evaluate` is a list of metric names or an object; the discriminator picks the branch, so a
#: mistake in one form is not also reported as a mismatch of the other.
EvaluateField = Annotated[
    Annotated[EvaluateSpec, Tag("object")] | Annotated[list[str], Tag("list")],
    Discriminator(_evaluate_form),
]


class SpecBase(_Strict):
    """Fields shared by every method's spec."""

    version: Literal[1] = Field(1, description="Spec format version.")
    name: str | None = Field(None, description="Human-readable name of this spec.")
    description: str = Field("", description="Free text.")
    allow_outside_root: bool = Field(False, description="Allow input/output paths outside the project root.")
    input: InputSpec = Field(..., description="The media to edit.")
    model: ModelSpec = Field(..., description="Model weights.")
    seed: int = Field(
        0,
        ge=0,
        le=MAX_SEED,
        description="Random seed of every stochastic stage; below 2^63 (torch.Generator.manual_seed takes "
        "< 2^64, and stages add small offsets such as a window index to it).",
    )
    edits: list[Edit] = Field(..., min_length=1, description="The edits; they share upstream stages.")
    sweep: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="Cartesian sweep: dotted parameter path (e.g. `params.strength`, `seed`) "
        "-> list of values. Stages that do not read a swept path are shared.",
    )
    evaluate: EvaluateField = Field(
        default_factory=lambda: EvaluateSpec(),
        description="Metrics computed for every output (see `recut metrics`): a list of names, "
        "or {metrics, clip, mask}.",
    )

    @field_validator("evaluate", mode="after")
    @classmethod
    def _evaluate_object(cls, v: Any) -> EvaluateSpec:
        return EvaluateSpec(metrics=v) if isinstance(v, list) else v

    @property
    def evaluation(self) -> EvaluateSpec:
        assert isinstance(self.evaluate, EvaluateSpec)
        return self.evaluate

    outputs: Outputs = Field(default_factory=Outputs, description="Output folder and formats.")

    # filled by load_spec; not part of the schema
    _source: Path | None = None
    _root: Path | None = None
    _warnings: list[SpecIssue] = PrivateAttr(default_factory=list)

    @property
    def warnings(self) -> list[SpecIssue]:
        """What :func:`load_spec` warned about (see :func:`spec_warnings`); the spec still runs."""
        return list(self._warnings)

    @property
    def source(self) -> Path | None:
        return self._source

    @property
    def root(self) -> Path | None:
        return self._root

    def edit_names(self) -> list[str]:
        return [e.name or f"edit-{i}" for i, e in enumerate(self.edits)]


# --------------------------------------------------------------------------- union


def _spec_classes() -> dict[str, type[SpecBase]]:
    out: dict[str, type[SpecBase]] = {}
    for name, entry in methods().items():
        cls = create_model(  # type: ignore[call-overload]
            f"{entry.engine.__name__.removesuffix('Engine')}Spec",
            __base__=SpecBase,
            __doc__=f"Spec for the `{name}` method: {entry.description}",
            method=(Literal[name], Field(..., description="The editing method.")),
            params=(
                entry.params,
                Field(default_factory=entry.params, description=f"Parameters of `{name}`."),
            ),
        )
        out[name] = cls
    return out


_ADAPTER: TypeAdapter[Any] | None = None
_CLASSES: dict[str, type[SpecBase]] = {}


def spec_adapter() -> TypeAdapter[Any]:
    global _ADAPTER, _CLASSES
    if _ADAPTER is None:
        _CLASSES = _spec_classes()
        union = Annotated[Union[tuple(_CLASSES.values())], Field(discriminator="method")]  # type: ignore[valid-type]  # noqa: UP007
        _ADAPTER = TypeAdapter(union)
    return _ADAPTER


def json_schema() -> dict[str, Any]:
    schema = spec_adapter().json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "recut edit spec"
    return schema


# --------------------------------------------------------------------------- YAML with lines


def _compose(text: str) -> Any:
    """The YAML node tree of ``text`` (None when it does not parse)."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _duplicate_keys(node: Any) -> list[tuple[tuple[Any, ...], int, str]]:
    """``(key path, line, message)`` for every key written twice in one mapping (YAML would keep the
    last one without a word). Keys merged in with ``<<`` may be overridden; they are not counted."""
    found: list[tuple[tuple[Any, ...], int, str]] = []
    seen_nodes: set[int] = set()

    def walk(n: Any, path: tuple[Any, ...]) -> None:
        if id(n) in seen_nodes:  # an alias (or a recursive anchor): walked once
            return
        seen_nodes.add(id(n))
        if isinstance(n, yaml.MappingNode):
            first: dict[tuple[str, str], int] = {}
            for k, v in n.value:
                if k.tag == _MERGE_TAG:
                    continue
                if isinstance(k, yaml.ScalarNode):
                    line = k.start_mark.line + 1
                    ident = (k.tag, k.value)
                    if ident in first:
                        found.append(
                            (
                                (*path, k.value),
                                line,
                                f"duplicate key {k.value!r}: first given on line {first[ident]}, again on line "
                                f"{line}; YAML would silently keep only the last one. Give it once",
                            )
                        )
                    else:
                        first[ident] = line
                walk(v, (*path, getattr(k, "value", "?")))
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                walk(v, (*path, i))

    if node is not None:
        walk(node, ())
    return found


def _line_index(node: Any) -> dict[tuple[Any, ...], int]:
    """Map every key path of the composed YAML document to its (1-based) line."""
    lines: dict[tuple[Any, ...], int] = {}
    if node is None:
        return lines
    open_nodes: set[int] = set()  # the nodes being walked: a recursive anchor (`&a [*a]`) stops here

    def walk(n: Any, path: tuple[Any, ...]) -> None:
        if n is None or id(n) in open_nodes:
            return
        open_nodes.add(id(n))
        lines.setdefault(path, n.start_mark.line + 1)
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                key = k.value
                lines[(*path, key)] = k.start_mark.line + 1
                walk_child(v, (*path, key))
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                lines[(*path, i)] = v.start_mark.line + 1
                walk_child(v, (*path, i))
        open_nodes.discard(id(n))

    def walk_child(n: Any, path: tuple[Any, ...]) -> None:
        if isinstance(n, (yaml.MappingNode, yaml.SequenceNode)):
            walk(n, path)
        else:
            lines.setdefault(path, n.start_mark.line + 1)

    walk(node, ())
    return lines


def _line_for(lines: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int | None:
    loc = tuple(loc)
    while loc:
        key = tuple(str(x) if not isinstance(x, int) else x for x in loc)
        if key in lines:
            return lines[key]
        loc = loc[:-1]
    return lines.get(())


def _clean_loc(loc: tuple[Any, ...], method: str | None) -> tuple[Any, ...]:
    """Drop the union tag pydantic inserts (e.g. ``('sdedit', 'params', ...)``)."""
    if loc and method is not None and loc[0] == method:
        loc = loc[1:]
    if len(loc) >= 2 and loc[0] == "evaluate" and loc[1] in ("object", "list"):  # EvaluateField's branch tag
        loc = (loc[0], *loc[2:])
    return loc


_RANGE_ERRORS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")


def _is_non_finite(value: Any) -> bool:
    """``inf``/``nan``, as a float or as a string pydantic would parse ("inf", "-Infinity", "nan")."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return False
    return isinstance(value, float) and not math.isfinite(value)


def _message(err: dict[str, Any]) -> str:
    msg = str(err["msg"])
    typ = err.get("type", "")
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if typ == "extra_forbidden":
        return "unknown field (not allowed here)"
    if typ == "union_tag_invalid":
        tag = (err.get("ctx") or {}).get("tag", err.get("input"))
        return f"unknown method {tag!r}; known methods: {', '.join(sorted(methods()))}"
    if typ == "union_tag_not_found":
        return f"missing field `method`; known methods: {', '.join(sorted(methods()))}"
    if typ == "finite_number" or (typ in _RANGE_ERRORS and _is_non_finite(err.get("input"))):
        return _finite_message(err.get("input"))  # not "less than or equal to 1" for a nan
    if "input" in err and typ not in ("missing",) and not isinstance(err["input"], (dict, list)):
        if repr(err["input"]) not in msg:
            msg = f"{msg} (got {err['input']!r})"
    return msg


def find_project_root(start: Path) -> Path:
    """Nearest folder above ``start`` holding .git, dvc.yaml or pyproject.toml."""
    env = os.environ.get("RECUT_ROOT")
    if env:
        return Path(env).resolve()
    start = start.resolve()
    for d in [start, *start.parents]:
        if (d / ".git").exists() or (d / "dvc.yaml").exists() or (d / ".dvc").is_dir():
            return d
    return start


def read_yaml(path: Path, what: str = "spec") -> tuple[Any, Any]:
    """The data and the node tree (for :func:`_line_index` and :func:`_duplicate_keys`) of a YAML file;
    raise :class:`SpecError` (``file:line: message``) when it is missing, unreadable or not YAML.
    ``what`` names the kind of file in those messages. Shared by specs and schedules files."""
    shown = str(path)
    if not path.exists():
        raise SpecError([SpecIssue(shown, None, "", f"{what} file not found")])
    if path.is_dir():
        raise SpecError([SpecIssue(shown, None, "", f"is a directory, expected a YAML {what} file")])
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([SpecIssue(shown, None, "", f"cannot read: {exc}")]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError([SpecIssue(shown, line, "", f"invalid YAML: {problem}")]) from None
    return data, _compose(text)


def load_spec(path: str | Path, check_files: bool = True, emit_warnings: bool = True) -> SpecBase:
    """Read, parse and validate one spec file; raise :class:`SpecError`.

    With ``check_files`` (the default) the media are opened and the warnings of :func:`spec_warnings`
    (a prompt the text encoder cuts) are kept in ``spec.warnings``; ``emit_warnings`` also prints each
    one to stderr, once per process (``recut validate`` and ``recut run`` both load through here).
    Nothing is written: every path the spec names is checked first.
    """
    p = Path(path)
    shown = str(path)
    data, node = read_yaml(p, "spec")
    if not isinstance(data, dict):
        raise SpecError([SpecIssue(shown, 1, "", "a spec must be a YAML mapping (key: value)")])
    lines = _line_index(node)

    def issue(loc: tuple[Any, ...], message: str, line: int | None = None) -> SpecIssue:
        return SpecIssue(shown, line or _line_for(lines, loc), ".".join(map(str, loc)), message)

    # 1. the document itself: keys written twice
    early = [issue(loc, msg, line) for loc, line, msg in _duplicate_keys(node)]

    base_dir = p.resolve().parent
    root = find_project_root(base_dir)
    context = {
        "base_dir": base_dir,
        "root": root,
        "allow_outside_root": _as_bool(data.get("allow_outside_root", False)),
        "check_files": check_files,
    }
    method = data.get("method") if isinstance(data.get("method"), str) else None
    # 2. the schema
    try:
        spec: SpecBase = spec_adapter().validate_python(data, context=context)
    except ValidationError as exc:
        issues = []
        for err in exc.errors():
            loc = _clean_loc(tuple(err["loc"]), method)
            if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
                loc = ("method",)  # pydantic reports the discriminator at the root
            issues.append(issue(loc, _message(dict(err))))
        raise SpecError(early + issues) from None
    if early:
        raise SpecError(early)

    spec._source = p.resolve()  # before the checks: an engine's checks resolve its params' files from here
    spec._root = root
    # 3. checks across fields, files and media
    issues = _semantic_checks(spec, data)
    if check_files:
        issues += _media_checks(spec)
    if issues:
        raise SpecError([SpecIssue(shown, _line_for(lines, tuple(_split(f))), f, m) for f, m in issues])
    # 4. warnings: the spec runs, but not quite as written
    if check_files:
        spec._warnings = [
            SpecIssue(shown, _line_for(lines, tuple(_split(f))), f, m, warning=True) for f, m in spec_warnings(spec)
        ]
        if emit_warnings:
            print_warnings(spec._warnings)
    return spec


_PRINTED: list[tuple[str, Any]] = []  # (line, stream): the stream is held, so its id is never reused


def print_warnings(warnings: list[SpecIssue]) -> None:
    """Print each warning line to stderr once per stream: `recut run` loads a spec more than once
    (validation at the edge, then planning), and should say each warning once."""
    stream = sys.stderr
    for w in warnings:
        line = str(w)
        if not any(seen == line and out is stream for seen, out in _PRINTED):
            _PRINTED.append((line, stream))
            print(line, file=stream)


def _finite_message(value: Any) -> str:
    return f"must be a finite number (got {value!r})"


def _non_finite(
    value: Any, path: tuple[Any, ...] = (), _open: frozenset[int] = frozenset()
) -> Iterator[tuple[tuple[Any, ...], float]]:
    """``(path, value)`` of every float in ``value`` that is inf or nan: in plain YAML data, and in a
    validated model (fields by their YAML name), its lists, tuples and dicts."""
    if isinstance(value, float):
        if not math.isfinite(value):
            yield path, value
        return
    if id(value) in _open:  # a recursive YAML anchor (`&a [*a]`)
        return
    inner = _open | {id(value)}
    if isinstance(value, BaseModel):
        for name, info in type(value).model_fields.items():
            yield from _non_finite(getattr(value, name), (*path, info.alias or name), inner)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _non_finite(v, (*path, k), inner)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _non_finite(v, (*path, i), inner)


def _as_bool(value: Any) -> bool:
    """Coerce like the pydantic field does (``"false"`` is False, not ``bool("false")``)."""
    try:
        return TypeAdapter(bool).validate_python(value)
    except ValidationError:
        return False


def _split(path: str) -> list[Any]:
    if path.startswith("sweep."):  # a sweep key is itself a dotted path: one YAML key
        return ["sweep", path[len("sweep.") :]]
    return [int(x) if x.isdigit() else x for x in path.split(".")]


# --------------------------------------------------------------------------- semantic checks


_CHECKED_LATER = ("edits", "sweep")


def _semantic_checks(spec: SpecBase, raw: dict[str, Any]) -> list[tuple[str, str]]:
    """Checks that need the whole spec: prompts, overrides, sweeps, metrics."""
    known = registered_metrics()

    entry = methods()[spec.method]  # type: ignore[attr-defined]
    issues: list[tuple[str, str]] = []

    # a float field of a model that does not refuse inf/nan itself (e.g. "inf" written as a string);
    # an edit's overrides and the sweep values are checked below, each with its params model
    issues += [
        (".".join(map(str, loc)), _finite_message(v)) for loc, v in _non_finite(spec) if loc[0] not in _CHECKED_LATER
    ]

    names = spec.edit_names()
    for i, e in enumerate(spec.edits):
        if entry.engine.requires_prompt and not e.prompt.strip():
            issues.append((f"edits.{i}.prompt", "the prompt is empty; give the target text"))
        for fld, msg in _check_params(entry.params, spec.params, e.params):  # type: ignore[attr-defined]
            issues.append((f"edits.{i}.params.{fld}" if fld else f"edits.{i}.params", msg))
    seen: set[str] = set()
    for i, n in enumerate(names):
        if n in seen:
            issues.append((f"edits.{i}.name", f"duplicate edit name {n!r}"))
        seen.add(n)

    listed = isinstance(raw.get("evaluate"), list)
    for i, m in enumerate(spec.evaluation.metrics):
        if m not in known:
            where = f"evaluate.{i}" if listed else f"evaluate.metrics.{i}"
            issues.append((where, f"unknown metric {m!r}; known: {', '.join(sorted(known))}"))
    if all(m in known for m in spec.evaluation.metrics):
        masked = [m for m in spec.evaluation.metrics if "mask" in known[m].needs]
        if masked and spec.evaluation.mask == "none":
            issues.append(
                (
                    "evaluate.mask",
                    f"is 'none', but {', '.join(map(repr, masked))} compare only the region the edit leaves "
                    "alone and need a mask; use `auto`, `truth`, `engine` or a .npy file, or drop those metrics",
                )
            )
        if spec.evaluation.mask == "engine" and not entry.engine.writes_edit_mask:
            issues.append(
                (
                    "evaluate.mask",
                    f"is 'engine', but {spec.method} writes no edit mask; use `truth` (a toy input), a .npy "
                    "file of the edited region, or `auto`",
                )
            )
        for check in evaluate_checks():
            issues.extend(check(spec, listed))

    for key, values in spec.sweep.items():
        where = f"sweep.{key}"
        if not values:
            issues.append((where, "a sweep needs at least one value"))
            continue
        head = key.split(".")[0]
        if head not in ("params", "seed"):
            issues.append((where, "only `params.<name>` and `seed` can be swept"))
            continue
        for v in values:
            patched = set_path(raw, key, v)
            try:
                swept = spec_adapter().validate_python(patched, context={"check_files": False})
            except ValidationError as exc:
                first = exc.errors()[0]
                issues.append((where, f"value {v!r} is invalid: {_message(dict(first))}"))
                break
            bad = [x for loc, x in _non_finite(swept) if loc[0] not in _CHECKED_LATER]
            if bad:
                issues.append((where, f"value {v!r} is invalid: {_finite_message(bad[0])}"))
                break
    if spec.sweep and not issues:
        issues += _edit_sweep_checks(spec)
    issues += _file_param_checks(spec, entry.engine.file_params)
    if not issues:
        issues.extend(entry.engine.check_spec(spec))
    return issues


def _edit_sweep_checks(spec: SpecBase) -> list[tuple[str, str]]:
    """Each edit at each sweep point: the params its stages get must be valid together (the values of
    two swept params, or a swept value and an edit's override, can each be valid alone and clash)."""
    model = type(spec.params)  # type: ignore[attr-defined]
    for i, e in enumerate(spec.edits):
        for point in sweep_points(spec):
            try:
                model.model_validate(edit_params_at(spec, i, point))
            except ValidationError as exc:
                shown = ", ".join(f"{k}: {v!r}" for k, v in point.items())
                where = f"edits.{i}.params" if e.params else f"sweep.{next(iter(point))}"
                return [(where, f"with the sweep point {{{shown}}}: {_message(dict(exc.errors()[0]))}")]
    return []


def _file_param_checks(spec: SpecBase, patterns: tuple[str, ...]) -> list[tuple[str, str]]:
    """The project-root rule (symbolic links followed) for the files an engine's params name
    (``Engine.file_params``): in ``params``, in each edit's overrides and in each sweep value."""
    if not patterns or spec.allow_outside_root:
        return []
    base = spec.params.model_dump(mode="json", by_alias=True)  # type: ignore[attr-defined]
    variants: list[tuple[str, dict[str, Any], set[str] | None]] = [("params", base, None)]
    variants += [(f"edits.{i}.params", {**base, **e.params}, set(e.params)) for i, e in enumerate(spec.edits)]
    for key, values in spec.sweep.items():
        if key.startswith("params."):
            own = {key.split(".")[1]}
            variants += [(f"sweep.{key}", set_path({"params": base}, key, v)["params"], own) for v in values]
    issues: dict[tuple[str, str], None] = {}
    for where, params, own in variants:
        for pattern in patterns:
            for cur, leaf, dotted in file_param_slots(params, pattern):
                if own is not None and dotted.split(".")[0] not in own:
                    continue  # the spec's own value: reported once, under `params`
                value = cur[leaf]
                items = [(dotted, value)] if isinstance(value, str) else []
                if isinstance(value, list):
                    items = [(f"{dotted}.{j}", x) for j, x in enumerate(value) if isinstance(x, str)]
                for field, x in items:
                    problem = outside_root(spec_file(spec.source, x), spec.root, "path", x)
                    if problem:
                        issues[(where if where.startswith("sweep.") else f"{where}.{field}", problem)] = None
    return list(issues)


def _media_checks(spec: SpecBase) -> list[tuple[str, str]]:
    """Open the input media (and an evaluate mask file) now, so a bad file fails before any compute."""
    issues = _input_media_checks(spec)
    mask = spec.evaluation.mask
    if isinstance(mask, Path):
        issues += _mask_file_checks(mask)
    return issues


def _input_media_checks(spec: SpecBase) -> list[tuple[str, str]]:
    from recut import video  # local: recut.video pulls in av and cv2, which `import recut.cli` must not

    inp = spec.input
    fr = inp.frames
    try:
        if inp.toy is not None:
            need = fr.start + ((fr.count or 1) - 1) * fr.stride + 1
            if inp.toy.frames < need:
                return [("input.frames", f"the toy scene has {inp.toy.frames} frames, but the spec asks for {need}")]
            return _rate_check(inp.toy.fps / fr.stride, f"the toy scene's {inp.toy.fps:g} fps")
        if inp.video is not None:
            info = video.probe(inp.video)
            if fr.fps is None:
                need = fr.start + ((fr.count or 1) - 1) * fr.stride + 1
                if info.frames < need:
                    want = f"start {fr.start}, count {fr.count or 'all'}, stride {fr.stride}"
                    return [
                        (
                            "input.video",
                            f"{inp.video} has {info.frames} frames, but the spec asks for {need} ({want})",
                        )
                    ]
                n = fr.count if fr.count is not None else len(range(fr.start, info.frames, fr.stride))
                problems = _rate_check(info.fps / fr.stride, f"{inp.video.name}'s {info.fps:g} fps")
            else:
                if fr.start >= info.frames:
                    return [("input.frames.start", f"{inp.video} has only {info.frames} frames")]
                if fr.count is not None:
                    need = fr.start + video._nearest(fr.count - 1, info.fps, fr.fps) + 1
                    if info.frames < need:
                        return [
                            (
                                "input.video",
                                f"{inp.video} has {info.frames} frames, but the spec asks for {need} (start "
                                f"{fr.start}, count {fr.count}, fps {fr.fps:g} from {info.fps:g})",
                            )
                        ]
                    n = fr.count
                else:
                    n = math.ceil((info.frames - fr.start) * fr.fps / info.fps)
                problems = []
            sides = [(info.width, info.height)] + ([(inp.size.width, inp.size.height)] if inp.size else [])
            return problems + _memory_check(n, sides)
        if inp.image is not None:
            video.read_image(inp.image)
        else:
            for i, p in enumerate(inp.images or []):
                try:
                    video.read_image(p)
                except video.MediaError as exc:
                    return [(f"input.images.{i}", str(exc))]
    except video.MediaError as exc:
        return [(f"input.{inp.kind}", str(exc))]
    return []


def _rate_check(fps: float, source: str) -> list[tuple[str, str]]:
    """The outputs' frame rate (the source's over the stride) must be one a GIF and an MP4 can store."""
    if fps >= MIN_FPS:
        return []
    return [
        (
            "input.frames.stride",
            f"{source} over this stride is {fps:.3g} fps, below the {MIN_FPS} fps an output can have",
        )
    ]


def _memory_check(frames: int, sides: list[tuple[int, int]]) -> list[tuple[str, str]]:
    """The decoded clip, at the source size and at ``input.size``, must fit in :data:`MAX_CLIP_BYTES`."""
    for w, h in sides:
        size = frames * w * h * 3
        if size > MAX_CLIP_BYTES:
            return [
                (
                    "input.frames",
                    f"selects {frames} frames of {w}x{h}: {size / 2**30:.1f} GiB of decoded RGB frames, above the "
                    f"{MAX_CLIP_BYTES // 2**30} GiB a clip may take; select fewer frames (count, stride, fps)",
                )
            ]
    return []


def _mask_file_checks(path: Path) -> list[tuple[str, str]]:
    """``evaluate.mask`` as a file: a .npy array of [H, W] or [T, H, W] (read without loading it)."""
    import numpy as np

    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        return [("evaluate.mask", f"cannot read {path} as a .npy array: {exc}")]
    if not isinstance(arr, np.ndarray) or arr.ndim not in (2, 3):
        shape = list(getattr(arr, "shape", []))
        return [("evaluate.mask", f"{path.name} is {shape}; a mask is [H, W] or [T, H, W] (True = edited)")]
    return []


def _check_params(model: type[BaseModel], base: BaseModel, override: dict[str, Any]) -> list[tuple[str, str]]:
    if not override:
        return []
    merged = {**base.model_dump(), **override}
    try:
        checked = model.model_validate(merged)
    except ValidationError as exc:
        return [(".".join(map(str, e["loc"])), _message(dict(e))) for e in exc.errors()]
    return [(".".join(map(str, loc)), _finite_message(v)) for loc, v in _non_finite(checked) if loc[0] in override]


# --------------------------------------------------------------------------- warnings


def spec_warnings(spec: SpecBase) -> list[tuple[str, str]]:
    """``(field.path, message)`` for what runs, but not as written: a prompt longer than the text
    encoder reads (its tokenizer's ``model_max_length``, start and end tokens included) is cut, and
    the words past the limit are lost. Checked against the tokenizer of every text model the spec's
    model has on this machine (the smallest limit); a hub model not in the local cache is skipped."""
    out: list[tuple[str, str]] = []
    found = _tokenizer(_model_locations(spec.model))
    if found is None:
        return out
    tok, limit = found
    prompts: list[tuple[str, str, str]] = []  # field, text, who
    names = spec.edit_names()
    for i, e in enumerate(spec.edits):
        prompts += [(f"edits.{i}.{k}", getattr(e, k), f"edit {names[i]!r}: ") for k in ("prompt", "negative_prompt")]
        prompts += [(f"edits.{i}.params.{f}", t, f"edit {names[i]!r}: ") for f, t in _prompt_params(e.params)]
    base = spec.params.model_dump(mode="json", by_alias=True)  # type: ignore[attr-defined]
    prompts += [(f"params.{f}", t, "") for f, t in _prompt_params(base)]
    for field, text, who in prompts:
        if not text or len(text.encode()) + 2 <= limit:  # a token holds at least one byte: it fits
            continue
        enc = tok.encode(text)
        if len(enc.ids) <= limit:
            continue
        cut = enc.offsets[limit - 1][0]  # the first content token past the limit (ids[0] is the start token)
        word = text.rfind(" ", 0, cut + 1) + 1  # from the start of the word it falls in
        dropped = text[word:].strip()
        out.append(
            (
                field,
                f"{who}{len(enc.ids)} tokens, but the text encoder reads {limit} (start and end tokens "
                f"included), so the rest is cut without a word: {dropped!r} is dropped",
            )
        )
    return out


def _prompt_params(params: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """``(dotted path, text)`` of the prompt texts among ``params``: every string under a key that ends
    in ``prompt`` (source_prompt, finetune_prompt, customize.prompt, an area's sdedit prompt ...)."""
    if isinstance(params, dict):
        for k, v in params.items():
            if isinstance(v, str) and str(k).endswith("prompt"):
                yield f"{prefix}{k}", v
            elif isinstance(v, (dict, list)):
                yield from _prompt_params(v, f"{prefix}{k}.")
    elif isinstance(params, list):
        for i, v in enumerate(params):
            yield from _prompt_params(v, f"{prefix}{i}.")


def _model_locations(model: ModelSpec) -> list[tuple[str, str | None]]:
    """``(folder or hub id, revision)`` of every component of ``model``, without hashing any weights."""
    if model.path is not None:
        return [(str(model.path), None)]
    if model.repo is not None:
        return [(model.repo, model.revision)]
    prof = model_registry.PROFILES[str(model.profile)]
    root = model_registry.REPO_ROOT
    return [(str(root / loc) if prof.local else loc, model.revision) for loc in prof.components.values()]


def _tokenizer(locations: list[tuple[str, str | None]]) -> tuple[Any, int] | None:
    """The fast tokenizer (``tokenizers``, no transformers import) with the smallest ``model_max_length``
    among the components' ``tokenizer/`` folders (or their own folder: a CLIP model), or None."""
    best: tuple[Any, int] | None = None
    for loc, revision in locations:
        for sub in ("tokenizer/", ""):
            files = _tokenizer_files(loc, sub, revision)
            if files is None:
                continue
            limit = _max_length(files[1])
            if limit is not None and (best is None or limit < best[1]):
                tok = _load_tokenizer(files[0])
                if tok is not None:
                    best = (tok, limit)
            break
    return best


def _tokenizer_files(loc: str, sub: str, revision: str | None) -> tuple[str, str] | None:
    """``(tokenizer.json, tokenizer_config.json)`` of ``loc``'s ``sub`` folder, on this machine."""
    folder = Path(loc)
    if folder.is_dir():
        tj, cfg = folder / sub / "tokenizer.json", folder / sub / "tokenizer_config.json"
        return (str(tj), str(cfg)) if tj.is_file() and cfg.is_file() else None
    if folder.is_absolute() or loc.count("/") != 1:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache  # local: ~0.1 s, only for hub models
    except ImportError:
        return None
    found = [
        try_to_load_from_cache(loc, f"{sub}{n}", revision=revision) for n in ("tokenizer.json", "tokenizer_config.json")
    ]
    return (found[0], found[1]) if all(isinstance(f, str) for f in found) else None


def _max_length(config: str) -> int | None:
    try:
        n = json.loads(Path(config).read_text(encoding="utf-8")).get("model_max_length")
    except (OSError, ValueError):
        return None
    return int(n) if isinstance(n, (int, float)) and 2 < n < 100_000 else None  # 1e30: "no limit"


@lru_cache(maxsize=8)
def _load_tokenizer(path: str) -> Any:
    try:
        from tokenizers import Tokenizer
    except ImportError:
        return None
    try:
        tok = Tokenizer.from_file(path)
    except Exception:  # noqa: BLE001 - an unreadable tokenizer only skips the warning
        return None
    tok.no_truncation()  # count every token, whatever the file's own truncation setting
    return tok
