"""Prefect mode selection: explicit API URL, a local dashboard, or ephemeral."""

from __future__ import annotations

import http.server
import threading

import pytest

from recut import prefect_env


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/api/health" else 404)
        self.end_headers()
        self.wfile.write(b"true")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def clean_env(monkeypatch):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    # no profile URL (the session's Prefect test harness sets one in a settings context)
    monkeypatch.setattr(prefect_env, "_profile_api_url", lambda: None)
    return monkeypatch


def test_explicit_api_url_wins(clean_env) -> None:
    clean_env.setenv("PREFECT_API_URL", "http://10.0.0.1:4200/api")
    assert prefect_env.configure() == "server http://10.0.0.1:4200/api"


def test_running_dashboard_is_used(clean_env) -> None:
    srv = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_port}"
        clean_env.setenv("RECUT_DASHBOARD", url)
        mode = prefect_env.configure()
        assert mode.startswith(f"server {url}/api") and prefect_env.records(mode)
        import os

        assert os.environ["PREFECT_API_URL"] == f"{url}/api"
    finally:
        srv.shutdown()


def test_no_server_means_ephemeral(clean_env) -> None:
    clean_env.setenv("RECUT_DASHBOARD", "http://127.0.0.1:9")  # nothing listens on the discard port
    mode = prefect_env.configure()
    assert mode.startswith("ephemeral") and not prefect_env.records(mode)


def test_other_libraries_errors_stay_off_the_console() -> None:
    """After configure(), Prefect's logging setup keeps other libraries' records (e.g. SQLAlchemy's
    pool when the ephemeral server stops) off the console unless RECUT_DEBUG=1."""
    import os
    import subprocess
    import sys

    code = (
        "from recut import prefect_env; prefect_env.configure(); "
        "from prefect.logging.configuration import setup_logging; setup_logging(); "
        "import logging; logging.getLogger('sqlalchemy.pool.impl.AsyncAdaptedQueuePool').error('pool reset failed')"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_LOGGING", "RECUT_DEBUG"))}
    quiet = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    loud = subprocess.run(
        [sys.executable, "-c", code], env={**env, "RECUT_DEBUG": "1"}, capture_output=True, text=True, timeout=120
    )
    assert quiet.returncode == 0 and loud.returncode == 0, quiet.stderr + loud.stderr
    assert "pool reset failed" not in quiet.stderr + quiet.stdout
    assert "pool reset failed" in loud.stderr + loud.stdout
