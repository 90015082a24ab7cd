"""Helpers of the dashboard tests (tests/test_dashboard.py, tests/test_browser.py): a real `recut dashboard`
in a subprocess, with its own Prefect home (database), in a throwaway project; `recut run` against it; and
reads of the Prefect API."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A port free on 127.0.0.1 whose successor is free too (the file server's default)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        with socket.socket() as s2:
            try:
                s2.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair")


def recut_cmd(*args: str) -> list[str]:
    exe = Path(sys.executable).with_name("recut")
    return [str(exe), *args] if exe.exists() else [sys.executable, "-m", "recut.cli", *args]


def clean_env(prefect_home: Path) -> dict[str, str]:
    """The environment of a user with no Prefect server configured: only the project's state file
    points at the dashboard."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "RECUT_")) and k not in ("RAY_ADDRESS", "PYTEST_CURRENT_TEST")
    }
    env.update(
        PREFECT_HOME=str(prefect_home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        RAY_USAGE_STATS_ENABLED="0",
        RECUT_WORKERS="1",
        PYTHONPATH=str(REPO),
    )
    return env


class Dashboard:
    """`recut dashboard --port PORT --files-port 0` started in ``root``; :meth:`stop` sends a signal."""

    def __init__(self, root: Path, prefect_home: Path, port: int | None = None):
        self.root = root
        self.port = port or free_port()
        self.env = clean_env(prefect_home)
        self.log = root.parent / f"dashboard-{self.port}.out"
        self.proc: subprocess.Popen[bytes] | None = None
        self.state: dict[str, Any] = {}

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def ui(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def files(self) -> str:
        return str(self.state["files_url"])

    def start(self, timeout: float = 240.0) -> Dashboard:
        t0 = time.monotonic()
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                recut_cmd("dashboard", "--port", str(self.port), "--files-port", "0"),
                cwd=self.root,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        state_file = self.root / ".recut" / "dashboard.json"
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"recut dashboard exited {self.proc.returncode}: {self.output()}")
            if state_file.is_file():
                self.state = json.loads(state_file.read_text())
                self.seconds = time.monotonic() - t0
                return self
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"recut dashboard did not start in {timeout:.0f} s: {self.output()}")

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode

    def run(self, *args: str, timeout: float = 600.0) -> subprocess.CompletedProcess[str]:
        """`recut run ARGS --json --no-dvc` in the project, finding the dashboard by its state file."""
        return subprocess.run(
            recut_cmd("run", *args, "--json", "--no-dvc"),
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    # ------------------------------------------------------------------ the API

    def post(self, path: str, body: dict[str, Any]) -> Any:
        req = urllib.request.Request(
            self.api + path, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.load(r)

    def client(self) -> Any:
        """A synchronous Prefect client of this dashboard's API."""
        from prefect.client.orchestration import SyncPrefectClient

        return SyncPrefectClient(self.api)

    def flow_runs(self) -> list[Any]:
        """Every flow run, oldest first."""
        from prefect.client.schemas.sorting import FlowRunSort

        with self.client() as c:
            runs = c.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=50, offset=0)
        return list(reversed(runs))

    def task_runs(self, flow_run_id: Any) -> list[Any]:
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
        from prefect.client.schemas.sorting import TaskRunSort

        with self.client() as c:
            return list(
                c.read_task_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
                    sort=TaskRunSort.EXPECTED_START_TIME_ASC,
                    limit=200,
                    offset=0,
                )
            )

    def logs(self, flow_run_id: Any) -> list[Any]:
        from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
        from prefect.client.schemas.sorting import LogSort

        with self.client() as c:
            return list(
                c.read_logs(
                    log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])),
                    sort=LogSort.TIMESTAMP_ASC,
                    limit=200,
                    offset=0,
                )
            )

    def artifacts(self, flow_run_id: Any) -> list[dict[str, Any]]:
        body = {"sort": "CREATED_DESC", "limit": 100, "offset": 0, "flow_runs": {"id": {"any_": [str(flow_run_id)]}}}
        return list(self.post("/artifacts/filter", body))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purpose
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return True


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0
