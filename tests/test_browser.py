"""The dashboard and the gallery in a real browser (issue 27, sections 2 and 3): headless Chromium through
Playwright looks at a run recorded by a `recut dashboard` started here, its flow run page, the Cached
states of a second run, an output's artifact page (the frame strip loads, the metrics are on the page),
the gallery opened from disk (its pictures and videos load, the search filters the outputs), and
(section 1) a schedule that `recut schedule` registered on the same dashboard: the Deployments page lists
it, and its deployment page shows its cron, active, and its next run.

Set-up: Playwright comes from PyPI (`pip install playwright`, the `browser` extra) and Chromium from the
system (the Debian `chromium` package, or $RECUT_CHROMIUM); Playwright's own browser download is not
used. What is missing is installed when it can be (pip; apt-get as root), else the test is skipped with
the reason. Screenshots go to the test's tmp folder and, when $RECUT_SCREENSHOTS names a folder, small
copies of the README's go there too (dashboard-run.png, dashboard-cached.png, dashboard-artifact.png,
gallery.png, schedules.png).
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Project
from tests.dashboard_util import Dashboard, pid_alive, recut_cmd

pytestmark = pytest.mark.slow

TOY_SPEC = """\
name: recolour a toy circle
method: sdedit
input:
  toy:
    objects:
      - {shape: circle, colour: red, size: large, motion: right}
    background: {kind: plain, colour: white}
    frames: 8
    seed: 3
model: {profile: toy}
seed: 0
params: {strength: 0.6, steps: 10, guidance_scale: 5.0}
edits:
  - {name: green, prompt: a large green circle moving right over a plain white background}
  - {name: blue, prompt: a large blue circle moving right over a plain white background}
evaluate:
  metrics: [clip_text, toy_edit_success, toy_unedited_psnr, toy_trajectory_error]
  trajectory: {path: truth}
outputs: {formats: [mp4]}
"""
#: A schedule over the toy spec (the README's nightly re-evaluation), registered with `recut schedule --file`.
SCHEDULES = """\
schedules:
  - name: nightly-reevaluation
    description: Every spec under specs/, each night; nearly free when nothing changed.
    cron: "0 3 * * *"
    timezone: UTC
    specs: ["**/*.yaml"]
"""
#: Largest README screenshot (bytes).
README_MAX_BYTES = 150_000


# --------------------------------------------------------------------------- set-up


def _run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def _playwright_or_skip() -> None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        try:
            r = _run([sys.executable, "-m", "pip", "install", "-q", "playwright>=1.40"], 900)
        except (OSError, subprocess.TimeoutExpired) as exc:
            pytest.skip(f"Playwright is not installed and pip could not install it: {exc}")
        if r.returncode != 0:
            pytest.skip(f"Playwright is not installed and `pip install playwright` failed: {r.stderr[-300:]}")


def _find_chromium() -> str | None:
    env = os.environ.get("RECUT_CHROMIUM")
    if env:
        return env if Path(env).is_file() else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _chromium_or_skip() -> str:
    found = _find_chromium()
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("no Chromium: install the `chromium` package (apt-get install chromium) or set RECUT_CHROMIUM")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = [apt, "install", "-y", "--no-install-recommends", "chromium"]
    try:
        r = subprocess.run(install, capture_output=True, text=True, timeout=1200, env=env)
        if r.returncode != 0:  # a stale package list: update once, then try again
            subprocess.run([apt, "update"], capture_output=True, text=True, timeout=600, env=env)
            r = subprocess.run(install, capture_output=True, text=True, timeout=1200, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"no Chromium, and apt-get could not install it: {exc}")
    found = _find_chromium()
    if not found:
        pytest.skip(f"no Chromium, and `apt-get install chromium` failed (no network?): {r.stderr[-300:]}")
    return found


@pytest.fixture(scope="module")
def browser() -> Any:
    _playwright_or_skip()
    exe = _chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=exe, headless=True, args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        )
        try:
            yield b
        finally:
            b.close()


# --------------------------------------------------------------------------- screenshots


def _shrink(src: Path, dst: Path) -> None:
    """A copy of ``src`` under :data:`README_MAX_BYTES`: a palette PNG, narrower until it fits."""
    from PIL import Image

    img = Image.open(src).convert("RGB")
    width = img.width
    while True:
        im = img if width == img.width else img.resize((width, round(img.height * width / img.width)), Image.LANCZOS)
        im.quantize(colors=96, method=Image.Quantize.MEDIANCUT).save(dst, optimize=True)
        if dst.stat().st_size < README_MAX_BYTES or width < 500:
            return
        width = int(width * 0.85)


class Shots:
    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.copy_to = Path(os.environ["RECUT_SCREENSHOTS"]) if os.environ.get("RECUT_SCREENSHOTS") else None

    def take(self, page: Any, name: str, readme: bool = False, **kw: Any) -> Path:
        path = self.folder / f"{name}.png"
        page.screenshot(path=str(path), **kw)
        if readme and self.copy_to is not None:
            self.copy_to.mkdir(parents=True, exist_ok=True)
            _shrink(path, self.copy_to / f"{name}.png")
        return path


# --------------------------------------------------------------------------- the test


def _visible_text(page: Any, text: str, timeout: float = 60_000) -> None:
    page.get_by_text(text, exact=False).first.wait_for(state="visible", timeout=timeout)


def test_dashboard_and_gallery_in_chromium(browser: Any, tmp_path: Path) -> None:
    project = Project(tmp_path / "proj")
    spec = project.spec(TOY_SPEC, "toy-recolour.yaml")
    schedules = project.root / "specs" / "schedules.yaml"
    schedules.write_text(SCHEDULES)
    shots = Shots(tmp_path / "screenshots")
    t0 = time.monotonic()
    dash = Dashboard(project.root, tmp_path / "prefect-home").start()
    register: subprocess.Popen[str] | None = None
    try:
        first = dash.run(str(spec))
        assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]
        second = dash.run(str(spec))  # every stage cached
        assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-3000:]
        summary = json.loads(second.stdout)
        metrics = summary["specs"][0]["outputs"]["green"]["metrics"]
        computed_run, cached_run = dash.flow_runs()
        t_runs = time.monotonic()
        # `recut schedule` finds the project's dashboard as `recut run` does (its state file); it registers
        # while the browser looks at the runs
        register = subprocess.Popen(
            recut_cmd("schedule", "--file", str(schedules), "--json"),
            cwd=project.root,
            env=dash.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

        page = browser.new_page(viewport={"width": 1280, "height": 860})
        # 1. the flow run page: its name and tags from the spec, its stages' log lines
        page.goto(f"{dash.ui}/runs/flow-run/{computed_run.id}")
        _visible_text(page, computed_run.name)
        assert computed_run.name.startswith("toy-recolour·sdedit·toy-seed3·")
        for tag in ("method:sdedit", "spec:toy-recolour", "input:toy-seed3"):
            _visible_text(page, tag)
        _visible_text(page, "sample[green] [")
        _visible_text(page, "computed in")
        page.wait_for_timeout(1500)  # the run graph settles
        shots.take(page, "dashboard-run", readme=True)

        # 2. the cached run: its stages in the Cached state
        page.goto(f"{dash.ui}/runs/flow-run/{cached_run.id}")
        _visible_text(page, cached_run.name)
        page.get_by_text("Task Runs", exact=True).first.click()
        page.get_by_text("Cached", exact=True).first.wait_for(state="visible", timeout=60_000)
        assert page.get_by_text("Cached", exact=True).count() >= 5
        shots.take(page, "dashboard-cached", readme=True)

        # 3. an output's artifact: the frame strip loads (from the outputs file server), metrics, prompt
        (art,) = [a for a in dash.artifacts(cached_run.id) if a["key"] == "recut-toy-recolour-green"]
        page.goto(f"{dash.ui}/artifacts/artifact/{art['id']}")
        strip = page.locator(f'img[src^="{dash.files}/.dashboard/strip-"]').first
        strip.wait_for(state="visible", timeout=60_000)
        loaded = (
            "s => { const i = document.querySelector(`img[src^='${s}']`); return i && i.complete && i.naturalWidth }"
        )
        page.wait_for_function(loaded, arg=f"{dash.files}/.dashboard/strip-", timeout=30_000)
        assert strip.evaluate("i => i.naturalWidth") > 0
        text = page.inner_text("body")
        for name, value in metrics.items():
            assert name in text
            if isinstance(value, float):
                assert f"{value:.4g}" in text, (name, value)
        assert "a large green circle moving right over a plain white background" in text
        assert (
            page.get_by_role("link", name="video (mp4)").get_attribute("href") == f"{dash.files}/toy-recolour/green.mp4"
        )
        shots.take(page, "dashboard-artifact", readme=True)

        # 4. the gallery, from disk: every picture and video loads, and the search filters
        gallery = project.root / "outputs" / "index.html"
        page.set_viewport_size({"width": 1280, "height": 760})
        page.goto(gallery.as_uri())
        page.wait_for_load_state("load")
        page.wait_for_function(
            "() => Array.from(document.images).every(i => i.complete)"
            " && Array.from(document.querySelectorAll('video')).every(v => v.readyState >= 2)",
            timeout=30_000,
        )
        images = page.evaluate("Array.from(document.images).map(i => [i.getAttribute('src'), i.naturalWidth])")
        videos = page.evaluate("Array.from(document.querySelectorAll('video')).map(v => [v.currentSrc, v.videoWidth])")
        assert images and all(w > 0 for _, w in images), images
        assert len(videos) == 2 and all(w > 0 for _, w in videos), videos  # the outputs' mp4s play
        cards = page.locator(".entry")
        assert cards.count() == 2
        shown = (
            "() => Array.from(document.querySelectorAll('.entry')).filter(e => !e.hidden)"
            ".map(e => e.id || e.innerText.slice(0, 40))"
        )
        page.fill("#f-text", "blue circle")
        page.wait_for_function(f"({shown})().length === 1", timeout=10_000)
        assert page.locator(".entry:not([hidden])").first.inner_text().count("blue") >= 1
        page.fill("#f-text", "")
        page.select_option("#f-method", "sdedit")
        page.wait_for_function(f"({shown})().length === 2", timeout=10_000)
        shots.take(page, "gallery", readme=True)
        page.close()

        # 5. the schedule: `recut-scheduled/nightly-reevaluation` under Deployments, its cron and next run
        t_sched = time.monotonic()
        reg_out, reg_err = register.communicate(timeout=120)
        assert register.returncode == 0, reg_out[-2000:] + reg_err[-3000:]
        registered = json.loads(reg_out)
        assert registered["server"] == dash.api
        (row,) = registered["schedules"]
        assert (row["name"], row["schedule"], row["status"]) == ("nightly-reevaluation", "cron 0 3 * * *", "active")
        next_run = datetime.datetime.fromisoformat(row["next_run"])
        assert (next_run.hour, next_run.minute, next_run.utcoffset()) == (3, 0, datetime.timedelta(0))
        page = browser.new_page(viewport={"width": 1280, "height": 600}, timezone_id="UTC")
        page.goto(f"{dash.ui}/deployments")
        link = page.get_by_role("link", name="nightly-reevaluation", exact=True)
        link.wait_for(state="visible", timeout=60_000)
        _visible_text(page, "recut-scheduled")  # the deployment's flow: recut-scheduled/nightly-reevaluation
        link.click()
        page.wait_for_url(f"**/deployments/deployment/{row['id']}", timeout=30_000)
        _visible_text(page, "At 03:00 AM every day")  # the cron, in the Schedules panel
        assert page.locator('[role="switch"]').first.get_attribute("aria-checked") == "true"  # active
        # (the next run's card appears once the server's scheduler loop has run, which has no fixed time:
        # the next run itself is checked in `recut schedule`'s JSON above)
        _visible_text(page, "recut-schedules:specs/schedules.yaml")  # the tag of the file it came from
        assert "recut-scheduled" in page.inner_text("body")
        shots.take(page, "schedules", readme=True)
        page.close()
        print(
            f"dashboard up {dash.seconds:.1f} s, runs {t_runs - t0 - dash.seconds:.1f} s, "
            f"browser {time.monotonic() - t_runs:.1f} s (schedule {time.monotonic() - t_sched:.1f} s); "
            f"screenshots in {shots.folder}"
        )
    finally:
        if register is not None and register.poll() is None:
            register.kill()
            register.communicate()
        # Ctrl-C stops the dashboard and the servers it started
        code = dash.stop(signal.SIGINT)
    assert code == 0, dash.output()
    assert not pid_alive(int(dash.state["server_pid"]))
    assert not (project.root / ".recut" / "dashboard.json").exists()
