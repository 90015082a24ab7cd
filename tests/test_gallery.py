"""The gallery (issue 27, section 3): `recut gallery [SPEC…|--all]` and every run write a static
``outputs/index.html`` that shows each output beside its input, with its prompt, method, parameters and
metrics, sortable and filterable by method and metric, opened from disk (relative links only)."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest
from typer.testing import CliRunner

from recut import gallery
from recut.cli import app
from recut.outputs import finish_cached, write_outputs
from recut.plan import build_plan
from recut.runner import StageRunner, run_plan
from recut.spec import load_spec
from recut.store import Store
from tests.conftest import BASE_SPEC, Project

EVIL = """a red <script>alert("x")</script> & 'square'"""

EDIT_SPEC = (
    BASE_SPEC.replace(
        "  - {name: a, prompt: a red square}\n  - {name: b, prompt: a blue square}\n",
        "  - name: a\n"
        "    prompt: 'a red <script>alert(\"x\")</script> & ''square'''\n"
        "  - {name: b, prompt: a blue square, negative_prompt: blurry}\n",
    )
    + "outputs: {formats: [mp4, gif]}\n"
)

SWEEP_SPEC = """\
name: strength sweep
method: sdedit
input:
  video: media/clip.mp4
  frames: {start: 0, count: 4}
model: {profile: tiny-random}
params: {steps: 4, guidance_scale: 3.0}
sweep:
  params.strength: [0.3, 0.6]
  seed: [0]
edits:
  - {name: c, prompt: a green square}
"""


class _Page(HTMLParser):
    """Every tag with its attributes; each <article> (an output) with its tags and text."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, Any]]] = []
        self.articles: list[dict[str, Any]] = []
        self._in: dict[str, Any] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "article":
            self._in = {"attrs": a, "tags": [], "text": ""}
            self.articles.append(self._in)
        elif self._in is not None:
            self._in["tags"].append((tag, a))

    def handle_endtag(self, tag: str) -> None:
        if tag == "article":
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in is not None:
            self._in["text"] += data

    def article(self, spec: str, slug: str) -> dict[str, Any]:
        (hit,) = [a for a in self.articles if a["attrs"]["data-spec"] == spec and a["attrs"]["data-slug"] == slug]
        return hit


_RUNNER: StageRunner | None = None


def _run(specs: list[Path], store: Path) -> Any:
    """Compute in-process (no Prefect, no Ray), then write the outputs as an all-cached `recut run`
    does (finish_cached -> write_outputs -> the gallery)."""
    global _RUNNER
    _RUNNER = _RUNNER or StageRunner()  # one in-process runner for the module: each model loads once
    run_plan(build_plan([load_spec(s) for s in specs], Store(store)), store, _RUNNER)
    plan = build_plan([load_spec(s) for s in specs], Store(store))
    return plan, finish_cached(plan, Store(store))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Project:
    project = Project(tmp_path_factory.mktemp("gallery") / "proj")
    _run([project.spec(EDIT_SPEC, "edit.yaml"), project.spec(SWEEP_SPEC, "sweep.yaml")], project.store)
    return project


def _page(project: Project) -> tuple[str, _Page]:
    text = (project.root / "outputs" / "index.html").read_text()
    return text, _Page(text)


def _summary(project: Project, name: str) -> dict[str, Any]:
    return json.loads((project.root / "outputs" / name / "summary.json").read_text())


# --------------------------------------------------------------------------- what a run writes


def test_a_run_writes_an_entry_per_output_with_prompt_method_and_metrics(built: Project) -> None:
    _, page = _page(built)
    n = 0
    for name in ("edit", "sweep"):
        for slug, o in _summary(built, name)["outputs"].items():
            art = page.article(name, slug)
            n += 1
            assert art["attrs"]["data-method"] == "sdedit" and "sdedit" in art["text"]
            numeric = {k: v for k, v in o["metrics"].items() if isinstance(v, (int, float))}
            assert numeric and json.loads(art["attrs"]["data-metrics"]) == numeric
            shown = {a["data-metric"] for t, a in art["tags"] if t == "tr" and "data-metric" in a}
            assert shown == set(numeric)
            assert "psnr" in art["text"] and "ssim" in art["text"]
    assert len(page.articles) == n == 4
    assert "a blue square" in page.article("edit", "b")["text"] and "blurry" in page.article("edit", "b")["text"]
    assert "a green square" in page.article("sweep", "c__strength-0.3__seed-0")["text"]
    # the key parameters: the spec's params, the swept ones marked
    sweep = page.article("sweep", "c__strength-0.6__seed-0")
    assert "strength=0.6" in sweep["text"] and "steps=4" in sweep["text"] and "guidance_scale=3" in sweep["text"]
    assert any(t == "span" and "swept" in a.get("class", "") for t, a in sweep["tags"])
    assert "strength=0.5" in page.article("edit", "a")["text"]


def test_the_input_plays_beside_the_output(built: Project) -> None:
    root = built.root / "outputs"
    _, page = _page(built)
    a = page.article("edit", "a")
    imgs = [x["src"] for t, x in a["tags"] if t == "img"]
    # the preprocessed input (what the method edited), made from the store at gallery time, and the gif output
    assert imgs[0].startswith(gallery.ASSETS + "/") and imgs[0].endswith(".gif") and (root / imgs[0]).is_file()
    assert imgs[1] == "edit/a.gif"
    # an mp4-only output plays as a looping muted video, with a poster frame for browsers without H.264
    c = page.article("sweep", "c__strength-0.3__seed-0")
    (video,) = [x for t, x in c["tags"] if t == "video"]
    assert video["src"] == "sweep/c__strength-0.3__seed-0.mp4"
    assert {"autoplay", "loop", "muted", "playsinline"} <= set(video)
    assert (root / video["poster"]).is_file()


def test_every_link_is_relative_and_resolves(built: Project) -> None:
    root = built.root / "outputs"
    _, page = _page(built)
    urls = [a[k] for _, a in page.tags for k in ("href", "src", "poster") if a.get(k)]
    assert len(urls) > 20
    for u in urls:
        parsed = urlparse(u)
        assert not parsed.scheme and not parsed.netloc and not u.startswith("/"), u
        assert (root / unquote(parsed.path)).is_file(), u


def test_the_page_and_previews_stay_out_of_git(built: Project) -> None:
    """They are a view of the outputs, rebuilt by every run: tracked, they would conflict on merges."""
    root = built.root / "outputs"
    lines = (root / ".gitignore").read_text().splitlines()
    assert "/index.html" in lines and "/.gallery/" in lines
    gallery.write_gallery(root)
    assert (root / ".gitignore").read_text().splitlines() == lines  # added once


def test_text_is_escaped(built: Project) -> None:
    text, page = _page(built)
    assert "<script>alert" not in text
    assert text.count("<script") == 1  # the page's own script, nothing a prompt smuggled in
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#x27;square&#x27;" in text
    assert EVIL in page.article("edit", "a")["text"]  # and the browser shows the prompt as written


def test_the_page_sorts_and_filters_by_method_and_metric(built: Project) -> None:
    _, page = _page(built)
    ids = {a["id"]: (t, a) for t, a in page.tags if "id" in a}
    for control in ("f-method", "f-spec", "f-sort", "f-dir", "f-op", "f-thr", "f-text"):
        assert control in ids, control
    options = [a for t, a in page.tags if t == "option"]
    assert {"value": "sdedit"} in options
    sort_values = {a["value"] for a in options if "data-dir" in a}
    assert {"psnr", "ssim", "temporal_l1", "flow_warp_error"} <= sort_values
    # the direction follows the metric's registry entry (flow_warp_error: lower is better)
    assert next(a for a in options if a.get("value") == "flow_warp_error")["data-dir"] == "asc"
    assert next(a for a in options if a.get("value") == "psnr")["data-dir"] == "desc"
    for art in page.articles:
        assert {"data-method", "data-metrics", "data-spec", "data-order", "data-text"} <= set(art["attrs"])


def test_sweeps_show_their_contact_sheets(built: Project) -> None:
    _, page = _page(built)
    sheets = [a for t, a in page.tags if t == "img" and a["src"].endswith("contact-c.png")]
    assert [s["src"] for s in sheets] == ["sweep/contact-c.png"]
    c = page.article("sweep", "c__strength-0.6__seed-0")
    assert ("a", {"href": "sweep/contact-c.png"}) in c["tags"]


def test_judge_verdicts_failed_outputs_and_skipped_metrics_render() -> None:
    media = {"kind": "none", "note": "no output file"}
    entry = {
        "spec": "toy",
        "group": "toy",
        "slug": "green",
        "edit": "green",
        "method": "sdedit",
        "point": {},
        "prompt": "a green circle",
        "negative_prompt": "",
        "params": {},
        "swept": [],
        "model": "profile toy",
        "note": "",
        "metrics": {"toy_edit_success": 1.0, "toy_edit_colour": 0.5, "toy_edit_motion": 0.0, "lpips": "skipped: x"},
        "input": media,
        "output": media,
        "files": {},
        "links": {},
        "failed": None,
    }
    failed = dict(entry, slug="blue", metrics={}, failed="stage sample: <boom> & out of memory")
    text = gallery.render([entry, failed], warnings=["outputs/x/summary.json: <bad>"])
    page = _Page(text)
    ok = page.article("toy", "green")
    verdicts = {a["class"] for t, a in ok["tags"] if t == "span" and "verdict" in a.get("class", "")}
    assert verdicts == {"verdict pass", "verdict part", "verdict fail"}
    assert "edit success ✓" in ok["text"] and "skipped: x" in ok["text"]
    assert json.loads(ok["attrs"]["data-metrics"]) == {"toy_edit_success": 1.0, "toy_edit_colour": 0.5,
                                                       "toy_edit_motion": 0.0}  # fmt: skip
    bad = page.article("toy", "blue")
    assert "entry failed" == bad["attrs"]["class"] and "<boom> & out of memory" in bad["text"]
    assert "<boom>" not in text and "<bad>" not in text and "1 warning(s)" in text


# --------------------------------------------------------------------------- runs update it


def test_a_second_run_with_a_changed_edit_updates_the_page(project: Project) -> None:
    spec = project.spec(EDIT_SPEC.replace("outputs: {formats: [mp4, gif]}\n", ""), "edit.yaml")
    _run([spec], project.store)
    _, page = _page(project)
    assert "a blue square" in page.article("edit", "b")["text"]
    spec.write_text(spec.read_text().replace("a blue square", "a yellow square").replace("name: a\n", "name: a2\n"))
    _run([spec], project.store)
    _, page = _page(project)
    assert "a yellow square" in page.article("edit", "b")["text"]
    assert "a blue square" not in "".join(a["text"] for a in page.articles)
    assert {a["attrs"]["data-slug"] for a in page.articles} == {"a2", "b"}  # the renamed edit's own output


def test_a_broken_summary_or_a_gallery_failure_never_fails_a_run(
    built: Project, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = built.store
    specs = [built.root / "specs" / "edit.yaml", built.root / "specs" / "sweep.yaml"]
    broken = built.root / "outputs" / "broken"
    broken.mkdir()
    (broken / "summary.json").write_text('{"outputs": ')
    try:
        with caplog.at_level(logging.WARNING, logger="recut.gallery"):
            _run(specs, store)
        lines = [r.getMessage() for r in caplog.records if r.name == "recut.gallery"]
        assert len(lines) == 1 and "broken/summary.json: unreadable summary" in lines[0]
        assert "\n" not in lines[0]
        text, page = _page(built)
        assert len(page.articles) == 4 and "broken/summary.json" in text  # the others, and a warning on the page
        # a gallery that cannot be written costs one warning line, not the run
        caplog.clear()

        def boom(*a: Any, **k: Any) -> None:
            raise PermissionError("read-only outputs")

        monkeypatch.setattr(gallery, "write_gallery", boom)
        plan = build_plan([load_spec(s) for s in specs], Store(store))
        refs = {n.key: Store(store).get(n.kind, n.key) for n in plan.ordered()}
        with caplog.at_level(logging.WARNING, logger="recut.gallery"):
            summaries = write_outputs(plan, refs, [])
        assert len(summaries) == 2
        (line,) = [r.getMessage() for r in caplog.records if r.name == "recut.gallery"]
        assert line == "gallery not updated: PermissionError: read-only outputs"
    finally:
        monkeypatch.undo()
        shutil.rmtree(broken)
        gallery.write_gallery(built.root / "outputs", lookup=gallery.store_lookup(store))


def test_missing_and_foreign_summaries_are_warnings(tmp_path: Path) -> None:
    root = tmp_path / "outputs"
    (root / "weird").mkdir(parents=True)
    (root / "weird" / "summary.json").write_text("[1, 2]")
    (root / "ok").mkdir()
    (root / "ok" / "a.gif").write_bytes(b"GIF89a")
    (root / "ok" / "summary.json").write_text(
        json.dumps({"method": "m", "spec": "../../gone.yaml", "outputs": {"a": {"files": {"gif": "a.gif"}}}})
    )
    (root / "odd").mkdir()
    (root / "odd" / "summary.json").write_text(json.dumps({"outputs": {"x": {"files": 3}}}))
    paths = [root / "ok" / "summary.json", root / "weird" / "summary.json", root / "no", root / "odd" / "summary.json"]
    w = gallery.write_gallery(root, paths)
    assert w.outputs == 1 and len(w.warnings) == 3
    assert any("odd/summary.json: malformed summary" in line for line in w.warnings)
    art = _Page(w.path.read_text()).article("ok", "a")
    assert (
        "gone.yaml not found" in art["text"]
        and ("img", {"src": "ok/a.gif", "alt": "output a", "loading": "lazy"}) in art["tags"]
    )


# --------------------------------------------------------------------------- the command


def test_recut_gallery_all_and_spec(built: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(built.root)
    monkeypatch.setenv("RECUT_STORE", str(built.store))
    try:
        res = CliRunner().invoke(app, ["gallery", "specs/edit.yaml"])
        assert res.exit_code == 0, res.output
        assert "wrote" in res.stdout and "2 output(s) of 1 spec(s)" in res.stdout
        _, page = _page(built)
        assert {a["attrs"]["data-spec"] for a in page.articles} == {"edit"}
    finally:
        res = CliRunner().invoke(app, ["gallery", "--all"])
    assert res.exit_code == 0, res.output
    assert "4 output(s) of 2 spec(s)" in res.stdout and "file://" in res.stdout
    _, page = _page(built)
    assert {a["attrs"]["data-spec"] for a in page.articles} == {"edit", "sweep"}


def test_recut_gallery_errors(built: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    new = built.spec(EDIT_SPEC, "never-run.yaml")
    try:
        res = CliRunner().invoke(app, ["gallery", str(new)])
        assert res.exit_code == 1
        assert "never-run.yaml: no outputs yet" in res.stderr and "recut run" in res.stderr
        assert "Traceback" not in res.output
    finally:
        new.unlink()
    res = CliRunner().invoke(app, ["gallery"])
    assert res.exit_code == 2 and "--all" in res.stderr
    res = CliRunner().invoke(app, ["gallery", "--all", str(built.root / "specs" / "edit.yaml")])
    assert res.exit_code == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: nope\n")
    res = CliRunner().invoke(app, ["gallery", str(bad)])
    assert res.exit_code == 2 and "bad.yaml:1" in res.stderr
    empty = tmp_path / "empty"
    (empty / ".git").mkdir(parents=True)
    monkeypatch.chdir(empty)
    res = CliRunner().invoke(app, ["gallery", "--all"])
    assert res.exit_code == 1 and "no outputs under" in res.stderr
    assert not (empty / "outputs" / "index.html").exists()


def test_importing_the_cli_stays_cheap() -> None:
    code = "import recut.cli, recut.gallery, sys; print('torch' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "False"
