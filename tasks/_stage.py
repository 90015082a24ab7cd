"""The one adapter every stage task uses: cache check, then a worker call.

Hit: the committed ArtifactRef comes back from the store; no worker is
touched.  Miss (or forced): the job goes to a Ray actor that holds the model,
which writes the artifact atomically.  Only refs cross task boundaries.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from prefect import task
from prefect.cache_policies import NONE

from recut import progress
from recut.plan import Node
from recut.store import ArtifactRef, Store


@dataclass(frozen=True)
class RunContext:
    store_root: str


@dataclass
class StageResult:
    key: str
    stage: str
    kind: str
    label: str
    status: str  # "computed" | "cached"
    #: Compute time of the stage itself (from the artifact); 0 for a cache hit.
    seconds: float
    ref: ArtifactRef
    instances: list[str] = field(default_factory=list)
    #: Time the task took end to end, including waiting for a free worker.
    wall_seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "kind": self.kind,
            "label": self.label,
            "key": self.key,
            "status": self.status,
            "seconds": round(self.seconds, 4),
            "wall_seconds": round(self.wall_seconds, 4),
            "artifacts": {name: str(self.ref.file(name)) for name in sorted(self.ref.files)},
            "outputs": self.instances,
        }


def run_stage(node: Node, upstream: dict[str, StageResult], run: RunContext) -> StageResult:
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
        ref = get_pool().run(job, on_progress=sink.step)
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

    def body(node: Node, upstream: dict[str, StageResult], run: RunContext) -> StageResult:
        return run_stage(node, upstream, run)

    body.__name__ = body.__qualname__ = kind
    body.__doc__ = doc
    return task(name=kind, cache_policy=NONE, persist_result=False)(body)
