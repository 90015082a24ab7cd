"""The dashboard shows the work (issue 27, section 2): runs named and tagged from their specs, cached
stages in Prefect's Cached state with their keys, recut's log lines on the server, a markdown artifact
per output with its frames (served read-only by `recut dashboard`), metrics, prompt and links;
`recut dashboard --port N` serves a UI that calls the API on N, and stopping it stops what it started.

The slow tests start a real `recut dashboard` (its own Prefect database) and real `recut run`s that find
it through the project's state file; the browser test (tests/test_browser.py) looks at the same pages."""

from __future__ import annotations

import http.client
import http.server
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from recut import artifacts, dashboard, prefect_env
from recut.plan import build_plan
from recut.spec import load_spec
from recut.store import Store
from tests.conftest import BASE_SPEC, Project
from tests.dashboard_util import Dashboard, pid_alive, port_open

# --------------------------------------------------------------------------- names and tags


def _plan(*paths: Path, store: Path) -> Any:
    return build_plan([load_spec(p) for p in paths], Store(store))


def test_run_name_and_tags_come_from_the_spec(project: Project) -> None:
    spec = project.spec(BASE_SPEC, "recolour.yaml")
    name, tags = artifacts.run_name_and_tags(_plan(spec, store=project.store))
    parts = name.split("·")
    assert parts[:3] == ["recolour", "sdedit", "clip.mp4"], name
    assert len(parts[3]) == 6 and int(parts[3], 16) >= 0
    assert tags == ["input:clip.mp4", "method:sdedit", "recut", "spec:recolour"]
    # the key follows what is computed: same spec, same key; another prompt, another key
    assert artifacts.run_name_and_tags(_plan(spec, store=project.store))[0] == name
    other = project.spec(BASE_SPEC.replace("a red square", "a green square"), "recolour.yaml")
    assert artifacts.run_name_and_tags(_plan(other, store=project.store))[0].split("·")[3] != parts[3]
    # --force is a tag
    assert "force:sample" in artifacts.run_name_and_tags(_plan(spec, store=project.store), ["sample"])[1]


def test_a_batch_is_named_for_its_specs_with_the_union_of_their_tags(project: Project) -> None:
    a = project.spec(BASE_SPEC, "a.yaml")
    toy = BASE_SPEC.replace(
        "  video: media/clip.mp4\n  frames: {start: 0, count: 4}\n",
        "  toy:\n    objects: [{shape: circle, colour: red}]\n"
        "    frames: 4\n    width: 32\n    height: 32\n    seed: 7\n",
    )
    b = project.spec(toy, "b.yaml")
    name, tags = artifacts.run_name_and_tags(_plan(a, b, store=project.store))
    assert name.startswith("batch·a+b·sdedit·"), name
    assert {"recut", "batch", "spec:a", "spec:b", "input:clip.mp4", "input:toy-seed7", "method:sdedit"} == set(tags)


def test_artifact_keys_are_what_prefect_accepts() -> None:
    assert artifacts.artifact_key("/p/specs/Toy_Recolour.yaml", "green__strength-0.5") == (
        "recut-toy-recolour-green-strength-0-5"
    )


# --------------------------------------------------------------------------- the markdown


def test_the_artifact_shows_frames_beside_metrics_the_prompt_and_links() -> None:
    md = artifacts.output_markdown(
        "toy-recolour",
        "green",
        {"metrics": {"toy_edit_success": 1.0, "clip_text": 0.81234, "lpips": "skipped: no | weights"}, "point": {}},
        {"prompt": "a large green circle", "method": "sdedit", "model": "profile toy", "sample_key": "ab" * 32},
        "http://127.0.0.1:4201/.dashboard/strip-abab.png",
        {"video (mp4)": "http://127.0.0.1:4201/toy/green.mp4", "gallery": "http://127.0.0.1:4201/index.html"},
    )
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    # the strip and the first metric share a row: the picture stands beside the metrics
    assert rows[1].startswith(
        "| ![frames of green](http://127.0.0.1:4201/.dashboard/strip-abab.png) | toy_edit_success | 1 |"
    )
    assert "| clip_text | 0.8123 |" in md and "skipped: no \\| weights" in md
    assert "**Prompt:** a large green circle" in md
    assert (
        "[video (mp4)](http://127.0.0.1:4201/toy/green.mp4)" in md
        and "[gallery](http://127.0.0.1:4201/index.html)" in md
    )
    bare = artifacts.output_markdown("s", "o", {"metrics": {}}, {"prompt": "p", "method": "m"}, None, {})
    assert "recut dashboard" in bare and "![" not in bare  # says how to see the frames


def test_links_only_point_into_the_served_folder(tmp_path: Path) -> None:
    root = tmp_path / "outputs"
    (root / "a b").mkdir(parents=True)
    files = artifacts.Files("http://127.0.0.1:9999", root)
    assert files.link(root / "a b" / "x.mp4") == "http://127.0.0.1:9999/a%20b/x.mp4"
    assert files.link(tmp_path / "elsewhere.mp4") is None


# --------------------------------------------------------------------------- the file server


@pytest.fixture
def served(tmp_path: Path) -> Any:
    root = tmp_path / "outputs"
    (root / "spec").mkdir(parents=True)
    (root / "spec" / "a.mp4").write_bytes(b"0123456789")
    (root / "index.html").write_text("<h1>gallery</h1>")
    (root / "empty").mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the browser")
    (tmp_path / "secret_dir").mkdir()
    (tmp_path / "secret_dir" / "s.txt").write_text("no")
    (root / "link-out").symlink_to(secret)
    (root / "dir-out").symlink_to(tmp_path / "secret_dir")
    (root / "link-in").symlink_to(root / "spec" / "a.mp4")
    srv, _ = dashboard.serve_outputs(root, 0)
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def _get(port: int, path: str, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)  # the path goes out as written
    conn.putheader("Host", (headers or {}).pop("Host", f"127.0.0.1:{port}"))
    for k, v in (headers or {}).items():
        conn.putheader(k, v)
    conn.endheaders()
    r = conn.getresponse()
    body = r.read()
    conn.close()
    return r.status, body


def test_the_file_server_serves_the_outputs_read_only(served: int) -> None:
    assert _get(served, "/spec/a.mp4") == (200, b"0123456789")
    assert _get(served, "/") == (200, b"<h1>gallery</h1>")  # a folder's index.html
    assert _get(served, "/link-in") == (200, b"0123456789")  # a link that stays inside
    assert _get(served, "/spec/a.mp4", headers={"Range": "bytes=2-4"}) == (206, b"234")
    assert _get(served, "/spec/a.mp4", "HEAD")[0] == 200
    for method in ("POST", "PUT", "DELETE"):
        assert _get(served, "/spec/a.mp4", method)[0] == 405


@pytest.mark.parametrize(
    "path",
    [
        "/../secret.txt",
        "/spec/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/spec/%2E%2E/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/link-out",  # a symbolic link to a file outside
        "/dir-out/s.txt",  # through a linked folder outside
        "//etc/passwd",
        "/etc/passwd",
        "/spec/a.mp4%00.png",
        "/..\\secret.txt",
        "/empty/",  # a folder without index.html: no listing
        "/nothing-here",
    ],
)
def test_the_file_server_refuses_everything_outside(served: int, path: str) -> None:
    status, body = _get(served, path)
    assert status == 404, (path, status)
    assert b"not for the browser" not in body and b"root:" not in body


def test_the_file_server_answers_only_to_local_host_names(served: int) -> None:
    assert _get(served, "/spec/a.mp4", headers={"Host": f"localhost:{served}"})[0] == 200
    assert _get(served, "/spec/a.mp4", headers={"Host": "evil.example:80"})[0] == 403  # DNS rebinding


def test_resolve_inside_keeps_to_the_root(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "f").write_text("x")
    assert dashboard.resolve_inside(tmp_path / "root", "/f?x=1#y") == (tmp_path / "root" / "f").resolve()
    assert dashboard.resolve_inside(tmp_path / "root", "/../root/f") is None


# --------------------------------------------------------------------------- finding the dashboard


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/api/health" else 404)
        self.end_headers()
        self.wfile.write(b"true")

    def log_message(self, *args: Any) -> None:
        pass


def test_recut_run_finds_a_dashboard_on_any_port_by_its_state_file(tmp_path: Path, monkeypatch) -> None:
    for var in ("PREFECT_API_URL", "RECUT_DASHBOARD", "RECUT_ROOT", "PREFECT_LOGGING_TO_API_ENABLED"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(prefect_env, "_profile_api_url", lambda: None)
    proj = tmp_path / "proj"
    (proj / ".git").mkdir(parents=True)
    monkeypatch.chdir(proj)
    srv = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        ui = f"http://127.0.0.1:{srv.server_port}"
        dashboard.write_state(proj, {"pid": 1, "ui_url": ui, "api_url": ui + "/api"})
        assert prefect_env.configure() == f"server {ui}/api (dashboard at {ui})"
        assert os.environ["PREFECT_API_URL"] == ui + "/api"
        assert os.environ["PREFECT_LOGGING_TO_API_ENABLED"] == "true"  # a server records: logs go there
    finally:
        srv.shutdown()
        srv.server_close()
    # a stale state file (nothing answers) and no server: ephemeral, and no logs sent
    monkeypatch.delenv("PREFECT_API_URL")
    monkeypatch.delenv("PREFECT_LOGGING_TO_API_ENABLED")
    monkeypatch.setattr(prefect_env, "DEFAULT_DASHBOARD", "http://127.0.0.1:9")
    assert prefect_env.configure().startswith("ephemeral")
    assert os.environ["PREFECT_LOGGING_TO_API_ENABLED"] == "false"


def test_the_state_file_is_found_by_the_project_root_rule(project: Project, monkeypatch) -> None:
    from recut.spec import find_project_root

    monkeypatch.delenv("RECUT_ROOT", raising=False)
    for start in (project.root, project.root / "specs", project.root / "media"):
        assert dashboard.find_root(start) == find_project_root(start) == project.root.resolve()


def test_a_busy_port_is_one_line_and_starts_nothing(tmp_path: Path) -> None:
    import socket

    lines: list[str] = []
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert dashboard.run(tmp_path, port, 0, say=lines.append) == 1
    assert lines == [f"error: port {port} on 127.0.0.1 is in use (another dashboard?); choose one with --port"]
    assert not (tmp_path / ".recut").exists()


def test_the_server_environment_points_the_ui_at_the_port() -> None:
    env = dashboard.prefect_env(4321, {})
    assert env["PREFECT_UI_API_URL"] == env["PREFECT_API_URL"] == "http://127.0.0.1:4321/api"
    assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"


# --------------------------------------------------------------------------- a real dashboard


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A `recut dashboard` in a throwaway project, with the spec run twice against it (computed, cached)."""
    base = tmp_path_factory.mktemp("dash")
    project = Project(base / "proj")
    spec = project.spec(BASE_SPEC, "edit.yaml")
    dash = Dashboard(project.root, base / "prefect-home").start()
    try:
        t0 = time.monotonic()
        first = dash.run(str(spec))
        assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]
        t1 = time.monotonic()
        second = dash.run(str(spec))
        assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-3000:]
        print(f"dashboard up in {dash.seconds:.1f} s; runs {t1 - t0:.1f} s and {time.monotonic() - t1:.1f} s")
        yield {"dash": dash, "project": project, "first": json.loads(first.stdout), "second": json.loads(second.stdout)}
    finally:
        dash.stop()


@pytest.mark.slow
def test_dashboard_port_sets_the_ui_api_url(live: dict[str, Any]) -> None:
    dash: Dashboard = live["dash"]
    import urllib.request

    with urllib.request.urlopen(dash.ui + "/ui-settings", timeout=10) as r:
        assert json.load(r)["api_url"] == dash.api  # not :4200
    state = json.loads((live["project"].root / ".recut" / "dashboard.json").read_text())
    assert state["api_url"] == dash.api and state["outputs"] == str(live["project"].root / "outputs")
    assert live["first"]["prefect"].startswith(f"server {dash.api}")  # `recut run` found it by the state file


@pytest.mark.slow
def test_runs_are_named_and_tagged_from_the_spec(live: dict[str, Any]) -> None:
    runs = live["dash"].flow_runs()
    assert len(runs) == 2
    for r in runs:
        name, method, inp, key = r.name.split("·")
        assert (name, method, inp, len(key)) == ("edit", "sdedit", "clip.mp4", 6)
        assert set(r.tags) == {"recut", "method:sdedit", "spec:edit", "input:clip.mp4"}
        assert r.state.is_completed()
    assert runs[0].name == runs[1].name  # the same work, the same key


@pytest.mark.slow
def test_cached_stages_are_in_the_cached_state_with_their_key(live: dict[str, Any]) -> None:
    first, second = live["dash"].flow_runs()
    computed = live["dash"].task_runs(first.id)
    cached = live["dash"].task_runs(second.id)
    assert len(computed) == len(cached) == 5
    assert {t.state.name for t in computed} == {"Completed"}
    assert {t.state.name for t in cached} == {"Cached"} and all(t.state.is_completed() for t in cached)
    keys = {s["label"]: s["key"] for s in live["second"]["stages"]}
    for t in cached:
        assert t.state.message == f"cache hit {keys[t.name]}"


@pytest.mark.slow
def test_logs_reach_the_server(live: dict[str, Any]) -> None:
    dash: Dashboard = live["dash"]
    first, second = dash.flow_runs()
    lines = [(log.name, log.message) for log in dash.logs(first.id)]
    texts = [m for _, m in lines]
    assert any("stage(s): 0 in the store, 5 to compute" in m for m in texts)
    assert any(m.startswith("sample[a] [") and " computed in " in m for m in texts)  # the stages' lines
    assert any(m.startswith("edit.yaml: 2 output(s) in ") for m in texts)
    assert any(m.startswith("artifacts: recut-edit-a") for m in texts)
    assert any("cached (store hit, key " in log.message for log in dash.logs(second.id))
    # other libraries stay quiet: only recut's loggers (and Prefect's own, at its quiet level)
    assert all(n.startswith(("recut.", "prefect")) for n, _ in lines), {n for n, _ in lines}


def test_the_progress_sink_logs_each_stage(monkeypatch) -> None:
    """Every stage's end, and its steps (first, last, and at most every LOG_EVERY_S between), are lines of
    the ``recut.run`` logger, whichever sink displays them."""
    import logging

    from recut import progress

    got: list[str] = []

    class Grab(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            got.append(record.getMessage())

    log = logging.getLogger("recut.run")
    handler = Grab()
    log.addHandler(handler)
    monkeypatch.setattr(log, "level", logging.INFO)
    monkeypatch.setattr(progress, "LOG_EVERY_S", 3600.0)
    shown: list[tuple[Any, ...]] = []

    class Shown:
        def start(self, *a: Any) -> None:
            shown.append(("start", *a))

        def step(self, *a: Any) -> None:
            shown.append(("step", *a))

        def done(self, *a: Any) -> None:
            shown.append(("done", *a))

    try:
        progress.set_sink(Shown())
        sink = progress.sink()
        sink.start("k" * 64, "sample[a]", "sample")
        for i in range(1, 11):
            sink.step("k" * 64, i, 10)
        sink.done("k" * 64, "computed", 1.25)
        cached = progress.sink()
        cached.start("c" * 64, "preprocess", "preprocess")
        cached.done("c" * 64, "cached", 0.0)
    finally:
        progress.set_sink(None)
        log.removeHandler(handler)
    assert len(shown) == 14  # the display sink sees every event
    kk = "k" * 12
    assert got == [
        f"sample[a] [{kk}]: step 1/10",
        f"sample[a] [{kk}]: step 10/10",
        f"sample[a] [{kk}]: computed in 1.25 s",
        f"preprocess [{'c' * 12}]: cached (store hit, key {'c' * 64})",
    ]


@pytest.mark.slow
def test_an_artifact_per_output_with_frames_metrics_prompt_and_links(live: dict[str, Any]) -> None:
    dash: Dashboard = live["dash"]
    _, second = dash.flow_runs()
    arts = {a["key"]: a for a in dash.artifacts(second.id)}
    assert {"recut-edit-a", "recut-edit-b", "recut-outputs"} <= set(arts)
    files = dash.files
    metrics = live["second"]["specs"][0]["outputs"]["a"]["metrics"]
    md = arts["recut-edit-a"]["data"]
    assert arts["recut-edit-a"]["type"] == "markdown"
    assert "**Prompt:** a red square" in md
    for name in metrics:
        assert f"| {name} |" in md
    assert f"[video (mp4)]({files}/edit/a.mp4)" in md and f"[gallery]({files}/index.html)" in md
    strip = md.split("![frames of a](", 1)[1].split(")", 1)[0]
    assert strip.startswith(files + "/.dashboard/strip-")
    import urllib.request

    with urllib.request.urlopen(strip, timeout=10) as r:
        assert r.headers["Content-Type"] == "image/png" and r.read(8) == b"\x89PNG\r\n\x1a\n"
    with urllib.request.urlopen(f"{files}/edit/a.mp4", timeout=10) as r:
        assert r.status == 200 and r.headers["Content-Type"] == "video/mp4"


@pytest.mark.slow
def test_stopping_the_dashboard_stops_both_servers(tmp_path: Path) -> None:
    project = Project(tmp_path / "proj")
    dash = Dashboard(project.root, tmp_path / "prefect-home").start()
    server_pid = int(dash.state["server_pid"])
    files_port = int(dash.state["files_url"].rsplit(":", 1)[1])
    assert pid_alive(server_pid) and port_open(dash.port) and port_open(files_port)
    t0 = time.monotonic()
    assert dash.stop(signal.SIGTERM) == 0, dash.output()
    print(f"stopped in {time.monotonic() - t0:.1f} s")
    deadline = time.monotonic() + 10
    while pid_alive(server_pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not pid_alive(server_pid)  # no orphan uvicorn
    with pytest.raises(ProcessLookupError):
        os.killpg(server_pid, 0)  # nor anything else of its process group
    assert not port_open(dash.port) and not port_open(files_port)
    assert not (project.root / ".recut" / "dashboard.json").exists()
    assert "dashboard stopped" in dash.output()
