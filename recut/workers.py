"""Ray actors that keep models resident, and the driver-side pool.

Each actor wraps a :class:`~recut.runner.StageRunner` and so holds one engine
(with its loaded weights) per model identity for its whole life.  The pool
routes a job to an idle actor that already holds the job's model, else to any
idle actor, else waits: a batch of specs runs concurrently over the pool, and
each model loads at most once per actor.

Ray: ``RAY_ADDRESS`` joins an existing cluster (the store root must then be
shared storage); otherwise a local instance starts with usage stats off.
Token auth (Ray's default since 2.5x) stays on: a local cluster costs nothing
extra with it, and a joined cluster needs the token anyway.

Heavy libraries (torch, diffusers, Ray) are imported inside the functions that use them, so that
importing this module stays cheap.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from recut import stop
from recut.registry import engine_class
from recut.runner import Job, StageRunner
from recut.store import ArtifactRef

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


class StageWorker:
    """The actor body (wrapped with ``ray.remote`` by the pool)."""

    def __init__(self, device: str, threads: int):
        import torch

        torch.set_num_threads(max(1, threads))
        self.runner = StageRunner(device=device)
        self._progress: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()
        # Jobs and warm-up imports run one at a time (diffusers' lazy imports
        # are not thread-safe); progress queries do not wait for it.
        self._work = threading.Lock()

    def run(self, job: Job) -> ArtifactRef:
        def report(step: int, total: int) -> None:
            with self._lock:
                self._progress[job.key] = (step, total)

        try:
            with self._work:
                return self.runner.run(job, report)
        finally:
            with self._lock:
                self._progress.pop(job.key, None)

    def warm(self, methods: list[str]) -> None:
        """Import the engines' modules (torch, diffusers) ahead of the first job."""
        with self._work:
            for m in methods:
                engine_class(m)
            import diffusers  # noqa: F401 - the import is the point

    def progress(self, key: str) -> tuple[int, int] | None:
        with self._lock:
            return self._progress.get(key)

    def stats(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "loads": self.runner.loads, "calls": self.runner.calls}


ProgressSink = Callable[[str, int, int], None]


def _shutdown_local_ray(tmp: str) -> None:
    """Stop the local cluster this process started and delete its temp folder."""
    import ray

    try:
        if ray.is_initialized():
            ray.shutdown()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class WorkerPool:
    """A fixed set of :class:`StageWorker` actors with model affinity."""

    def __init__(self, size: int | None = None, threads_per_worker: int | None = None):
        import ray

        if not ray.is_initialized():
            if os.environ.get("RECUT_RAY_LOGS") != "1":
                logging.getLogger("ray").setLevel(logging.ERROR)
            address = os.environ.get("RAY_ADDRESS")
            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": os.environ.get("RECUT_RAY_LOGS") == "1",
                "configure_logging": False,
            }
            if address:
                try:
                    ray.init(address=address, **kwargs)
                except ConnectionError as exc:
                    raise ConnectionError(_join_advice(address, exc)) from exc
            else:
                # A private temp dir per local cluster: two recut processes on one
                # machine (or a test harness beside a CLI run) must never share
                # /tmp/ray/session_latest, or one's shutdown can take down the other.
                tmp = tempfile.mkdtemp(prefix="recut-ray-", dir=os.environ.get("RECUT_RAY_TMP", "/tmp"))
                ray.init(num_cpus=os.cpu_count() or 1, _temp_dir=tmp, **kwargs)
                # Registered after ray.init, so it runs before Ray's own exit hook.
                atexit.register(_shutdown_local_ray, tmp)
        self._ray = ray
        res = ray.cluster_resources()
        cpus = int(res.get("CPU", 1))
        gpus = int(res.get("GPU", 0))
        env_size = os.environ.get("RECUT_WORKERS")
        self.size = size or (int(env_size) if env_size else max(1, gpus or min(cpus, 2)))
        threads = threads_per_worker or max(1, cpus // self.size)
        opts: dict[str, Any] = {"num_cpus": threads, "max_concurrency": 4}
        device = "cpu"
        if gpus:
            opts["num_gpus"] = 1
            device = "cuda"
        remote_cls = ray.remote(StageWorker).options(**opts)
        self.device = device
        self._new_actor = lambda: remote_cls.remote(device, threads)
        self.actors = [self._new_actor() for _ in range(self.size)]
        #: Jobs retried after their actor died: ``{"stage", "key", "error"}`` each (shown in the run summary).
        self.retries: list[dict[str, str]] = []
        self._busy = [False] * self.size
        self._models: list[set[str]] = [set() for _ in range(self.size)]
        self._cv = threading.Condition()

    # -- routing -------------------------------------------------------------
    def _acquire(self, model_id: str) -> int:
        with self._cv:
            while True:
                stop.check()
                idle = [i for i in range(self.size) if not self._busy[i]]
                if idle:
                    warm = [i for i in idle if model_id in self._models[i]] if model_id else []
                    cold = [i for i in idle if not self._models[i]]
                    i = (warm or cold or idle)[0]
                    self._busy[i] = True
                    if model_id:
                        self._models[i].add(model_id)
                    return i
                self._cv.wait()

    def _release(self, i: int) -> None:
        with self._cv:
            self._busy[i] = False
            self._cv.notify_all()

    def run(self, job: Job, on_progress: ProgressSink | None = None) -> ArtifactRef:
        """Run ``job`` on a worker, forwarding per-step progress; blocks. If the actor dies during the
        job (its process killed, out of memory), a new actor takes its place and the job runs once more
        (the store never committed the dead one's partial artifact)."""
        i = self._acquire(job.model_identity)
        try:
            try:
                return self._run_on(i, job, on_progress)
            except self._ray.exceptions.RayActorError as exc:
                stop.check()  # killed by a stop request, not a crash: no retry
                if not self.actors:  # killed by shutdown() (the warm service stopping): no retry either
                    raise RuntimeError("the worker pool was shut down while the stage ran") from exc
                self.retries.append({"stage": job.stage, "key": job.key[:12], "error": type(exc).__name__})
                self.actors[i] = self._new_actor()
                self._models[i] = {job.model_identity} if job.model_identity else set()
                return self._run_on(i, job, on_progress)
        finally:
            self._release(i)

    def _run_on(self, i: int, job: Job, on_progress: ProgressSink | None) -> ArtifactRef:
        actor = self.actors[i]
        ref = actor.run.remote(job)
        last: tuple[int, int] | None = None
        while True:
            ready, _ = self._ray.wait([ref], timeout=0.2)
            stop.check()
            if ready:
                return self._ray.get(ref)
            if on_progress is not None:
                prog = self._ray.get(actor.progress.remote(job.key))
                if prog and prog != last:
                    on_progress(job.key, *prog)
                    last = prog

    def warm(self, methods: list[str]) -> None:
        """Ask every actor to import the engines now; does not wait."""
        for a in self.actors:
            a.warm.remote(methods)

    def stats(self) -> list[dict[str, Any]]:
        return self._ray.get([a.stats.remote() for a in self.actors])

    def cancel(self) -> None:
        """Kill the actors, and with them the jobs they run, and wake the runs waiting for a worker: on
        a stop request (:mod:`recut.stop`), every :meth:`run` then raises :class:`recut.stop.Cancelled`."""
        self.shutdown()
        with self._cv:
            self._cv.notify_all()

    def shutdown(self) -> None:
        for a in self.actors:
            try:
                self._ray.kill(a)
            except Exception:  # noqa: BLE001
                pass
        self.actors = []


def _join_advice(address: str, exc: BaseException) -> str:
    """What to set when joining a Ray cluster fails (Ray 2.5x clusters require a token by default)."""
    have = "RAY_AUTH_MODE=" + os.environ.get("RAY_AUTH_MODE", "(unset)")
    return (
        f"cannot join the Ray cluster at RAY_ADDRESS={address} ({exc}). A cluster started with `ray start` "
        f"uses token auth: set RAY_AUTH_MODE=token and the cluster's token (RAY_AUTH_TOKEN, or the token "
        f"file `ray start` printed) in this environment ({have}); or unset RAY_ADDRESS to run on a local Ray."
    )


_POOL: WorkerPool | None = None
_POOL_LOCK = threading.Lock()


def get_pool() -> WorkerPool:
    """The process-wide pool (created on first use).

    Ray is started from a dedicated thread that lives as long as the pool:
    Ray's local processes die with the *thread* that started them (Linux
    parent-death signals are per thread), and Prefect runs tasks on pool
    threads that come and go. Measured: starting Ray from a task thread
    killed the cluster when the flow's thread pool shut down.
    """
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            t0 = time.perf_counter()
            box: dict[str, Any] = {}
            ready = threading.Event()

            def owner() -> None:
                try:
                    box["pool"] = WorkerPool()
                except BaseException as exc:  # noqa: BLE001
                    box["error"] = exc
                ready.set()
                _STOP.wait()

            threading.Thread(target=owner, name="recut-ray-owner", daemon=True).start()
            ready.wait()
            if "error" in box:
                raise box["error"]
            _POOL = box["pool"]
            stop.on_request(_POOL.cancel)
            _POOL.startup_seconds = time.perf_counter() - t0  # type: ignore[attr-defined]
        return _POOL


_STOP = threading.Event()


def shutdown_pool() -> None:
    global _POOL
    with _POOL_LOCK:
        if _POOL is not None:
            _POOL.shutdown()
            _POOL = None
