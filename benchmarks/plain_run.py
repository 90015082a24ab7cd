"""The honest baseline: run a spec's plan in ONE process, no Prefect, no Ray, no DVC.

Same engine code and same store artifacts as ``recut run``: the plan comes from
:func:`recut.plan.build_plan`, every node goes in plan order through one
:class:`recut.runner.StageRunner` (so each model loads once in this process),
and the outputs are copied into place with the same ``materialize`` the flow
uses.  Only the orchestration is missing.

    python benchmarks/plain_run.py SPEC [--store DIR] [--json] [--workers N]

Without ``--store`` (or $RECUT_STORE) a fresh temporary store is used.
``--workers N`` (N > 1) runs the nodes on N plain worker processes
(``concurrent.futures``, torch threads = cores // N each, one StageRunner per
process), a node as soon as its upstream nodes are done: the same parallelism
as recut's Ray pool, still without Prefect, Ray or DVC.
"""

from __future__ import annotations

import time

T_START = time.perf_counter()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

_RUNNER = None


def _init_worker(threads: int) -> None:
    global _RUNNER
    import torch

    torch.set_num_threads(threads)
    from recut.runner import StageRunner

    _RUNNER = StageRunner(device="cpu")


def _work(job):  # type: ignore[no-untyped-def]
    assert _RUNNER is not None
    t0 = time.perf_counter()
    ref = _RUNNER.run(job)
    return ref, time.perf_counter() - t0, os.getpid(), dict(_RUNNER.loads)


def _make_job(node, refs, store_root):  # type: ignore[no-untyped-def]
    return node.job({name: refs[key] for name, key in node.upstream.items()}, str(store_root))


def _run_serial(plan, store_root):  # type: ignore[no-untyped-def]
    """Every node in plan order, in this process, one StageRunner (models load once)."""
    from recut.runner import StageRunner

    runner = StageRunner(device="cpu")
    refs, stages = {}, []
    for node in plan.ordered():
        ts = time.perf_counter()
        refs[node.key] = runner.run(_make_job(node, refs, store_root))
        stages.append(
            {
                "label": node.label,
                "kind": node.kind,
                "key": node.key,
                "status": "cached" if node.cached else "computed",
                "seconds": round(time.perf_counter() - ts, 4),
            }
        )
    return refs, stages, runner.loads


def _run_parallel(plan, store_root, workers):  # type: ignore[no-untyped-def]
    """Dependency-driven: submit a node once its upstream refs exist."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    threads = max(1, (os.cpu_count() or 1) // workers)
    refs, stages, loads = {}, {}, {}
    pending = {n.key: n for n in plan.ordered()}
    running = {}
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(threads,)) as ex:
        while pending or running:
            for key, n in list(pending.items()):
                if all(u in refs for u in n.upstream.values()):
                    running[ex.submit(_work, _make_job(n, refs, store_root))] = n
                    del pending[key]
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for f in done:
                n = running.pop(f)
                ref, secs, pid, ld = f.result()
                refs[n.key] = ref
                loads[pid] = ld
                stages[n.key] = {
                    "label": n.label,
                    "kind": n.kind,
                    "key": n.key,
                    "status": "cached" if n.cached else "computed",
                    "seconds": round(secs, 4),
                    "pid": pid,
                }
    return refs, [stages[n.key] for n in plan.ordered()], {str(k): v for k, v in loads.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec", type=Path)
    ap.add_argument("--store", type=Path, default=None)
    ap.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    ap.add_argument("--workers", type=int, default=1, help="worker processes (default 1: this process)")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    from recut.outputs import materialize, write_summary
    from recut.plan import build_plan
    from recut.runner import Job, StageRunner  # noqa: F401 - the baseline's whole API
    from recut.spec import load_spec
    from recut.store import Store

    t_import = time.perf_counter() - t0

    tmp_store = None
    store_root = args.store or (Path(os.environ["RECUT_STORE"]) if os.environ.get("RECUT_STORE") else None)
    if store_root is None:
        tmp_store = tempfile.mkdtemp(prefix="recut-plain-store-")
        store_root = Path(tmp_store)
    store_root = store_root.resolve()
    try:
        t1 = time.perf_counter()
        spec = load_spec(args.spec)
        store = Store(store_root)
        plan = build_plan([spec], store, set())
        t_plan = time.perf_counter() - t1

        t2 = time.perf_counter()
        if args.workers > 1:
            refs, stages, loads = _run_parallel(plan, store_root, args.workers)
        else:
            refs, stages, loads = _run_serial(plan, store_root)
        t_compute = time.perf_counter() - t2

        t3 = time.perf_counter()
        kinds = {n.stage.name: n.kind for n in plan.ordered()}
        for sp in plan.specs:
            summary = materialize(sp, refs, kinds)
            write_summary(sp.output_dir, summary)
        t_outputs = time.perf_counter() - t3

        result = {
            "store": str(store_root),
            "import_seconds": round(t_import, 3),
            "plan_seconds": round(t_plan, 3),
            "compute_seconds": round(t_compute, 3),
            "outputs_seconds": round(t_outputs, 3),
            "wall_seconds": round(time.perf_counter() - T_START, 3),
            "computed": sum(1 for s in stages if s["status"] == "computed"),
            "cached": sum(1 for s in stages if s["status"] == "cached"),
            "workers": args.workers,
            "loads": loads,
            "stages": stages,
        }
        if args.json:
            print(json.dumps(result, indent=1))
        else:
            for s in stages:
                print(f"{s['status']:9s} {s['seconds']:8.2f}s  {s['label']}")
            print(
                f"compute {t_compute:.2f}s, imports {t_import:.2f}s, plan {t_plan:.2f}s, "
                f"outputs {t_outputs:.2f}s, loads {loads}"
            )
        return 0
    finally:
        if tmp_store is not None:
            shutil.rmtree(tmp_store, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
