"""Edit specs: the pydantic schema, YAML loading with line numbers, errors.

A spec is validated once, at the edge.  Every problem becomes a
:class:`SpecIssue` (``file:line: field.path: message``); the CLI prints them
and exits 2.  The method-specific part (``params``) is a discriminated union
built from the engine registry, so a new engine folder extends the schema.
"""

from __future__ import annotations

import copy
import itertools
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from recut import models as model_registry
from recut.registry import evaluate_checks, methods, toy_scenes
from recut.registry import metrics as registered_metrics

ToyScene = toy_scenes().ToyScene

# --------------------------------------------------------------------------- errors


@dataclass(frozen=True)
class SpecIssue:
    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class SpecError(Exception):
    """One or more problems with a spec file."""

    def __init__(self, issues: list[SpecIssue]):
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


# --------------------------------------------------------------------------- helpers


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _resolve_path(value: Any, info: ValidationInfo, what: str) -> Path:
    """Resolve ``value`` against the spec's folder and enforce the project root."""
    ctx = info.context or {}
    base = Path(ctx.get("base_dir", "."))
    p = Path(os.path.expanduser(str(value)))
    if not p.is_absolute():
        p = base / p
    p = Path(os.path.normpath(p))
    root = ctx.get("root")
    if root is not None and not ctx.get("allow_outside_root", False):
        try:
            p.relative_to(root)
        except ValueError:
            raise ValueError(
                f"{what} {str(value)!r} resolves to {p}, outside the project root {root}; "
                "set `allow_outside_root: true` at the top of the spec to allow it"
            ) from None
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

    start: int = Field(0, ge=0, description="Index of the first frame to use.")
    count: int | None = Field(None, gt=0, description="Number of frames to use (default: all that remain).")
    stride: int = Field(1, gt=0, description="Take every n-th frame. Ignored when `fps` is set.")
    fps: float | None = Field(
        None, gt=0, description="Resample to this frame rate (nearest frame) instead of `stride`."
    )


class Size(_Strict):
    """Output size of the preprocessed frames."""

    width: int = Field(..., gt=0, le=4096, description="Frame width in pixels.")
    height: int = Field(..., gt=0, le=4096, description="Frame height in pixels.")
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
    dtype: DType | None = Field(None, description="Weights dtype on CUDA (CPU always uses float32).")

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
            if p is not None and not (finite and all(math.isfinite(c) for c in p)):
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
    seed: int = Field(0, ge=0, description="Random seed of every stochastic stage.")
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


def _line_index(text: str) -> dict[tuple[Any, ...], int]:
    """Map every key path of the YAML document to its (1-based) line."""
    lines: dict[tuple[Any, ...], int] = {}
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return lines

    def walk(n: Any, path: tuple[Any, ...]) -> None:
        if n is None:
            return
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


def load_spec(path: str | Path, check_files: bool = True) -> SpecBase:
    """Read, parse and validate one spec file; raise :class:`SpecError`."""
    p = Path(path)
    shown = str(path)
    if not p.exists():
        raise SpecError([SpecIssue(shown, None, "", "spec file not found")])
    if p.is_dir():
        raise SpecError([SpecIssue(shown, None, "", "is a directory, expected a YAML spec file")])
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError([SpecIssue(shown, None, "", f"cannot read: {exc}")]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecError([SpecIssue(shown, line, "", f"invalid YAML: {problem}")]) from None
    if not isinstance(data, dict):
        raise SpecError([SpecIssue(shown, 1, "", "a spec must be a YAML mapping (key: value)")])

    lines = _line_index(text)
    base_dir = p.resolve().parent
    root = find_project_root(base_dir)
    context = {
        "base_dir": base_dir,
        "root": root,
        "allow_outside_root": _as_bool(data.get("allow_outside_root", False)),
        "check_files": check_files,
    }
    method = data.get("method") if isinstance(data.get("method"), str) else None
    try:
        spec: SpecBase = spec_adapter().validate_python(data, context=context)
    except ValidationError as exc:
        issues = []
        for err in exc.errors():
            loc = _clean_loc(tuple(err["loc"]), method)
            if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
                loc = ("method",)  # pydantic reports the discriminator at the root
            issues.append(SpecIssue(shown, _line_for(lines, loc), ".".join(map(str, loc)), _message(dict(err))))
        raise SpecError(issues) from None

    spec._source = p.resolve()  # before the checks: an engine's checks resolve its params' files from here
    spec._root = root
    issues = _semantic_checks(spec, data)
    if check_files:
        issues += _media_checks(spec)
    if issues:
        raise SpecError([SpecIssue(shown, _line_for(lines, tuple(_split(f))), f, m) for f, m in issues])
    return spec


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


def _semantic_checks(spec: SpecBase, raw: dict[str, Any]) -> list[tuple[str, str]]:
    """Checks that need the whole spec: prompts, overrides, sweeps, metrics."""
    known = registered_metrics()

    entry = methods()[spec.method]  # type: ignore[attr-defined]
    issues: list[tuple[str, str]] = []

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
            patched = _set_path(raw, key, v)
            try:
                spec_adapter().validate_python(patched, context={"check_files": False})
            except ValidationError as exc:
                first = exc.errors()[0]
                issues.append((where, f"value {v!r} is invalid: {_message(dict(first))}"))
                break
    if not issues:
        issues.extend(entry.engine.check_spec(spec))
    return issues


def _media_checks(spec: SpecBase) -> list[tuple[str, str]]:
    """Open the input media now, so a bad file fails before any compute."""
    from recut import video  # local: recut.video pulls in av and cv2, which `import recut.cli` must not

    inp = spec.input
    try:
        if inp.toy is not None:
            fr = inp.frames
            need = fr.start + ((fr.count or 1) - 1) * fr.stride + 1
            if inp.toy.frames < need:
                return [("input.frames", f"the toy scene has {inp.toy.frames} frames, but the spec asks for {need}")]
        elif inp.video is not None:
            info = video.probe(inp.video)
            fr = inp.frames
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
            elif fr.start >= info.frames:
                return [("input.frames.start", f"{inp.video} has only {info.frames} frames")]
        elif inp.image is not None:
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


def _check_params(model: type[BaseModel], base: BaseModel, override: dict[str, Any]) -> list[tuple[str, str]]:
    if not override:
        return []
    merged = {**base.model_dump(), **override}
    try:
        model.model_validate(merged)
    except ValidationError as exc:
        return [(".".join(map(str, e["loc"])), _message(dict(e))) for e in exc.errors()]
    return []


def _set_path(data: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(data)
    cur = out
    parts = dotted.split(".")
    for p in parts[:-1]:
        nxt = cur.get(p)
        if not isinstance(nxt, dict):
            nxt = {}
            cur[p] = nxt
        cur = nxt
    cur[parts[-1]] = value
    return out


def sweep_points(spec: SpecBase) -> list[dict[str, Any]]:
    """The cartesian product of ``spec.sweep`` as a list of {path: value}."""
    if not spec.sweep:
        return [{}]
    keys = list(spec.sweep)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*spec.sweep.values())]
