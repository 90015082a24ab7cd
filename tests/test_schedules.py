"""Scheduled batch flows (issue 27 §1): the schedules file is validated like a spec (`file:line:
field.path: message`, exit 2), `recut schedule`/`recut serve` refuse to run without a Prefect server,
a scheduled run that meets an invalid spec runs the others, and, end to end against a real `prefect
server`, a schedule served by `recut serve` fires and its run completes and writes the spec's outputs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from recut import prefect_env
from recut.cli import app
from recut.models import REPO_ROOT
from recut.schedules import format_seconds, load_schedules, parse_duration
from recut.spec import SpecError
from tests.conftest import BASE_SPEC, Project


def _write(project: Project, text: str, name: str = "schedules.yaml") -> Path:
    p = project.root / "specs" / name
    p.write_text(textwrap.dedent(text))
    return p


def _problems(path: Path) -> list[str]:
    with pytest.raises(SpecError) as exc:
        load_schedules(path)
    return [str(i) for i in exc.value.issues]


@pytest.fixture
def good(project: Project) -> Project:
    project.spec(BASE_SPEC, "edit.yaml")
    return project


# --------------------------------------------------------------------------- the file


def test_the_example_schedules_file_validates() -> None:
    sched = load_schedules(REPO_ROOT / "specs" / "schedules.yaml")
    by_name = {s.name: s for s in sched.schedules}
    assert set(by_name) == {"nightly-reevaluation", "inbox-sweep", "weekly-benchmark"}
    assert by_name["nightly-reevaluation"].cron == "0 3 * * *"
    assert by_name["inbox-sweep"].seconds == 3600
    assert by_name["weekly-benchmark"].force == ["sample"]
    nightly = [p for ps in sched.matches["nightly-reevaluation"].values() for p in ps]
    assert REPO_ROOT / "specs" / "examples" / "toy-recolour.yaml" in nightly
    assert all(p.name != "schedules.yaml" for p in nightly)  # the file itself is never a spec
    assert all(sched.matches["weekly-benchmark"].values())
    # the inbox is meant to fill up: an empty match there is a warning, not an error
    assert all(w.warning for w in sched.warnings)
    assert sched.file_tag == "recut-schedules:specs/schedules.yaml"


def test_a_valid_file(good: Project) -> None:
    p = _write(
        good,
        """\
        schedules:
          - name: hourly
            interval: 1h30m
            timezone: Europe/Paris
            specs: ["*.yaml"]
            force: [sample]
            no_dvc: true
            store: ../store
          - name: nightly
            cron: "0 3 * * *"
            specs: [edit.yaml]
            paused: true
        """,
    )
    sched = load_schedules(p)
    hourly, nightly = sched.schedules
    assert hourly.seconds == 5400 and hourly.when() == "every 1h30m (Europe/Paris)"
    assert nightly.when() == "cron 0 3 * * *" and nightly.paused
    assert sched.matches["hourly"]["*.yaml"] == [good.root / "specs" / "edit.yaml"]
    assert sched.store_for(hourly) == str(good.root / "store")
    assert sched.warnings == []


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            """\
            schedules:
              - name: a
                cron: "61 * * * *"
                specs: [edit.yaml]
            """,
            "schedules.yaml:3: schedules.0.cron: not a cron string: '61 * * * *'",
        ),
        (
            """\
            schedules:
              - name: a
                cron: "0 3 * * *"
                interval: 60
                specs: [edit.yaml]
            """,
            "schedules.yaml:2: schedules.0: give exactly one of `cron` and `interval` (got both)",
        ),
        (
            """\
            schedules:
              - name: a
                specs: [edit.yaml]
            """,
            "schedules.yaml:2: schedules.0: give exactly one of `cron` and `interval` (got neither)",
        ),
        (
            """\
            schedules:
              - name: a
                interval: 1 fortnight
                specs: [edit.yaml]
            """,
            "schedules.yaml:3: schedules.0.interval: not a duration: '1 fortnight'",
        ),
        (
            """\
            schedules:
              - name: a
                cron: "0 3 * * *"
                timezone: Mars/Olympus
                specs: [edit.yaml]
            """,
            "schedules.yaml:4: schedules.0.timezone: unknown time zone 'Mars/Olympus'",
        ),
        (
            """\
            schedules:
              - name: a
                interval: 60
                specs:
                  - edit.yaml
                  - nowhere/*.yaml
            """,
            "schedules.yaml:6: schedules.0.specs.1: 'nowhere/*.yaml' matches no spec file",
        ),
        (
            """\
            schedules:
              - name: a
                interval: 60
                specs: [missing.yaml]
            """,
            "schedules.yaml:4: schedules.0.specs.0: file not found: 'missing.yaml'",
        ),
        (
            """\
            schedules:
              - name: a
                interval: 60
                specs: [edit.yaml]
                force: [sample, smaple]
            """,
            "schedules.yaml:5: schedules.0.force.1: unknown stage 'smaple'; the matched specs' methods have "
            "preprocess, sample, evaluate (or 'all')",
        ),
        (
            """\
            schedules:
              - name: a
                interval: 60
                specs: [edit.yaml]
                retries: 3
            """,
            "schedules.yaml:5: schedules.0.retries: unknown field (not allowed here)",
        ),
        (
            """\
            schedules:
              - name: a
                interval: 60
                specs: [edit.yaml]
                interval: 120
            """,
            "schedules.yaml:5: schedules.0.interval: duplicate key 'interval': first given on line 3, again on line 5",
        ),
        (
            """\
            schedules:
              - {name: a, interval: 60, specs: [edit.yaml]}
              - {name: a, interval: 90, specs: [edit.yaml]}
            """,
            "schedules.yaml:3: schedules.1.name: duplicate schedule name 'a' (first on line 2)",
        ),
        (
            """\
            schedules:
              - {name: "a/b", interval: 60, specs: [edit.yaml]}
            """,
            "schedules.yaml:2: schedules.0.name: String should match pattern",
        ),
    ],
    ids=[
        "bad-cron",
        "cron-and-interval",
        "neither",
        "bad-interval",
        "bad-timezone",
        "glob-matches-nothing",
        "missing-file",
        "bad-force-stage",
        "unknown-key",
        "duplicate-key",
        "duplicate-name",
        "bad-name",
    ],
)
def test_problems_are_reported_with_their_line(good: Project, body: str, expected: str) -> None:
    p = _write(good, body)
    lines = _problems(p)
    assert any(line.startswith(str(p.parent / expected.split(":", 1)[0])) for line in lines), lines
    assert any(expected.split("schedules.yaml", 1)[1] in line for line in lines), lines


def test_a_matched_spec_that_does_not_validate_is_an_error_with_its_own_line(good: Project) -> None:
    bad = good.spec(BASE_SPEC.replace("a red square", ""), "bad.yaml")
    p = _write(good, 'schedules:\n  - {name: a, interval: 60, specs: ["*.yaml"]}\n')
    lines = _problems(p)
    assert any(x.startswith(f"{p}:2: schedules.0.specs.0: '*.yaml' matches ") and "bad.yaml" in x for x in lines)
    assert any(x.startswith(f"{bad}:9: edits.0.prompt:") for x in lines), lines


def test_an_empty_glob_over_an_existing_folder_is_a_warning(good: Project) -> None:
    (good.root / "specs" / "inbox").mkdir()
    p = _write(good, 'schedules:\n  - {name: a, interval: 1h, specs: ["inbox/*.yaml"]}\n')
    sched = load_schedules(p)
    (w,) = sched.warnings
    assert w.warning and w.line == 2 and "matches no spec yet" in str(w)


def test_durations() -> None:
    assert [parse_duration(v) for v in (90, "90", "90s", "15m", "1h", "1h30m", "1d", "1w")] == [
        90,
        90,
        90,
        900,
        3600,
        5400,
        86400,
        604800,
    ]
    for bad in (0, -5, True, "1 fortnight", "", 1.5):
        with pytest.raises(ValueError):
            parse_duration(bad)
    assert [format_seconds(s) for s in (5, 3600, 5400, 86400 + 60)] == ["5s", "1h", "1h30m", "1d1m"]


# --------------------------------------------------------------------------- the commands


@pytest.fixture
def no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("RECUT_DASHBOARD", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setattr(prefect_env, "_profile_api_url", lambda: None)


def test_a_bad_file_exits_2_before_looking_for_a_server(good: Project, no_server: None) -> None:
    p = _write(good, 'schedules:\n  - {name: a, cron: "0 3 * * *", interval: 60, specs: [edit.yaml]}\n')
    for cmd in ("schedule", "serve"):
        res = CliRunner().invoke(app, [cmd, "--file", str(p)])
        assert res.exit_code == 2, res.output
        assert f"{p}:2: schedules.0: give exactly one of `cron` and `interval`" in res.stderr
        assert "nothing was registered" in res.stderr


def test_schedule_and_serve_refuse_without_a_server(good: Project, no_server: None) -> None:
    p = _write(good, "schedules:\n  - {name: a, interval: 60, specs: [edit.yaml]}\n")
    for args in (["schedule", "--file", str(p)], ["serve", "--file", str(p)], ["schedule", "--list"]):
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 1, res.output
        assert "error: no Prefect server is running" in res.stderr and "recut dashboard" in res.stderr
        assert "Traceback" not in res.output


def test_sqlalchemy_is_one_prefect_can_schedule_with() -> None:
    """Prefect 3.8's scheduler service fails on SQLAlchemy 2.1 and no schedule fires (pyproject pins < 2.1);
    `test_a_served_schedule_fires_and_its_run_completes` is the proof that schedules fire."""
    from importlib.metadata import version

    assert tuple(int(x) for x in version("sqlalchemy").split(".")[:2]) < (2, 1)


def test_importing_the_cli_stays_cheap() -> None:
    code = "import recut.cli, sys; print('prefect' in sys.modules, 'torch' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.split() == ["False", "False"]


# --------------------------------------------------------------------------- the flow


@pytest.mark.slow
def test_a_scheduled_run_reports_an_invalid_spec_and_runs_the_others(
    good: Project, prefect_api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.scheduled import scheduled

    monkeypatch.setenv("RECUT_STORE", str(good.store))
    # written after the schedule was validated: the run expands the glob and validates each spec itself
    good.spec(BASE_SPEC.replace("a red square", ""), "late-and-bad.yaml")
    state = scheduled(
        schedule="sweep",
        specs=["*.yaml"],
        base_dir=str(good.root / "specs"),
        dvc=False,
        return_state=True,
    )
    assert state.is_failed()
    assert "late-and-bad.yaml: does not validate" in state.message
    assert "edit.yaml" not in state.message.replace("late-and-bad.yaml", "")
    for name in ("a", "b"):
        assert (good.root / "outputs" / "edit" / f"{name}.mp4").exists()


# --------------------------------------------------------------------------- end to end


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _api(api: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(api + path, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read() or b"null")


def _wait(what: str, check: Any, timeout: float, procs: list[subprocess.Popen[Any]]) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = check()
        if got:
            return got
        for p in procs:
            assert p.poll() is None, f"{p.args[:3]} exited with {p.returncode} while waiting for {what}"
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _stop(p: subprocess.Popen[Any], sig: int = signal.SIGINT, timeout: float = 20) -> int | None:
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)
    return p.returncode


@pytest.mark.slow
def test_a_served_schedule_fires_and_its_run_completes(project: Project, tmp_path: Path) -> None:
    from recut.plan import build_plan
    from recut.runner import run_plan
    from recut.spec import load_spec
    from recut.store import Store

    t0 = time.monotonic()
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    home = tmp_path / "prefect-home"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") or k == "PREFECT_SERVER_ANALYTICS_ENABLED"
    }
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_API_URL=api,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_RUNNER_POLL_FREQUENCY="1",
        RECUT_STORE=str(project.store),
        RAY_USAGE_STATS_ENABLED="0",
    )
    exe = Path(sys.executable).with_name("prefect")
    logs = tmp_path / "logs"
    logs.mkdir()
    procs: list[subprocess.Popen[Any]] = []
    server = subprocess.Popen(
        [str(exe), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=(logs / "server.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    procs.append(server)
    serve = None
    try:
        # while the server boots: the spec's stages go into the store, so the scheduled run is the
        # nightly re-evaluation case (every stage cached): it must put the outputs back in place
        spec = project.spec(BASE_SPEC, "edit.yaml")
        run_plan(build_plan([load_spec(spec)], Store(project.store)), project.store)
        outputs = project.root / "outputs" / "edit"
        shutil.rmtree(outputs, ignore_errors=True)
        every_5s = "  - {name: every-5s, interval: 5, specs: ['*.yaml'], no_dvc: true}\n"
        dropped = "  - {name: dropped-later, cron: '0 3 * * *', specs: [edit.yaml], paused: true}\n"
        sched = _write(project, "schedules:\n" + every_5s + dropped)
        _wait("the Prefect server", lambda: prefect_env._healthy(api), 90, procs)

        recut = str(Path(sys.executable).with_name("recut"))
        reg = subprocess.run(
            [recut, "schedule", "--file", str(sched), "--json"],
            env=env,
            cwd=project.root,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert reg.returncode == 0, reg.stderr
        row, other = sorted(json.loads(reg.stdout)["schedules"], key=lambda r: r["name"] != "every-5s")
        assert (row["name"], row["schedule"], row["status"]) == ("every-5s", "every 5s", "active")
        assert row["specs"] == ["*.yaml"] and row["next_run"] is not None
        assert (other["name"], other["schedule"], other["status"]) == ("dropped-later", "cron 0 3 * * *", "paused")

        # a schedule removed from the file is removed from the server (by `recut serve` as by `recut schedule`)
        sched.write_text("schedules:\n" + every_5s)

        serve = subprocess.Popen(
            [recut, "serve", "--file", str(sched)],
            env=env,
            cwd=project.root,
            stdout=(logs / "serve.log").open("w"),
            stderr=subprocess.STDOUT,
        )
        procs.append(serve)

        def completed() -> list[dict[str, Any]]:
            runs = _api(
                api,
                "POST",
                "/flow_runs/filter",
                {
                    "flows": {"name": {"any_": ["recut-scheduled"]}},
                    "sort": "EXPECTED_START_TIME_ASC",
                    "limit": 50,
                    "offset": 0,
                },
            )
            bad = [r for r in runs if r["state_type"] in ("FAILED", "CRASHED")]
            assert not bad, (bad[0]["state"], (logs / "serve.log").read_text()[-3000:])
            return [r for r in runs if r["state_type"] == "COMPLETED"]

        (first, *_) = _wait("a completed scheduled run", completed, 60, procs)
        assert first["auto_scheduled"] is True and first["deployment_id"] == row["id"]
        assert first["name"] == "every-5s"
        for name in ("a", "b"):
            assert (outputs / f"{name}.mp4").exists()
        assert set(json.loads((outputs / "metrics.json").read_text())) == {"a", "b"}

        # Ctrl-C stops `recut serve` cleanly, and Prefect pauses the schedule on the way out
        assert _stop(serve) == 0, (logs / "serve.log").read_text()[-3000:]
        assert "stopped; the schedules are paused" in (logs / "serve.log").read_text()
        assert _api(api, "GET", f"/deployments/{row['id']}")["paused"] is True
        deployments = _api(api, "POST", "/deployments/filter", {"limit": 50, "offset": 0, "sort": "NAME_ASC"})
        assert [d["name"] for d in deployments] == ["every-5s"]
    finally:
        if serve is not None:
            _stop(serve, signal.SIGKILL)
        _stop(server, signal.SIGTERM)
    assert time.monotonic() - t0 < 90
