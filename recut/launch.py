"""How `recut run` executes a plan that has work to do: the three paths, chosen per run.

1. **Flows on Ray** (:func:`run_flows`): the `recut-edit` / `recut-batch` Prefect flow, stages on
   the Ray worker pool. The default, and the only path that records the run on a Prefect server.
2. **In process** (:func:`run_in_process`): no Prefect, no Ray. The stages run in graph order in
   this process, with the same cache checks, the same store commits, the same outputs, summaries
   and DVC record, and the same isolation (a failed stage fails only what reads it). Chosen
   automatically for a *small* run in ephemeral mode (:func:`small`), where Prefect's temporary
   server would cost seconds and record nothing anyone sees.
3. **The warm service** (:mod:`recut.service`): a long-lived process (`recut up`) that runs path 1
   with Prefect imported, Ray started and the actors' models loaded.

:func:`choose` picks between 1 and 2 (`recut run --executor auto|ray|local`).
"""

from __future__ import annotations

import os
import time
from typing import Any

#: A run is small when it has at most this many stages to compute ...
SMALL_MAX_STAGES = 6
#: ... and none of these kinds (minutes of compute each, where Ray's concurrency and a worker that
#: keeps the model for the next run pay off).
HEAVY_KINDS = frozenset({"finetune"})
EXECUTORS = ("auto", "ray", "local")


def small(todo: list[Any]) -> bool:
    """Few and light misses: at most :data:`SMALL_MAX_STAGES` and no :data:`HEAVY_KINDS`."""
    return len(todo) <= SMALL_MAX_STAGES and not any(n.kind in HEAVY_KINDS for n in todo)


def choose(executor: str, mode: str, todo: list[Any]) -> str:
    """``"local"`` or ``"ray"``. ``auto``: local when Prefect would be ephemeral (no server to record
    on) and the run is :func:`small`; otherwise Ray under the flows."""
    if executor not in EXECUTORS:
        raise ValueError(f"--executor {executor!r}: expected one of {', '.join(EXECUTORS)}")
    if executor != "auto":
        return executor
    from recut.prefect_env import records

    return "local" if not records(mode) and small(todo) else "ray"


def run_flows(paths: list[str], force: list[str], store_root: str, dvc: bool, methods: list[str]) -> dict[str, Any]:
    """The specs through the `recut-edit` (one spec) or `recut-batch` flow on the worker pool.
    Call :func:`recut.prefect_env.configure` first. ``methods``: engines to warm while Prefect boots."""
    from recut import prefect_env

    boot = prefect_env.boot_ephemeral()
    if methods:
        # Ray and the actors' imports start while Prefect's server boots.
        from recut.workers import get_pool

        get_pool().warm(methods)
    if boot is not None:
        boot.join()
    from flows.batch import batch
    from flows.edit import edit

    if len(paths) == 1:
        summary = edit(paths[0], force, store_root, dvc)
    else:
        summary = batch(paths, force, store_root, dvc)
    from recut import workers

    if workers._POOL is not None:
        summary["workers"] = workers._POOL.stats()
        summary["retries"] = list(workers._POOL.retries)
    return summary


def set_threads() -> int:
    """Torch threads for the in-process run: what one worker of the default two-worker pool gets
    (half the cores, at least one; ``RECUT_THREADS`` overrides). All the cores would be faster on an
    idle machine, but measured on 2 cores beside one other busy process, a 2-thread sample took
    34-50 s where a 1-thread one took 4.4 s (the threads wait on each other)."""
    import torch  # local: torch takes seconds to import

    n = int(os.environ.get("RECUT_THREADS") or max(1, (os.cpu_count() or 1) // 2))
    torch.set_num_threads(n)
    return n


def walk(
    plan: Any, store_root: str, compute: Any, concurrency: int = 1
) -> tuple[dict[str, Any], dict[str, BaseException]]:
    """Serve every node of ``plan`` (:func:`recut.runner.serve_node`), no Prefect: a node starts once all
    its upstream nodes have ended, with at most ``concurrency`` nodes at a time (threads; ``compute``
    blocks them until a worker is free). A failure fails only what reads it. Returns (results, errors)
    by key, as the flows collect them."""
    from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

    from recut.runner import serve_node

    nodes = plan.ordered()
    results: dict[str, Any] = {}
    errors: dict[str, BaseException] = {}
    pending = list(nodes)
    running: dict[Future[Any], str] = {}

    def ended(key: str) -> bool:
        return key in results or key in errors

    with ThreadPoolExecutor(max(1, concurrency), thread_name_prefix="recut-stage") as pool:
        while pending or running:
            ready = [n for n in pending if all(ended(k) for k in n.upstream.values())]
            for node in ready[: max(0, concurrency - len(running))]:
                pending.remove(node)
                upstream = {name: errors.get(key) or results[key] for name, key in node.upstream.items()}
                running[pool.submit(serve_node, node, upstream, store_root, compute)] = node.key
            if not running:  # nothing can start: an upstream key outside the plan
                raise RuntimeError(f"plan: {len(pending)} stage(s) wait on stages the plan does not hold")
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                key = running.pop(fut)
                exc = fut.exception()
                if exc is None:
                    results[key] = fut.result()
                else:
                    errors[key] = exc
    return results, errors


def run_in_process(plan: Any, store: Any, dvc: bool) -> dict[str, Any]:
    """Every node of ``plan`` in graph order in this process (:class:`recut.runner.StageRunner`), one at a
    time (torch already takes the cores): hits come from the store, misses are computed and committed, a
    failure fails only what reads it. Then the outputs, summaries and DVC record, as the flows write them."""
    from recut.outputs import finish_run
    from recut.runner import StageRunner

    t0 = time.perf_counter()
    set_threads()
    runner = StageRunner()
    results, errors = walk(plan, str(store.root), runner.run_reporting)
    summary = finish_run(plan, results, errors, store, dvc, t0)
    summary["workers"] = [{"pid": "in-process", "loads": runner.loads, "calls": runner.calls}]
    summary["prefect"] = "not started (in-process run; ephemeral mode records no run)"
    return summary


def run_on_pool(paths: list[str], force: list[str], store_root: str, dvc: bool) -> dict[str, Any]:
    """The specs on the worker pool without Prefect (the warm service when its Prefect is ephemeral, so
    no dashboard shows a run): validate, plan, then :func:`walk` with one thread per worker, so stages
    run concurrently as they do under the flows. Outputs, summaries and DVC as the flows write them."""
    from recut.outputs import finish_run
    from recut.plan import build_plan
    from recut.spec import load_spec
    from recut.store import Store
    from recut.workers import get_pool

    t0 = time.perf_counter()
    store = Store(store_root)
    plan = build_plan([load_spec(p) for p in paths], store, set(force))
    pool = get_pool()
    results, errors = walk(plan, str(store.root), pool.run, concurrency=pool.size)
    summary = finish_run(plan, results, errors, store, dvc, t0)
    summary["workers"] = pool.stats()
    summary["retries"] = list(pool.retries)
    return summary
