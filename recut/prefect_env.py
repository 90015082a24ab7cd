"""Choose how flows talk to Prefect: a running server, or an ephemeral one.

Call :func:`configure` before importing prefect.  Order of preference:
1. ``PREFECT_API_URL`` set (environment or active Prefect profile): use it.
2. ``RECUT_DASHBOARD`` set: the server answering there, if it answers.
3. A `recut dashboard` started in this project (its state file ``.recut/dashboard.json``, on any
   port), if it answers.
4. A server answering on http://127.0.0.1:4200 (a plain ``prefect server start``).
   With a server, runs appear in the dashboard (about 1.5 s of overhead a run).
5. Otherwise Prefect's ephemeral mode: a temporary local server per process
   (works everywhere, but costs seconds at start-up and shows no dashboard).

With a server, the runs' logs go to it: recut's own loggers (``recut.*`` at WARNING, and the stage
lines of ``recut.run`` at INFO, which stay off the console) and nothing of other libraries'. In
ephemeral mode nothing is sent (nobody watches a temporary server's logs).

Prefect is imported inside the functions that use it, so that importing this module stays cheap
(Prefect takes about a second to import, and must be imported after :func:`configure`).
"""

from __future__ import annotations

import os
import threading
import urllib.request
from typing import Any

DEFAULT_DASHBOARD = "http://127.0.0.1:4200"
#: How :func:`configure`'s answer starts when no server records the runs.
EPHEMERAL = "ephemeral"


def records(mode: str) -> bool:
    """Whether a Prefect server records the runs in ``mode`` (:func:`configure`'s answer, as the
    service's state file keeps it): false in ephemeral mode."""
    return not str(mode).startswith(EPHEMERAL)


def _healthy(api_url: str, timeout: float = 0.5) -> bool:
    try:
        with urllib.request.urlopen(api_url.rstrip("/") + "/health", timeout=timeout) as r:
            return bool(r.status == 200)
    except Exception:  # noqa: BLE001
        return False


def _profile_api_url() -> str | None:
    """``PREFECT_API_URL`` of the active Prefect profile (what `prefect config set` writes), read from
    the profiles file without importing Prefect (that import costs ~1.5 s, most of a no-op run)."""
    import tomllib
    from pathlib import Path

    home = Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()
    path = Path(os.environ.get("PREFECT_PROFILES_PATH", home / "profiles.toml")).expanduser()
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, ValueError):  # no profiles file, or an unreadable one, means "none"
        return None
    name = os.environ.get("PREFECT_PROFILE") or data.get("active") or "ephemeral"
    url = (data.get("profiles") or {}).get(name, {}).get("PREFECT_API_URL")
    return str(url) if url else None


def configure() -> str:
    """Set Prefect's environment; returns a one-line description of the mode."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Task failures reach the user as one line from the CLI; Prefect's own
    # ERROR records carry full tracebacks (RECUT_DEBUG=1 shows them).
    quiet = "WARNING" if os.environ.get("RECUT_DEBUG") == "1" else "CRITICAL"
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", quiet)
    # Prefect's logging config sends every other library's records to its console handler too; when
    # the ephemeral server stops at exit, SQLAlchemy's pool logs a cancelled connection reset there
    # with a full traceback (seen once under load, after a run had finished and succeeded).
    os.environ.setdefault("PREFECT_LOGGING_ROOT_LEVEL", quiet)
    # Faster ephemeral start-up: no background services we do not use.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "60")
    # recut's loggers are also used outside flow runs (planning, the gallery); those records stay local
    os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
    mode = _server_mode()
    os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "true" if records(mode) else "false")
    return mode


def _server_mode() -> str:
    api = os.environ.get("PREFECT_API_URL")
    if api:
        return f"server {api}"
    profile_api = _profile_api_url()
    if profile_api:
        return f"server {profile_api} (Prefect profile)"
    dash = os.environ.get("RECUT_DASHBOARD")
    candidates = [dash] if dash else [_project_dashboard(), DEFAULT_DASHBOARD]
    for dash in candidates:
        if not dash:
            continue
        api = dash.rstrip("/") + "/api"
        if _healthy(api):
            os.environ["PREFECT_API_URL"] = api
            return f"server {api} (dashboard at {dash})"
    return f"{EPHEMERAL} (no Prefect server running; `recut dashboard` starts one)"


def _project_dashboard() -> str | None:
    """The UI URL of a `recut dashboard` started in the project of the current folder (its state file)."""
    from pathlib import Path

    from recut.dashboard import find_root, read_state

    state = read_state(find_root(Path.cwd()))
    url = (state or {}).get("ui_url")
    return str(url) if url else None


def ship_logs() -> bool:
    """Send recut's log records to the Prefect server (call inside a flow run; idempotent).

    ``recut.run`` (the stages' step and end lines, and the run's own lines) goes to the API only, at
    INFO; the other ``recut.*`` loggers keep their console output and also send WARNING and above.
    Other libraries' loggers are left alone, so none of their records reach the server. Nothing is
    attached when Prefect's ``logging.to_api`` is off (ephemeral mode) or there is no server URL.
    Returns whether records are sent.
    """
    import logging

    from prefect.logging.handlers import APILogHandler
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    if not settings.logging.to_api.enabled or not settings.api.url:
        return False
    with _ship_lock:
        run_log = logging.getLogger("recut.run")
        if not any(isinstance(h, APILogHandler) for h in run_log.handlers):
            run_log.addHandler(_in_runs(APILogHandler()))
        run_log.setLevel(logging.INFO)
        run_log.propagate = False  # the CLI shows progress bars; these lines are for the dashboard
        own = logging.getLogger("recut")
        if not any(isinstance(h, APILogHandler) for h in own.handlers):
            handler = _in_runs(APILogHandler())
            handler.setLevel(logging.WARNING)
            own.addHandler(handler)
        if own.level == logging.NOTSET:  # under Prefect's config the root level would drop recut's warnings
            own.setLevel(logging.WARNING)
    return True


_ship_lock = threading.Lock()


def _in_runs(handler: Any) -> Any:
    """``handler`` with a filter that keeps only records made inside a flow or task run (the same
    process also logs outside runs: planning, an in-process run, the gallery)."""
    import logging

    from prefect.context import FlowRunContext, TaskRunContext

    class InRun(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return bool(
                getattr(record, "flow_run_id", None) or FlowRunContext.get() is not None or TaskRunContext.get()
            )

    handler.addFilter(InRun())
    return handler


def boot_ephemeral() -> threading.Thread | None:
    """Start Prefect's ephemeral server in the background, if that is the mode.

    The server (a uvicorn subprocess, about 4 s here) then boots while the
    driver plans and starts Ray; join the thread before the first flow call.
    Prefect keeps one ephemeral server per process, so the flow reuses it.
    """
    if os.environ.get("PREFECT_API_URL"):
        return None
    try:
        from prefect.settings import get_current_settings

        if get_current_settings().api.url:
            return None
        from prefect.server.api.server import SubprocessASGIServer
    except Exception:  # noqa: BLE001
        return None
    th = threading.Thread(target=lambda: SubprocessASGIServer().start(), name="recut-prefect-boot", daemon=True)
    th.start()
    return th
