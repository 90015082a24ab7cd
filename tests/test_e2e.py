"""End to end: real Prefect flows (test harness), real Ray actors, tiny models.

Marked slow: these start Ray (a few seconds) and run the diffusion sampler.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recut.cli import app
from recut.store import Store
from recut.video import load_frames, read_video
from tests.conftest import BASE_SPEC, Project

pytestmark = pytest.mark.slow


def run_json(*args: str) -> dict:
    result = CliRunner().invoke(app, ["run", *args, "--json", "--no-dvc"])
    assert result.exit_code == 0, result.output + str(result.exception)
    return json.loads(result.stdout)


def _label(st: dict) -> str:
    if st["stage"] in ("sample", "evaluate"):
        return f"{st['stage']}[{','.join(st['outputs'])}]"
    return st["stage"]


def statuses(summary: dict) -> dict[str, str]:
    return {_label(s): s["status"] for s in summary["stages"]}


def computed(summary: dict) -> set[str]:
    return {label for label, st in statuses(summary).items() if st == "computed"}


def test_run_cache_invalidate_force(project: Project, prefect_api: str, monkeypatch) -> None:
    monkeypatch.setenv("RECUT_STORE", str(project.store))
    spec = project.spec()

    # cold run: everything computes, outputs land in outputs/<spec>
    first = run_json(str(spec))
    assert computed(first) == {"preprocess", "sample[a]", "evaluate[a]", "sample[b]", "evaluate[b]"}
    out_dir = project.root / "outputs" / "edit"
    for name in ("a", "b"):
        frames, fps = read_video(out_dir / f"{name}.mp4")
        assert frames.shape == (4, 32, 32, 3) and fps == pytest.approx(8.0)
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert set(metrics) == {"a", "b"}
    assert 5 < metrics["a"]["psnr"] < 100 and 0 <= metrics["a"]["ssim"] <= 1
    summary = json.loads((out_dir / "summary.json").read_text())
    assert {s["stage"] for s in summary["stages"]} == {"preprocess", "sample", "evaluate"}
    for st in first["stages"]:
        assert len(st["key"]) == 64 and st["seconds"] >= 0
        assert all(Path(p).exists() for p in st["artifacts"].values())
    # the sample artifact is lossless frames + mp4, and matches the output copy
    sample_a = next(s for s in first["stages"] if _label(s) == "sample[a]")
    assert set(sample_a["artifacts"]) == {"frames.npy", "video.mp4"}
    # models load once per actor and stay resident
    loads = [n for w in first["workers"] for n in w["loads"].values()]
    assert loads and all(n <= 1 for n in loads)

    # warm run: nothing recomputes, identical keys
    second = run_json(str(spec))
    assert computed(second) == set()
    assert [s["key"] for s in second["stages"]] == [s["key"] for s in first["stages"]]

    # change one edit's prompt: exactly its sample and evaluate recompute
    spec.write_text(spec.read_text().replace("a blue square", "a pink square"))
    third = run_json(str(spec))
    assert computed(third) == {"sample[b]", "evaluate[b]"}
    assert statuses(third)["sample[a]"] == "cached"

    # --force sample: sample and everything downstream, not preprocess
    fourth = run_json(str(spec), "--force", "sample")
    assert computed(fourth) == {"sample[a]", "evaluate[a]", "sample[b]", "evaluate[b]"}
    # deterministic: recomputation reproduces the same frames
    a_ref = Store(project.store).get("sample", sample_a["key"])
    assert a_ref is not None
    assert (load_frames(a_ref.file("frames.npy")) == load_frames(Path(sample_a["artifacts"]["frames.npy"]))).all()


def test_batch_runs_specs_together(project: Project, prefect_api: str, monkeypatch) -> None:
    monkeypatch.setenv("RECUT_STORE", str(project.store))
    one = project.spec(BASE_SPEC, "one.yaml")
    two = project.spec(BASE_SPEC.replace("a blue square", "a pink square"), "two.yaml")
    summary = run_json(str(one), str(two))
    labels = [s["stage"] for s in summary["stages"]]
    assert labels.count("preprocess") == 1  # shared across specs
    assert sum(1 for s in summary["stages"] if s["stage"] == "sample") == 3
    assert (project.root / "outputs" / "one" / "b.mp4").exists()
    assert (project.root / "outputs" / "two" / "b.mp4").exists()


# Long enough (a few seconds per sample) that the kill below lands inside a sample,
# not just after one was committed.
SLOW_SPEC = (
    BASE_SPEC.replace("count: 4", "count: 8")
    .replace("steps: 4", "steps: 250")
    .replace("strength: 0.5", "strength: 1.0")
)


def _cli_env(prefect_api: str, store: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(PREFECT_API_URL=prefect_api, RECUT_STORE=str(store), RECUT_WORKERS="1")
    return env


def test_killed_run_resumes_from_completed_stages(project: Project, prefect_api: str) -> None:
    spec = project.spec(SLOW_SPEC)
    env = _cli_env(prefect_api, project.store)
    cmd = [sys.executable, "-m", "recut.cli", "run", str(spec), "--json", "--no-dvc"]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    store = Store(project.store)
    deadline = time.time() + 180
    # wait until preprocess is committed and a sample is being written
    while time.time() < deadline:
        pre = list(project.store.glob("preprocess/??/*/ref.json"))
        tmp = [d for d in store.tmp_root.glob("*") if d.is_dir()] if store.tmp_root.exists() else []
        if pre and tmp:
            break
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        time.sleep(0.1)
    else:
        pytest.fail("the run never reached the sample stage")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert list(project.store.glob("sample/??/*/ref.json")) == []  # nothing partial committed

    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert statuses(summary)["preprocess"] == "cached"
    assert computed(summary) == {"sample[a]", "evaluate[a]", "sample[b]", "evaluate[b]"}


def test_two_concurrent_runs_both_finish(project: Project, prefect_api: str) -> None:
    spec = project.spec(BASE_SPEC.replace("steps: 4", "steps: 8"))
    env = _cli_env(prefect_api, project.store)
    cmd = [sys.executable, "-m", "recut.cli", "run", str(spec), "--json", "--no-dvc"]
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (stdout, stderr) in zip(procs, outs, strict=True):
        assert p.returncode == 0, stderr
        assert json.loads(stdout)["specs"][0]["outputs"]["a"]["files"]["mp4"]
    store = Store(project.store)
    refs = list(store.iter_refs())
    assert len(refs) == 5  # one artifact per key, however the race went
    assert all(store.get(r.kind, r.key, verify=True) for r in refs)
    frames, _ = read_video(project.root / "outputs" / "edit" / "a.mp4")
    assert frames.shape == (4, 32, 32, 3)


def _children(pid: int) -> list[int]:
    """Every process whose parent chain leads to ``pid`` (Linux /proc)."""
    parents: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parents[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        found += kids
        frontier += kids
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_a_terminated_run_leaves_no_prefect_server_behind(project: Project, monkeypatch) -> None:
    """SIGTERM to `recut run` in ephemeral mode: Prefect's temporary server (a uvicorn child) stops too."""
    spec = project.spec(SLOW_SPEC)
    env = dict(os.environ, RECUT_STORE=str(project.store), RECUT_WORKERS="1", RECUT_DASHBOARD="http://127.0.0.1:9")
    env.pop("PREFECT_API_URL", None)
    env["PREFECT_HOME"] = str(project.root / ".prefect-home")  # no profile's server
    cmd = [sys.executable, "-m", "recut.cli", "run", str(spec), "--json", "--no-dvc", "--executor", "ray"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    server: list[int] = []
    while time.time() < deadline and not server:
        server = [c for c in _children(proc.pid) if "prefect.server" in _cmdline(c)]
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        time.sleep(0.2)
    assert server, "the run never started Prefect's ephemeral server"
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) != 0
    deadline = time.time() + 20
    while time.time() < deadline and any(_cmdline(p) for p in server):
        time.sleep(0.2)
    alive = [p for p in server if _cmdline(p)]
    for p in alive:
        os.kill(p, signal.SIGKILL)
    assert not alive, "Prefect's ephemeral server outlived the terminated run"


@pytest.mark.parametrize("executor", ["ray", "local"])
def test_a_run_terminated_mid_sample_stops_at_once(project: Project, executor: str) -> None:
    """SIGTERM while a stage computes (on a Ray worker under the flow, or in process): the run exits
    within seconds, not when its stages would have ended (minutes here), leaves none of its processes
    (Ray, Prefect's server) behind, and commits nothing partial."""
    from recut.video import make_test_video

    make_test_video(project.root / "media" / "clip.mp4", frames=8, width=96, height=96, fps=8)
    spec = project.spec(SLOW_SPEC.replace("steps: 250", "steps: 999"))
    env = dict(os.environ, RECUT_STORE=str(project.store), RECUT_WORKERS="1", RECUT_DASHBOARD="http://127.0.0.1:9")
    env.pop("PREFECT_API_URL", None)
    env["PREFECT_HOME"] = str(project.root / ".prefect-home")
    cmd = [sys.executable, "-m", "recut.cli", "run", str(spec), "--json", "--no-dvc", "--executor", executor]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    store = Store(project.store)
    deadline = time.time() + 180
    while time.time() < deadline:
        tmp = [d for d in store.tmp_root.glob("*") if d.is_dir()] if store.tmp_root.exists() else []
        if list(project.store.glob("preprocess/??/*/ref.json")) and tmp:
            break
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        time.sleep(0.2)
    else:
        pytest.fail("the run never reached the sample stage")
    time.sleep(2.0)  # inside the sample: 999 steps at 96x96 take minutes
    family = _children(proc.pid)
    t0 = time.time()
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail("the terminated run was still running 30 s after SIGTERM (it waited for its stages)")
    assert code == 128 + signal.SIGTERM, proc.stderr.read().decode() if proc.stderr else ""
    assert time.time() - t0 < 30
    deadline = time.time() + 20
    while time.time() < deadline and any(_cmdline(p) for p in family):
        time.sleep(0.2)
    alive = {p: _cmdline(p) for p in family if _cmdline(p)}
    for p in alive:
        os.kill(p, signal.SIGKILL)
    assert not alive, f"processes outlived the terminated run: {alive}"
    assert list(project.store.glob("sample/??/*/ref.json")) == []
