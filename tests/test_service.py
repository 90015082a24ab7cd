"""Iteration latency (issue 29): the warm service's lifecycle (up, attach, status, down, a crash falling
back to the cold path), a warm run loading no model its worker already holds, and the in-process path
for small runs (no Prefect, no Ray; same outputs, caching and isolation)."""

from __future__ import annotations

import json
import os
import signal
import time
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from recut import launch, service
from recut.cli import app
from tests.conftest import BASE_SPEC, Project


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def _summary(res: Any) -> dict[str, Any]:
    assert res.exit_code in (0, 1), res.output
    return json.loads(res.stdout)


# --------------------------------------------------------------------------- choosing the path


def _nodes(*kinds: str) -> list[Any]:
    return [SimpleNamespace(kind=k) for k in kinds]


def test_auto_runs_small_jobs_in_process_only_where_no_server_records_them() -> None:
    small = _nodes("sample", "evaluate")
    assert launch.choose("auto", "ephemeral (no Prefect server running)", small) == "local"
    assert launch.choose("auto", "server http://127.0.0.1:4200/api", small) == "ray"  # the dashboard records it
    assert launch.choose("auto", "ephemeral", _nodes("finetune", "sample")) == "ray"  # heavy
    assert launch.choose("auto", "ephemeral", _nodes(*["sample"] * (launch.SMALL_MAX_STAGES + 1))) == "ray"
    assert launch.choose("local", "server x", _nodes("finetune")) == "local"
    assert launch.choose("ray", "ephemeral", small) == "ray"
    with pytest.raises(ValueError, match="--executor 'gpu'"):
        launch.choose("gpu", "ephemeral", small)


def test_a_small_run_goes_in_process_with_the_same_outputs_and_cache(
    project: Project, ephemeral: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECUT_STORE", str(project.store))
    spec = project.spec(BASE_SPEC, "edit.yaml")
    first = _summary(_invoke("run", str(spec), "--json", "--no-dvc"))
    assert ephemeral == []  # neither Prefect nor Ray
    assert first["computed"] == 5 and first["prefect"].startswith("not started (in-process")
    assert first["workers"][0]["pid"] == "in-process"
    out = project.root / "outputs" / "edit"
    assert (out / "a.mp4").exists() and (out / "b.mp4").exists()
    assert set(json.loads((out / "metrics.json").read_text())) == {"a", "b"}
    # a changed prompt recomputes its own sample and evaluation only
    spec.write_text(spec.read_text().replace("a blue square", "a green square"))
    again = _summary(_invoke("run", str(spec), "--json", "--no-dvc"))
    assert {(s["stage"], tuple(s["outputs"])) for s in again["stages"] if s["status"] == "computed"} == {
        ("sample", ("b",)),
        ("evaluate", ("b",)),
    }


def test_an_in_process_run_isolates_a_failing_edit(
    project: Project, ephemeral: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from recut.runner import StageRunner

    monkeypatch.setenv("RECUT_STORE", str(project.store))
    real = StageRunner.run

    def faulty(self: StageRunner, job: Any, progress: Any = None) -> Any:
        if job.stage == "sample" and job.reads.get("edit.prompt") == "a blue square":
            raise RuntimeError("injected fault: CUDA out of memory")
        return real(self, job, progress)

    monkeypatch.setattr(StageRunner, "run", faulty)
    spec = project.spec(BASE_SPEC, "edit.yaml")
    res = _invoke("run", str(spec), "--json", "--no-dvc", "--executor", "local")
    assert res.exit_code == 1
    (f,) = _summary(res)["failed"]
    assert (
        (f["output"], f["stage"]) == ("b", "sample")
        and "injected fault" in f["error"]
        and "edit.yaml [b]" in f["error"]
    )
    assert (project.root / "outputs" / "edit" / "a.mp4").exists()
    assert not (project.root / "outputs" / "edit" / "b.mp4").exists()


def test_executor_ray_takes_the_flows_and_a_bad_executor_is_refused(
    project: Project, ephemeral: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECUT_STORE", str(project.store))
    spec = project.spec(BASE_SPEC, "edit.yaml")
    res = _invoke("run", str(spec), "--json", "--no-dvc", "--executor", "ray")
    assert "prefect" in ephemeral and "ray" in ephemeral
    res = _invoke("run", str(spec), "--no-dvc", "--executor", "gpu")
    assert res.exit_code == 2 and "--executor 'gpu'" in res.stderr


def test_the_pool_walk_runs_independent_stages_at_once(project: Project, tmp_path: Any) -> None:
    """launch.walk (the warm service's path without Prefect) starts the two edits' samples together when
    it may run two stages at a time; one at a time, they can never meet."""
    import threading

    from recut.plan import build_plan
    from recut.runner import StageFailed, StageRunner
    from recut.spec import load_spec
    from recut.store import Store

    spec = load_spec(project.spec(BASE_SPEC, "edit.yaml"))
    runner, lock = StageRunner(), threading.Lock()

    def walk(store: Any, concurrency: int, timeout: float) -> tuple[dict[str, Any], dict[str, BaseException]]:
        barrier = threading.Barrier(2, timeout=timeout)

        def compute(job: Any, on_progress: Any) -> Any:
            if job.stage == "sample":
                barrier.wait()  # both samples must be in flight at once
            with lock:
                return runner.run_reporting(job, on_progress)

        plan = build_plan([spec], Store(store), set())
        return launch.walk(plan, str(store), compute, concurrency=concurrency)

    results, errors = walk(project.store, 2, 60.0)
    assert not errors and sorted(r.status for r in results.values()).count("computed") == 5
    results, errors = walk(tmp_path / "serial-store", 1, 1.0)
    failed = {e.__class__ for e in errors.values()}
    assert StageFailed in failed and any("BrokenBarrierError" in str(e) for e in errors.values())
    assert {r.stage for r in results.values()} == {"preprocess"}  # nothing read a failed sample's output


def test_a_warm_service_that_would_not_record_is_bypassed_when_a_server_runs(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service started before the dashboard (so it records nothing): the run goes cold through the
    flows, which record it, and says why in one line."""
    monkeypatch.setenv("RECUT_STORE", str(project.store))
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    warm = SimpleNamespace(records=False, state={"pid": 4242}, run=lambda *a: pytest.fail("the service ran it"))
    monkeypatch.setattr(service, "attach", lambda *a, **k: warm)
    flows: list[list[str]] = []

    def run_flows(paths: list[str], *rest: Any) -> dict[str, Any]:
        flows.append(paths)
        return {"specs": [], "computed": 0, "cached": 0, "stages": [], "failed": [], "dvc": "skipped"}

    monkeypatch.setattr(launch, "run_flows", run_flows)
    res = _invoke("run", str(project.spec(BASE_SPEC, "edit.yaml")), "--json", "--no-dvc")
    assert res.exit_code == 0, res.output
    assert len(flows) == 1 and "recut service (pid 4242) started without a Prefect server" in res.stderr


# --------------------------------------------------------------------------- the warm service


def test_a_stale_state_file_falls_back_to_the_cold_path(project: Project, ephemeral: list[str], monkeypatch) -> None:
    """A service that died (its state file left behind): one line, the file goes, the run runs cold."""
    monkeypatch.setenv("RECUT_STORE", str(project.store))
    state = service.state_file(project.root)
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps({"pid": 999999, "host": "127.0.0.1", "port": 9, "key": "00" * 32, "prefect": "x"}))
    res = _invoke("run", str(project.spec(BASE_SPEC, "edit.yaml")), "--json", "--no-dvc")
    assert res.exit_code == 0, res.output
    assert "recut service (pid 999999) is not answering" in res.stderr and "running cold" in res.stderr
    assert not state.exists()
    assert _invoke("status", "--project", str(project.root)).stdout.startswith("no recut service is running")


def _wait_gone(pid: int, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not service._alive(pid):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_the_warm_service_keeps_models_loaded_and_stops_cleanly(project: Project, monkeypatch) -> None:
    """up -> status -> a run loads the model -> a changed prompt loads nothing -> down; up again ->
    the service is killed -> the next run says so and runs cold."""
    monkeypatch.setenv("RECUT_STORE", str(project.store))
    monkeypatch.setenv("RECUT_WORKERS", "1")
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("RECUT_DASHBOARD", "http://127.0.0.1:9")
    monkeypatch.setenv("PREFECT_HOME", str(project.root / ".prefect-home"))  # no profile's server
    root = str(project.root)
    spec = project.spec(BASE_SPEC, "edit.yaml")
    up = _invoke("up", "--project", root)
    assert up.exit_code == 0 and "recut service started" in up.stdout, up.output
    pid = json.loads(service.state_file(project.root).read_text())["pid"]
    try:
        st = json.loads(_invoke("status", "--project", root, "--json").stdout)
        assert st["running"] and st["pid"] == pid and len(st["workers"]) == 1
        assert (os.stat(service.state_file(project.root)).st_mode & 0o777) == 0o600
        assert {"/service.json", "/service.log"} <= set((project.root / ".recut" / ".gitignore").read_text().split())
        assert _invoke("up", "--project", root).stdout.startswith("recut service already running")

        first = _summary(_invoke("run", str(spec), "--json", "--no-dvc"))
        assert "warm service" in first["prefect"] and first["computed"] == 5
        assert "no Prefect" in first["prefect"]  # ephemeral: nothing would show a flow run
        assert first["model_loads"] == 1
        assert (project.root / "outputs" / "edit" / "b.mp4").exists()
        spec.write_text(spec.read_text().replace("a blue square", "a green square"))
        second = _summary(_invoke("run", str(spec), "--json", "--no-dvc"))
        assert second["computed"] == 2 and second["model_loads"] == 0  # the worker held the model
        st = json.loads(_invoke("status", "--project", root, "--json").stdout)
        assert st["runs"] == 2 and st["workers"][0]["rss_mib"] > 0
        assert any(n == 1 for n in st["workers"][0]["loads"].values())
        assert "stopped the recut service" in _invoke("down", "--project", root).stdout
        assert _wait_gone(pid) and not service.state_file(project.root).exists()

        assert _invoke("up", "--project", root).exit_code == 0
        pid = json.loads(service.state_file(project.root).read_text())["pid"]
        os.killpg(pid, signal.SIGKILL)  # the service and everything it started
        assert _wait_gone(pid)
        spec.write_text(spec.read_text().replace("a green square", "a white square"))
        res = _invoke("run", str(spec), "--json", "--no-dvc")
        assert res.exit_code == 0, res.output
        assert "is not answering" in res.stderr and "running cold" in res.stderr
        assert "warm service" not in _summary(res)["prefect"]
    finally:
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
