"""Faults in the workers (issue 26, section 4): an actor killed in the middle of a stage is replaced and
the stage retried once; joining a Ray cluster without its token says what to set."""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

import pytest

from recut import workers
from recut.plan import build_plan
from recut.spec import load_spec
from recut.store import Store
from tests.conftest import BASE_SPEC, Project


def test_joining_a_cluster_without_its_token_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    def refuse(*a: Any, **k: Any) -> None:
        raise ConnectionError("Could not connect to the cluster")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", refuse)
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.5:6379")
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    with pytest.raises(ConnectionError) as info:
        workers.WorkerPool()
    msg = str(info.value)
    assert "RAY_ADDRESS=10.0.0.5:6379" in msg and "RAY_AUTH_MODE=token" in msg and "unset RAY_ADDRESS" in msg


SLOW = BASE_SPEC.replace("steps: 4", "steps: 200").replace("strength: 0.5", "strength: 1.0")


def _sample_job(project: Project) -> tuple[Any, Any, Store]:
    """The pool, and the job of a slow sample whose preprocess the pool has computed."""
    spec = project.spec(SLOW, "slow.yaml")
    store = Store(project.store)
    plan = build_plan([load_spec(spec)], store)
    pool = workers.get_pool()
    nodes = plan.ordered()
    pre = nodes[0]
    refs = {pre.key: pool.run(pre.job({}, str(store.root)))}
    sample = next(n for n in nodes if n.stage.name == "sample")
    return pool, sample.job({n: refs[k] for n, k in sample.upstream.items()}, str(store.root)), store


def _run_in_thread(pool: Any, job: Any) -> tuple[threading.Thread, dict[str, Any], list[tuple[int, int]]]:
    """Start ``pool.run(job)`` in a thread; return once the stage reports progress on an actor."""
    seen: list[tuple[int, int]] = []
    box: dict[str, Any] = {}

    def go() -> None:
        try:
            box["ref"] = pool.run(job, on_progress=lambda key, i, n: seen.append((i, n)))
        except BaseException as exc:  # noqa: BLE001
            box["error"] = exc

    th = threading.Thread(target=go)
    th.start()
    deadline = time.time() + 120
    while not seen and time.time() < deadline:  # the stage is running on an actor
        time.sleep(0.05)
    assert seen, "the sample never reported progress"
    return th, box, seen


@pytest.mark.slow
def test_an_actor_killed_mid_stage_is_replaced_and_the_stage_retried(project: Project) -> None:
    pool, job, store = _sample_job(project)
    before = len(pool.retries)
    th, box, _ = _run_in_thread(pool, job)
    i = next(k for k, busy in enumerate(pool._busy) if busy)
    pid = pool._ray.get(pool.actors[i].stats.remote())["pid"]
    os.kill(pid, signal.SIGKILL)
    th.join(timeout=300)
    assert "error" not in box, box.get("error")
    assert box["ref"].file("frames.npy").exists()
    assert store.get("sample", job.key) is not None
    (retry,) = pool.retries[before:]
    assert retry["stage"] == "sample" and retry["key"] == job.key[:12]
    assert pool._ray.get(pool.actors[i].stats.remote())["pid"] != pid  # a new actor holds the slot


@pytest.mark.slow
def test_a_pool_shut_down_mid_stage_ends_the_stage_without_a_retry(project: Project) -> None:
    """The warm service stopping (`recut down`) shuts its pool down under a running stage: the stage
    ends at once with an error that says so (its retry indexed the emptied actor list), and nothing is
    committed."""
    pool, job, store = _sample_job(project)
    th, box, _ = _run_in_thread(pool, job)
    workers.shutdown_pool()
    th.join(timeout=60)
    assert not th.is_alive()
    assert isinstance(box.get("error"), RuntimeError) and "shut down" in str(box["error"]), box
    assert store.get("sample", job.key) is None
