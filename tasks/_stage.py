"""The one adapter every stage task uses: cache check, then a worker call.

Hit: the committed ArtifactRef comes back from the store; no worker is
touched.  Miss (or forced): the job goes to a Ray actor that holds the model,
which writes the artifact atomically.  Only refs cross task boundaries.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NONE

from recut import progress
from recut.plan import Node
from recut.runner import StageResult
from recut.store import Store


@dataclass(frozen=True)
class RunContext:
    store_root: str


class StageFailed(RuntimeError):
    """A stage raised; the message names the spec(s), the output(s) and the stage."""


class UpstreamFailed(RuntimeError):
    """A stage did not run because a stage it reads failed."""


def where(node: Node) -> str:
    """``spec.yaml [edit, ...]``: the specs and outputs a node serves."""
    by_spec: dict[str, list[str]] = {}
    for inst in node.instances:
        by_spec.setdefault(Path(inst.spec).name, []).append(inst.label)
    return "; ".join(f"{spec} [{', '.join(labels)}]" for spec, labels in by_spec.items())


def run_stage(node: Node, upstream: dict[str, Any], run: RunContext) -> StageResult:
    """Serve ``node`` from the store or compute it. ``upstream`` values are :class:`StageResult`, or the
    exception of an upstream stage that failed (the flows pass them with ``allow_failure``), in which
    case this stage does not run and raises :class:`UpstreamFailed`."""
    failed = [name for name, res in upstream.items() if isinstance(res, BaseException)]
    if failed:
        raise UpstreamFailed(f"{where(node)}: stage {node.stage.name!r} not run: stage {failed[0]!r} failed")
    sink = progress.sink()
    store = Store(run.store_root)
    t0 = time.perf_counter()
    sink.start(node.key, node.label, node.kind)
    hit = None if node.forced else store.get(node.kind, node.key)
    if hit is not None:
        status, ref = "cached", hit
    else:
        from recut.workers import get_pool  # local: `recut plan` imports this module and needs no workers

        job = node.job({name: res.ref for name, res in upstream.items()}, run.store_root)
        try:
            ref = get_pool().run(job, on_progress=sink.step)
        except Exception as exc:
            sink.done(node.key, "FAILED", time.perf_counter() - t0)
            raise StageFailed(f"{where(node)}: stage {node.stage.name!r} failed: {type(exc).__name__}: {exc}") from exc
        status = "computed"
    wall = time.perf_counter() - t0
    seconds = ref.seconds if status == "computed" else 0.0
    sink.done(node.key, status, seconds)
    return StageResult(
        node.key,
        node.stage.name,
        node.kind,
        node.label,
        status,
        seconds,
        ref,
        [i.label for i in node.instances],
        wall,
    )


def stage_task(kind: str, doc: str) -> Any:
    """The Prefect task for one stage kind (cache policy off: the store caches)."""

    def body(node: Node, upstream: dict[str, Any], run: RunContext) -> StageResult:
        return run_stage(node, upstream, run)

    body.__name__ = body.__qualname__ = kind
    body.__doc__ = doc
    return task(name=kind, cache_policy=NONE, persist_result=False)(body)
