"""The one adapter every stage task uses: cache check, then a worker call.

Hit: the committed ArtifactRef comes back from the store; no worker is
touched, and the task run ends in Prefect's "Cached" state (a Completed state
named Cached) whose message holds the cache key.  Miss (or forced): the job goes
to a Ray actor that holds the model, which writes the artifact atomically.  Only
refs cross task boundaries.  The progress sink also logs each stage's lines
(recut.progress), which are the run's logs on the dashboard.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prefect import task
from prefect.cache_policies import NONE

from recut import stop
from recut.plan import Node
from recut.runner import StageFailed, StageResult, UpstreamFailed, serve_node


@dataclass(frozen=True)
class RunContext:
    store_root: str


def run_stage(node: Node, upstream: dict[str, Any], run: RunContext) -> StageResult:
    """Serve ``node`` from the store, or compute it on a worker of the pool (:func:`recut.runner.serve_node`:
    a failed upstream, passed with ``allow_failure``, means this stage does not run)."""

    def compute(job: Any, on_progress: Any) -> Any:
        from recut.workers import get_pool  # local: `recut plan` imports this module and needs no workers

        return get_pool().run(job, on_progress=on_progress)

    return serve_node(node, upstream, run.store_root, compute)


def stage_task(kind: str, doc: str) -> Any:
    """The Prefect task for one stage kind (cache policy off: the store caches). A store hit ends in
    Prefect's Cached state with the key in its message; the result is the :class:`StageResult` either way.
    A stage stopped with the run (:mod:`recut.stop`) ends Cancelled, not Failed."""

    def body(node: Node, upstream: dict[str, Any], run: RunContext) -> Any:
        try:
            res = run_stage(node, upstream, run)
        except (StageFailed, UpstreamFailed):
            if stop.requested():  # the run is stopping (SIGTERM, Ctrl-C): not a failure of the stage
                from prefect.states import Cancelled

                return Cancelled(message=f"{node.label}: cancelled, the run was stopped")
            raise
        if res.status == "cached":
            from prefect.states import Completed

            return Completed(data=res, name="Cached", message=f"cache hit {node.key}")
        return res

    body.__name__ = body.__qualname__ = kind
    body.__doc__ = doc
    return task(name=kind, cache_policy=NONE, persist_result=False)(body)
