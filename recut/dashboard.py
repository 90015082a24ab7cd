"""`recut dashboard`: Prefect's server and UI, plus a read-only file server for the outputs folder.

The Prefect UI shows a markdown artifact's pictures only by URL, so the dashboard also serves the
project's outputs folder (``<project>/outputs`` unless ``--outputs`` says otherwise) on 127.0.0.1, by
default on the port after the UI's. Nothing outside that folder is served: a request path with a
``..`` segment is refused, every path is resolved (symbolic links followed) and must stay inside the
folder, only regular files are served (no directory listings), only GET and HEAD are answered, and a
request must name 127.0.0.1 or localhost as its host (a web page cannot reach it by rebinding a DNS name).
It sends no CORS header, so other web pages can show its pictures but not read them.

While it runs, ``<project>/.recut/dashboard.json`` (the state file) says where the API, the UI and the
file server are: ``recut run`` in the same project finds the dashboard through it on any port
(:func:`recut.prefect_env.configure`), and a run's artifacts link to the file server it names
(:mod:`recut.artifacts`). The file is removed when the dashboard stops.

The Prefect server runs as a child process in its own process group (its output goes to
``.recut/dashboard.log``); Ctrl-C, SIGTERM or SIGHUP stop the whole group (SIGKILL after a grace
period) and the file server, and on Linux the child also gets SIGTERM if this process dies.

Only the standard library is imported here.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import mimetypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from recut.gitignore import ignore_in_git

HOST = "127.0.0.1"
STATE_NAME = "dashboard.json"
LOG_NAME = "dashboard.log"
#: Seconds to wait for the Prefect server to answer /api/health (a first start migrates its database).
START_TIMEOUT_S = 180.0
#: Seconds the server's process group gets between SIGTERM and SIGKILL.
STOP_GRACE_S = 15.0

mimetypes.add_type("video/mp4", ".mp4")
mimetypes.add_type("image/gif", ".gif")
mimetypes.add_type("application/json", ".json")


# --------------------------------------------------------------------------- state file


def find_root(start: Path) -> Path:
    """The project root above ``start``: the rule of :func:`recut.spec.find_project_root`, kept here so
    that :mod:`recut.prefect_env` can find the state file without importing the spec module."""
    env = os.environ.get("RECUT_ROOT")
    if env:
        return Path(env).resolve()
    start = Path(start).resolve()
    for d in [start, *start.parents]:
        if (d / ".git").exists() or (d / "dvc.yaml").exists() or (d / ".dvc").is_dir():
            return d
    return start


def state_path(project_root: Path) -> Path:
    return Path(project_root) / ".recut" / STATE_NAME


def read_state(project_root: Path) -> dict[str, Any] | None:
    """The state file of a dashboard started in ``project_root``, or None (absent or unreadable).
    It may be stale (a dashboard killed with SIGKILL): callers check that its URLs answer."""
    try:
        data = json.loads(state_path(project_root).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_state(project_root: Path, state: dict[str, Any]) -> Path:
    dst = state_path(project_root)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(state, indent=1) + "\n")
    os.replace(tmp, dst)
    ignore_in_git(dst.parent, [f"/{STATE_NAME}", f"/{LOG_NAME}"])
    return dst


def remove_state(project_root: Path, pid: int | None = None) -> None:
    """Remove the state file if it is ours (``pid``), so a newer dashboard's file is kept."""
    path = state_path(project_root)
    state = read_state(project_root)
    if state is not None and pid is not None and state.get("pid") != pid:
        return
    with contextlib.suppress(OSError):
        path.unlink()


def answers(url: str, timeout: float = 0.5) -> bool:
    """True when ``url`` answers a GET with a 2xx status."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return bool(200 <= r.status < 300)
    except Exception:  # noqa: BLE001
        return False


# --------------------------------------------------------------------------- the file server


def resolve_inside(root: Path, url_path: str) -> Path | None:
    """The regular file under ``root`` that ``url_path`` names (a directory means its index.html), or
    None when it does not exist or lies outside ``root`` (``..`` segments, symbolic links out)."""
    path = urllib.parse.unquote(urllib.parse.urlsplit(url_path).path)
    if "\x00" in path or "\\" in path:
        return None
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        return None
    real_root = Path(os.path.realpath(root))
    real = Path(os.path.realpath(real_root.joinpath(*parts)))
    if real != real_root and not real.is_relative_to(real_root):
        return None
    if real.is_dir():
        real = Path(os.path.realpath(real / "index.html"))
        if not real.is_relative_to(real_root):
            return None
    return real if real.is_file() else None


class _OutputsHandler(http.server.BaseHTTPRequestHandler):
    """GET and HEAD of regular files under ``server.root``; everything else is refused."""

    server: _OutputsServer
    server_version = "recut-outputs"
    sys_version = ""

    def do_GET(self) -> None:
        self._serve(body=True)

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def _refuse(self) -> None:
        self.send_error(405, "read-only: only GET and HEAD")

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse

    def _host_ok(self) -> bool:
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]").lower()
        return host in ("127.0.0.1", "localhost", "::1")

    def _serve(self, body: bool) -> None:
        if not self._host_ok():
            self.send_error(403, "only 127.0.0.1 or localhost")
            return
        path = resolve_inside(self.server.root, self.path)
        if path is None:
            self.send_error(404, "not found")
            return
        try:
            f = path.open("rb")
        except OSError:
            self.send_error(404, "not found")
            return
        with f:
            size = os.fstat(f.fileno()).st_size
            start, end = 0, size - 1
            rng = self.headers.get("Range", "")
            status = 200
            if rng.startswith("bytes=") and "," not in rng and size > 0:
                a, _, b = rng[6:].partition("-")
                try:
                    if a:
                        start, end = int(a), min(int(b) if b else size - 1, size - 1)
                    else:
                        start, end = max(0, size - int(b)), size - 1
                except ValueError:
                    start, end = 0, size - 1
                else:
                    if start > end:
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{size}")
                        self.end_headers()
                        return
                    status = 206
            self.send_response(status)
            self.send_header("Content-Type", mimetypes.guess_type(path.name)[0] or "application/octet-stream")
            self.send_header("Content-Length", str(max(0, end - start + 1)))
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            if not body:
                return
            f.seek(start)
            left = end - start + 1
            while left > 0:
                chunk = f.read(min(left, 1 << 16))
                if not chunk:
                    break
                try:
                    self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    return
                left -= len(chunk)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _OutputsServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    root: Path


def serve_outputs(root: Path, port: int = 0, host: str = HOST) -> tuple[_OutputsServer, threading.Thread]:
    """Serve ``root`` read-only on ``host:port`` (0: any free port) from a daemon thread; stop it with
    ``server.shutdown(); server.server_close()``."""
    srv = _OutputsServer((host, port), _OutputsHandler)
    srv.root = Path(os.path.realpath(root))
    th = threading.Thread(target=srv.serve_forever, name="recut-outputs-server", daemon=True)
    th.start()
    return srv, th


# --------------------------------------------------------------------------- the Prefect server


def port_free(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def prefect_env(port: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """The server's environment: the UI calls the API on ``port`` (Prefect's UI otherwise calls :4200
    whatever port the server listens on), no telemetry."""
    api = f"http://{HOST}:{port}/api"
    env = dict(os.environ if base is None else base)
    env.update(
        PREFECT_UI_API_URL=api,
        PREFECT_API_URL=api,
        PREFECT_SERVER_API_HOST=HOST,
        PREFECT_SERVER_API_PORT=str(port),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
    )
    return env


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001
        pass


def start_prefect(port: int, log_path: Path) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).with_name("prefect")
    cmd = [str(exe) if exe.exists() else "prefect", "server", "start", "--host", HOST, "--port", str(port)]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            cmd,
            env=prefect_env(port),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopping it stops everything it started
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )


def stop_group(proc: subprocess.Popen[bytes], grace: float = STOP_GRACE_S) -> None:
    """SIGTERM the process group of ``proc``, then SIGKILL what is left after ``grace`` seconds."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    # the group may outlive its leader (a child it started)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def _tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


class _Stop(Exception):
    pass


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """SIGTERM and SIGHUP end the dashboard as Ctrl-C does (main thread only): the handler only sets
    the event it yields, which the main loop polls. An exception raised from the handler could land
    anywhere in the start-up (a print, a lock) and left the process hanging now and then."""
    stop = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        stop.reason = signal.Signals(signum).name  # type: ignore[attr-defined]
        stop.set()

    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, handler)
    try:
        yield stop
    finally:
        for s, h in old.items():
            if h is not None:
                signal.signal(s, h)


def _ignore_signals() -> None:
    if threading.current_thread() is threading.main_thread():
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)


def run(
    project_root: Path,
    port: int = 4200,
    files_port: int | None = None,
    outputs: Path | None = None,
    say: Callable[[str], None] = print,
) -> int:
    """Run the dashboard until Ctrl-C/SIGTERM/SIGHUP or until the Prefect server exits; returns the exit
    code. Writes the state file once both servers answer and removes it on the way out."""
    project_root = Path(project_root).resolve()
    outputs = Path(outputs).resolve() if outputs is not None else project_root / "outputs"
    files_port = port + 1 if files_port is None else files_port
    if not port_free(port):
        say(f"error: port {port} on {HOST} is in use (another dashboard?); choose one with --port")
        return 1
    if files_port and not port_free(files_port):
        say(f"error: port {files_port} on {HOST} is in use; choose the file server's with --files-port")
        return 1
    outputs.mkdir(parents=True, exist_ok=True)
    log_path = project_root / ".recut" / LOG_NAME
    ui, api = f"http://{HOST}:{port}", f"http://{HOST}:{port}/api"
    proc: subprocess.Popen[bytes] | None = None
    srv: _OutputsServer | None = None
    code = 0
    with _stop_on_signals() as stop:
        try:
            proc = start_prefect(port, log_path)  # before any thread starts (preexec_fn)
            srv, _ = serve_outputs(outputs, files_port)
            files = f"http://{HOST}:{srv.server_address[1]}"
            say(f"starting the Prefect server on {ui} (log: {log_path}) ...")
            deadline = time.monotonic() + START_TIMEOUT_S
            while not answers(api + "/health", timeout=1.0):
                if stop.is_set():
                    raise _Stop(getattr(stop, "reason", ""))
                if proc.poll() is not None:
                    say(f"error: the Prefect server exited with code {proc.returncode}:\n{_tail(log_path)}")
                    return proc.returncode or 1
                if time.monotonic() > deadline:
                    say(f"error: the Prefect server did not answer within {START_TIMEOUT_S:.0f} s:\n{_tail(log_path)}")
                    return 1
                time.sleep(0.3)
            state = {
                "pid": os.getpid(),
                "server_pid": proc.pid,
                "ui_url": ui,
                "api_url": api,
                "files_url": files,
                "outputs": str(outputs),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            write_state(project_root, state)
            say(f"dashboard: {ui}   (API {api})")
            say(f"outputs:   {files}/  serves {outputs} read-only (the gallery: {files}/index.html)")
            say(f"`recut run` in {project_root} records its runs here; Ctrl-C stops both servers")
            while proc.poll() is None and not stop.wait(0.3):
                pass
            if stop.is_set():
                raise _Stop(getattr(stop, "reason", ""))
            code = int(proc.returncode)
            say(f"the Prefect server exited with code {code}")
        except (KeyboardInterrupt, _Stop) as exc:
            say(f"stopping ({str(exc) or 'Ctrl-C'}) ...")
            code = 0
        finally:
            _ignore_signals()  # a second Ctrl-C must not cut the clean-up short
            remove_state(project_root, os.getpid())
            if srv is not None:
                srv.shutdown()
                srv.server_close()
            if proc is not None:
                stop_group(proc)
    say("dashboard stopped")
    return code
