"""Where does orchestration time go? Measures the pieces separately, in one process.

    python benchmarks/overhead_breakdown.py SPEC [--parts ray,prefect] [--json]

ray:     engine imports + first model load in THIS process (what the plain
         script pays), then ``ray.init`` exactly as :class:`recut.workers.WorkerPool`
         does it, actor start (until an actor answers), model load inside an actor,
         one sample job in an actor vs. the same job in-process, ``ray.shutdown``.
prefect: a flow that submits one no-op task per plan node (same task options as
         recut's tasks), called twice: the first call includes the client /
         ephemeral-server start, the second is the steady per-run cost.  Which
         Prefect it talks to follows the environment (recut.prefect_env).

Prints one JSON object (``--json``) or a readable list.
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
from typing import Any  # noqa: E402


def _plan(spec_path: Path, store_root: str) -> Any:
    from recut.plan import build_plan
    from recut.spec import load_spec
    from recut.store import Store

    return build_plan([load_spec(spec_path)], Store(store_root), set())


def _job(node: Any, refs: dict[str, Any], store_root: str, force: bool = False) -> Any:
    import dataclasses

    job = node.job({name: refs[key] for name, key in node.upstream.items()}, store_root)
    return dataclasses.replace(job, force=force)


class _Probe:
    """An actor that times what a StageWorker does, piece by piece."""

    def __init__(self, threads: int):
        t0 = time.perf_counter()
        import torch

        torch.set_num_threads(max(1, threads))
        from recut.runner import StageRunner

        self.runner = StageRunner(device="cpu")
        self.init_seconds = time.perf_counter() - t0

    def ready(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "init_seconds": self.init_seconds}

    def load(self, method: str, model: Any, variant: str) -> float:
        t0 = time.perf_counter()
        eng = self.runner.engine(method, model)
        eng.ensure_loaded()
        eng._get(variant)  # sdedit loads lazily per variant
        return time.perf_counter() - t0

    def run(self, job: Any) -> float:
        t0 = time.perf_counter()
        self.runner.run(job)
        return time.perf_counter() - t0


def ray_part(spec_path: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    store_root = tempfile.mkdtemp(prefix="recut-breakdown-store-")
    try:
        plan = _plan(spec_path, store_root)
        nodes = plan.ordered()
        pre = next(n for n in nodes if n.kind == "preprocess")
        samples = [n for n in nodes if n.kind == "sample"]
        image = next(n for n in samples if n.reads.get("params.variant", "image") == "image")
        video = next((n for n in samples if n.reads.get("params.variant") == "video"), None)

        # --- in this process (what plain_run.py pays) ---------------------------
        t0 = time.perf_counter()
        import diffusers  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401

        out["inproc_import_torch_diffusers_s"] = time.perf_counter() - t0
        from recut.runner import StageRunner

        runner = StageRunner(device="cpu")
        refs: dict[str, Any] = {}
        refs[pre.key] = runner.run(_job(pre, refs, store_root))
        eng = runner.engine(image.method, image.model)
        eng.ensure_loaded()
        t0 = time.perf_counter()
        eng._get("image")
        out["inproc_load_image_s"] = time.perf_counter() - t0
        if video is not None:
            t0 = time.perf_counter()
            eng._get("video")
            out["inproc_load_video_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        runner.run(_job(image, refs, store_root))
        out["inproc_sample_image_s"] = time.perf_counter() - t0

        # --- Ray, as WorkerPool starts it ----------------------------------------
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        t0 = time.perf_counter()
        import ray

        out["import_ray_s"] = time.perf_counter() - t0
        ray_tmp = tempfile.mkdtemp(prefix="recut-ray-", dir=os.environ.get("RECUT_RAY_TMP", "/tmp"))
        t0 = time.perf_counter()
        ray.init(
            num_cpus=os.cpu_count() or 1,
            _temp_dir=ray_tmp,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
        out["ray_init_s"] = time.perf_counter() - t0
        try:
            cpus = int(ray.cluster_resources().get("CPU", 1))
            size = max(1, min(cpus, 2))
            threads = max(1, cpus // size)
            cls = ray.remote(_Probe).options(num_cpus=threads, max_concurrency=4)
            t0 = time.perf_counter()
            actors = [cls.remote(threads) for _ in range(size)]
            ready = ray.get([a.ready.remote() for a in actors])
            out["actors"] = size
            out["actor_start_s"] = time.perf_counter() - t0
            out["actor_init_in_actor_s"] = max(r["init_seconds"] for r in ready)
            t0 = time.perf_counter()
            loads = ray.get([a.load.remote(image.method, image.model, "image") for a in actors])
            out["actor_first_load_image_wall_s"] = time.perf_counter() - t0
            out["actor_first_load_image_in_actor_s"] = max(loads)
            t0 = time.perf_counter()
            in_actor = ray.get(actors[0].run.remote(_job(image, refs, store_root, force=True)))
            out["actor_sample_image_wall_s"] = time.perf_counter() - t0
            out["actor_sample_image_in_actor_s"] = in_actor
            t0 = time.perf_counter()
            ray.get(actors[0].ready.remote())
            out["actor_call_roundtrip_s"] = time.perf_counter() - t0
        finally:
            t0 = time.perf_counter()
            ray.shutdown()
            out["ray_shutdown_s"] = time.perf_counter() - t0
            shutil.rmtree(ray_tmp, ignore_errors=True)
    finally:
        shutil.rmtree(store_root, ignore_errors=True)
    return out


def prefect_part(spec_path: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    from recut import prefect_env

    out["mode"] = prefect_env.configure()
    store_root = tempfile.mkdtemp(prefix="recut-breakdown-store-")
    try:
        plan = _plan(spec_path, store_root)
        n_nodes = len(plan.nodes)
        t0 = time.perf_counter()
        from prefect import flow, task
        from prefect.cache_policies import NONE

        out["import_prefect_s"] = time.perf_counter() - t0

        @task(name="noop", cache_policy=NONE, persist_result=False)
        def noop(i: int, upstream: list[Any]) -> int:
            return i

        @flow(name="recut-breakdown", persist_result=False, log_prints=False)
        def f(n: int) -> float:
            t = time.perf_counter()
            futs: list[Any] = []
            for i in range(n):
                futs.append(noop.submit(i, futs[-1:]))
            [x.result() for x in futs]
            return time.perf_counter() - t

        for attempt in ("first", "second"):
            t0 = time.perf_counter()
            inner = f(n_nodes)
            out[f"flow_{attempt}_call_s"] = time.perf_counter() - t0
            out[f"flow_{attempt}_in_flow_s"] = inner
        out["tasks_per_flow"] = n_nodes
    finally:
        shutil.rmtree(store_root, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec", type=Path)
    ap.add_argument("--parts", default="ray,prefect")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    res: dict[str, Any] = {}
    if "prefect" in parts:
        res["prefect"] = prefect_part(args.spec)
    if "ray" in parts:
        res["ray"] = ray_part(args.spec)
    res = json.loads(json.dumps(res, default=str))
    for sec in res.values():
        for k, v in list(sec.items()):
            if isinstance(v, float):
                sec[k] = round(v, 3)
    if args.json:
        print(json.dumps(res, indent=1))
    else:
        for name, sec in res.items():
            for k, v in sec.items():
                print(f"{name:8s} {k:40s} {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
