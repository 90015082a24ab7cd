"""The contract between recut's plumbing and an editing method.

An engine is plain PyTorch/diffusers code. It declares its stage graph as data
(:class:`Stage`), and implements each stage as a method named after the stage
that takes a :class:`StageContext` and writes its files into ``ctx.out_dir``.
Engines never import Prefect or Ray: the tasks and workers call them.

A stage's ``reads`` lists the dotted paths of the *resolved spec view* it
depends on (see :func:`recut.plan.resolved_view`).  Only those values, the
stage version and the keys of the upstream stages enter its cache key, so a
change to a value no stage reads upstream of sampling reuses everything
upstream.  The stage receives them as a :class:`StageView`, which refuses any
other key: a read that escapes the key fails instead of falling back to a default.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel

StageKind = Literal["preprocess", "extract", "finetune", "invert", "sample", "evaluate"]
STAGE_KINDS: tuple[str, ...] = ("preprocess", "extract", "finetune", "invert", "sample", "evaluate")


@dataclass(frozen=True)
class Stage:
    """One node of an engine's stage graph."""

    name: str
    kind: StageKind
    version: str
    reads: tuple[str, ...]
    after: tuple[str, ...] = ()
    #: Values the stage receives but that cannot change its result (memory or
    #: speed knobs such as a frame batch size); they stay out of the key.
    options: tuple[str, ...] = ()
    per_edit: bool = False
    uses_model: bool = False
    description: str = ""


@dataclass(frozen=True)
class MetricInfo:
    """A metric as data: what it measures and where its function lives.

    The core reads these (names, ``needs``) through :func:`recut.registry.metrics` without
    importing any evaluation code; ``fn`` imports ``impl`` (``"module:function"``) on first use.
    A plain metric's function is ``fn(output, reference, mask) -> float``; a *contextual* one takes
    an ``EvalContext`` (engines.common.evaluation) and may return a dict of ``reports``.
    """

    name: str
    description: str
    higher_is_better: bool
    needs_reference: bool
    impl: str
    contextual: bool = False
    #: What the metric needs beyond the output: a subset of {"clip", "mask", "truth", "lpips"}.
    needs: frozenset[str] = frozenset()
    #: Further values the metric reports besides ``name`` (its fn then returns a dict).
    outputs: tuple[str, ...] = ()

    @property
    def reports(self) -> tuple[str, ...]:
        """Every key this metric writes into metrics.json."""
        return (self.name, *self.outputs)

    @property
    def fn(self) -> Callable[..., Any]:
        module, _, attr = self.impl.partition(":")
        return getattr(importlib.import_module(module), attr)


ProgressFn = Callable[[int, int], None]


def spec_file(source: Path | None, value: str) -> Path:
    """A path a spec's params give (``Engine.file_params``), resolved against the spec file's folder."""
    p = Path(os.path.expanduser(value))
    if not p.is_absolute() and source is not None:
        p = source.parent / p
    return Path(os.path.normpath(p))


def file_param_slots(params: Any, dotted: str, prefix: str = "") -> Iterator[tuple[dict[str, Any], str, str]]:
    """Where ``dotted`` (an ``Engine.file_params`` entry; ``*`` steps into every item of a list) holds a
    value in ``params``: ``(container, key, concrete dotted path)``, e.g. ``areas.*.mask.file`` ->
    ``(areas[0]["mask"], "file", "areas.0.mask.file")``."""
    head, _, rest = dotted.partition(".")
    if head == "*":
        if isinstance(params, list):
            for i, item in enumerate(params):
                yield from file_param_slots(item, rest, f"{prefix}{i}.")
        return
    if not isinstance(params, dict) or params.get(head) is None:
        return
    if not rest:
        yield params, head, prefix + head
    else:
        yield from file_param_slots(params[head], rest, f"{prefix}{head}.")


#: Keys every stage view holds besides its declared ones: the media paths preprocess decodes.
RUNTIME_KEYS: tuple[str, ...] = ("_media",)
_NO_DEFAULT: Any = object()


class UndeclaredRead(KeyError):
    """A stage read a value its ``Stage.reads`` and ``options`` do not declare."""

    def __str__(self) -> str:
        return str(self.args[0])


class StageView(Mapping[str, Any]):
    """The values one stage may read: exactly its declared ``reads`` and ``options``.

    Keys are the dotted paths the stage declares (``"params.strength"``); a path below a declared
    one (``"params.inversion.steps"`` under ``"params.inversion"``) reads into it.  Every declared
    value is present with the spec's resolved default, so a stage needs no default of its own:
    ``view[key]`` reads, and ``get`` takes no default.  Any other key raises :class:`UndeclaredRead`
    naming the stage and what it declares.
    """

    def __init__(self, stage: str, values: Mapping[str, Any], declared: tuple[str, ...]) -> None:
        self.stage = stage
        self.declared = tuple(declared) + RUNTIME_KEYS
        self._values = {k: v for k, v in values.items() if k in self.declared}
        missing = [k for k in declared if k not in values]
        if missing:
            raise KeyError(f"stage {stage!r}: the planner gave no value for declared {', '.join(missing)}")

    def __getitem__(self, key: str) -> Any:
        if key in self._values:
            return self._values[key]
        for d in self.declared:
            if key.startswith(d + ".") and d in self._values:
                cur = self._values[d]
                for part in key[len(d) + 1 :].split("."):
                    if not isinstance(cur, Mapping) or part not in cur:
                        raise UndeclaredRead(f"stage {self.stage!r} reads {key!r}: {d!r} has no {part!r}")
                    cur = cur[part]
                return cur
        raise UndeclaredRead(
            f"stage {self.stage!r} reads {key!r}, which it does not declare "
            f"(reads/options: {', '.join(self.declared[: -len(RUNTIME_KEYS)]) or 'none'}); "
            "declare it in the stage, so that it enters the cache key"
        )

    def get(self, key: str, default: Any = _NO_DEFAULT) -> Any:
        if default is not _NO_DEFAULT:
            raise TypeError(
                f"stage {self.stage!r}: get({key!r}, {default!r}): a stage view holds every declared value with "
                "the spec's default; read it as view[key]"
            )
        return self[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: object) -> bool:
        return key in self._values


@dataclass
class StageContext:
    """Everything a stage implementation may look at.

    ``values`` holds exactly the resolved values of ``Stage.reads`` (plus
    ``media`` paths for preprocess); ``inputs`` maps upstream stage names to
    the directories of their committed artifacts; ``out_dir`` is a private
    temporary directory that the store commits atomically afterwards.
    """

    values: Mapping[str, Any]
    inputs: dict[str, Path]
    out_dir: Path
    progress: ProgressFn = field(default=lambda step, total: None)
    seed: int = 0

    def get(self, path: str) -> Any:
        return self.values[path]


class Engine:
    """Base class of every method engine.

    Subclasses set the class attributes and implement one method per stage.
    ``__init__`` must be cheap; models load lazily in :meth:`load` so that a
    worker can hold one instance per model identity and count loads.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    params_model: ClassVar[type[BaseModel]]
    stages: ClassVar[tuple[Stage, ...]]
    #: Whether edits must carry a non-empty prompt.
    requires_prompt: ClassVar[bool] = True
    #: Parameter overrides that make any spec of this method a seconds-long run (fewest steps of every
    #: stage), merged into the spec's ``params`` by the per-method smoke test (tests/test_methods.py).
    smoke_params: ClassVar[dict[str, Any]] = {}
    #: Dotted paths under ``params`` that hold a file path, or a list of them (relative to the spec). In a
    #: stage's view the value is the file's ``sha256:<digest>`` (content enters the key, never the path);
    #: the path itself is in ``runtime.files.<path>`` (``<path>.<i>`` for a list) for the stage that
    #: declares that option.
    file_params: ClassVar[tuple[str, ...]] = ()
    #: The profile the smoke test runs this method on: the smallest that holds every model it needs.
    smoke_profile: ClassVar[str] = "tiny-random"
    #: Whether the sample stage can write ``edit_mask.npy`` (what ``evaluate.mask: engine`` reads).
    #: Engines where it depends on the params say in their ``check_spec`` when a spec gives none.
    writes_edit_mask: ClassVar[bool] = False

    def __init__(self, model: Any = None, device: str = "cpu") -> None:
        self.model = model
        self.device = device
        self.loaded = False
        self.loads = 0

    # -- model lifecycle -------------------------------------------------
    def load(self) -> None:
        """Load model components once; subclasses call ``super().load()`` last."""
        self.loaded = True
        self.loads += 1

    def ensure_loaded(self) -> None:
        if not self.loaded:
            self.load()

    # -- stage dispatch --------------------------------------------------
    @classmethod
    def stage(cls, name: str) -> Stage:
        for st in cls.stages:
            if st.name == name:
                return st
        raise KeyError(f"engine {cls.name!r} has no stage {name!r}")

    def run_stage(self, name: str, ctx: StageContext) -> dict[str, Any]:
        """Run stage ``name``; returns the artifact's meta dict."""
        st = self.stage(name)
        if not isinstance(ctx.values, StageView):
            ctx.values = StageView(name, ctx.values, st.reads + st.options)
        if st.uses_model:
            self.ensure_loaded()
        fn = getattr(self, name)
        meta = fn(ctx)
        return dict(meta or {})

    # -- validation hook ---------------------------------------------------
    @classmethod
    def check_spec(cls, spec: Any) -> list[tuple[str, str]]:
        """Cross-field checks beyond the params model.

        Returns ``(field.path, message)`` pairs; empty when the spec is fine.
        """
        return []
