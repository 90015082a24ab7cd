"""What a run shows on the Prefect dashboard: its name and tags, and one markdown artifact per output.

- **Name and tags** (:func:`run_name_and_tags`): ``<spec>·<method>·<input>·<key>`` for one spec, where
  ``<spec>`` is the spec file's name without ``.yaml``, ``<input>`` the input file's name (``toy-seed3`` for
  a toy scene) and ``<key>`` six hex digits of a hash of every stage key of the run (the same specs with
  the same inputs give the same key; a changed prompt or input gives another). A batch is
  ``batch·<spec>+<spec>…·<methods>·<key>``. Tags: ``recut``, ``method:<m>``, ``spec:<name>``,
  ``input:<file>`` for every spec (their union for a batch), plus ``batch`` and ``force:<stage>`` when
  they apply.
- **An artifact per output** (:func:`output_markdown`, key ``recut-<spec>-<output>``): a strip of frames
  of the output beside its metrics, the edit prompt, the method, and links to the mp4 (and GIF), the
  summary and the gallery. The Prefect UI shows pictures only by URL, so the strip (a PNG written under
  ``<outputs>/.dashboard/``, named by the sample's key) and the links point at the read-only file server
  of `recut dashboard` (:mod:`recut.dashboard`), found through its state file in the project, or at
  ``$RECUT_FILES_URL`` serving ``$RECUT_FILES_ROOT``. Without a file server the artifact still has the
  prompt, the metrics and the paths, and says how to see the frames.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recut.gitignore import ignore_in_git

#: Where the frame strips go, under the outputs root (kept out of git like the gallery's previews).
STRIPS = ".dashboard"
#: Frames in a strip, and the height of each (pixels; small frames are scaled up, nearest-neighbour).
STRIP_FRAMES = 4
STRIP_HEIGHT = 72
SEP = "·"


# --------------------------------------------------------------------------- names and tags


def input_label(spec: Any) -> str:
    inp = spec.input
    if inp.video is not None:
        return Path(inp.video).name
    if inp.image is not None:
        return Path(inp.image).name
    if inp.images:
        first = Path(inp.images[0]).name
        return first if len(inp.images) == 1 else f"{first}+{len(inp.images) - 1}"
    if inp.toy is not None:
        seed = getattr(inp.toy, "seed", None)
        return f"toy-seed{seed}" if seed is not None else "toy"
    return "input"


def spec_label(path: str) -> str:
    return Path(path).name.removesuffix(".yaml").removesuffix(".yml")


def run_key(plan: Any) -> str:
    """Six hex digits naming what the run computes: a hash of every stage key of the plan."""
    keys = sorted(n.key for n in plan.ordered())
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()[:6]


def run_name_and_tags(plan: Any, force: list[str] | None = None) -> tuple[str, list[str]]:
    """The flow run's name and tags for ``plan`` (see the module's docstring)."""
    specs = [(spec_label(sp.path), sp.spec.method, input_label(sp.spec)) for sp in plan.specs]
    key = run_key(plan)
    tags = {"recut"}
    for name, method, inp in specs:
        tags |= {f"method:{method}", f"spec:{name}", f"input:{inp}"}
    tags |= {f"force:{f}" for f in force or ()}
    if len(specs) == 1:
        name, method, inp = specs[0]
        run_name = SEP.join((name, method, inp, key))
    else:
        tags.add("batch")
        names = [s[0] for s in specs]
        head = "+".join(names) if len(names) <= 3 else f"{names[0]}+{len(names) - 1} more"
        methods = "+".join(sorted({s[1] for s in specs}))
        run_name = SEP.join(("batch", head, methods, key))
    return run_name[:200], sorted(tags)


def artifact_key(spec_path: str, slug: str) -> str:
    """``recut-<spec>-<output>`` in the characters Prefect allows in a key (lowercase, digits, dashes)."""
    raw = f"recut-{spec_label(spec_path)}-{slug}".lower()
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", raw)).strip("-")[:120]


# --------------------------------------------------------------------------- the file server


@dataclass(frozen=True)
class Files:
    """A file server: ``url`` serves the folder ``root``."""

    url: str
    root: Path

    def link(self, path: Path | str) -> str | None:
        """The URL of ``path`` if it lies under the served folder, else None."""
        p = Path(os.path.realpath(path))
        root = Path(os.path.realpath(self.root))
        if not p.is_relative_to(root):
            return None
        return f"{self.url.rstrip('/')}/{urllib.parse.quote(p.relative_to(root).as_posix())}"


def _listening(url: str, timeout: float = 0.3) -> bool:
    u = urllib.parse.urlsplit(url)
    try:
        with socket.create_connection((u.hostname or "127.0.0.1", u.port or 80), timeout=timeout):
            return True
    except OSError:
        return False


def find_files(project_root: Path) -> Files | None:
    """The file server for a project's outputs: ``$RECUT_FILES_URL`` (serving ``$RECUT_FILES_ROOT``,
    default ``<project>/outputs``), else the one of a running `recut dashboard` (its state file)."""
    env = os.environ.get("RECUT_FILES_URL")
    if env:
        return Files(env, Path(os.environ.get("RECUT_FILES_ROOT") or Path(project_root) / "outputs"))
    from recut.dashboard import read_state

    state = read_state(project_root)
    if not state or not state.get("files_url") or not state.get("outputs"):
        return None
    if not _listening(str(state["files_url"])):
        return None
    return Files(str(state["files_url"]), Path(str(state["outputs"])))


# --------------------------------------------------------------------------- frame strips


def write_strip(frames_npy: Path, dst: Path) -> Path:
    """A PNG of :data:`STRIP_FRAMES` frames spread over the clip, side by side (kept if it exists)."""
    if dst.is_file():
        return dst
    import cv2
    import numpy as np

    from recut import video

    frames = video.load_frames(frames_npy)
    pick = np.linspace(0, len(frames) - 1, min(STRIP_FRAMES, len(frames))).round().astype(int)
    cells = []
    for f in frames[pick]:
        h, w = f.shape[:2]
        scale = STRIP_HEIGHT / h
        interp = cv2.INTER_NEAREST if scale > 1 else cv2.INTER_AREA
        cells.append(cv2.resize(f, (max(1, round(w * scale)), STRIP_HEIGHT), interpolation=interp))
        cells.append(np.full((STRIP_HEIGHT, 2, 3), 255, np.uint8))
    strip = np.concatenate(cells[:-1], axis=1)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}.png")
    if not cv2.imwrite(str(tmp), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {tmp}")
    os.replace(tmp, dst)
    ignore_in_git(dst.parent.parent, [f"/{STRIPS}/"])
    return dst


# --------------------------------------------------------------------------- the markdown


def _cell(v: Any) -> str:
    text = f"{v:.4g}" if isinstance(v, float) else str(v)
    return text.replace("|", "\\|").replace("\n", " ")


def _text(v: Any) -> str:
    return str(v).replace("\n", " ").replace("|", "\\|").replace("<", "&lt;")


def output_markdown(
    spec_label_: str,
    slug: str,
    output: dict[str, Any],
    info: dict[str, Any],
    strip_url: str | None,
    links: dict[str, str],
) -> str:
    """The artifact of one output: the frame strip beside its metrics, the prompt, the method and links.

    ``output`` is the summary's entry (``metrics``, ``files``, ``point``); ``info`` holds ``prompt``,
    ``negative_prompt``, ``method``, ``model``, ``sample_key``, ``frames`` (the strip's caption);
    ``links`` maps a label to a URL, in order."""
    lines = [f"### {_text(spec_label_)} {SEP} {_text(slug)}", ""]
    metrics = output.get("metrics") or {}
    if strip_url:
        image = f"![frames of {_text(slug)}]({strip_url})"
    else:
        image = "(no picture: `recut dashboard` serves the outputs so that the frames show here)"
    rows = list(metrics.items()) or [("(no metrics)", "")]
    lines += ["| frames | metric | value |", "|:--|:--|--:|"]
    for i, (k, v) in enumerate(rows):
        lines.append(f"| {image if i == 0 else ''} | {_cell(k)} | {_cell(v)} |")
    if info.get("frames"):
        lines += ["", f"*{_text(info['frames'])}*"]
    lines += ["", f"**Prompt:** {_text(info.get('prompt') or '(none)')}"]
    if info.get("negative_prompt"):
        lines += ["", f"**Negative prompt:** {_text(info['negative_prompt'])}"]
    facts = [f"**method:** {_text(info.get('method', ''))}"]
    if info.get("model"):
        facts.append(f"**model:** {_text(info['model'])}")
    point = output.get("point") or {}
    if point:
        facts.append("**sweep point:** " + ", ".join(f"{_text(k)}={_cell(v)}" for k, v in point.items()))
    if info.get("sample_key"):
        facts.append(f"**sample key:** `{info['sample_key'][:16]}`")
    lines += ["", f" {SEP} ".join(facts)]
    if links:
        lines += ["", f" {SEP} ".join(f"[{label}]({url})" for label, url in links.items())]
    return "\n".join(lines) + "\n"


def _model_label(model: Any) -> str:
    if model.profile:
        return f"profile {model.profile}"
    if model.repo:
        return str(model.repo) + (f"@{model.revision}" if model.revision else "")
    return Path(model.path).name if model.path else ""


def _uri(path: Path | str, files: Files | None) -> str:
    if files is not None:
        url = files.link(path)
        if url:
            return url
    return Path(path).resolve().as_uri()


def publish_outputs(plan: Any, refs: dict[str, Any], summaries: list[dict[str, Any]]) -> list[str]:
    """One markdown artifact per output of ``summaries`` (the flows call this inside a flow run).
    Returns the artifact keys written; a problem with one output is skipped (the run goes on)."""
    from prefect.artifacts import create_markdown_artifact

    from recut.gallery import INDEX, outputs_root
    from recut.outputs import _sample_stage
    from recut.spec import find_project_root

    kinds = {n.stage.name: n.kind for n in plan.ordered()}
    by_path = {sp.path: sp for sp in plan.specs}
    written: list[str] = []
    files_by_root: dict[Path, Files | None] = {}
    for summary in summaries:
        sp = by_path.get(summary["spec"])
        if sp is None:
            continue
        proj = Path(sp.spec.root or find_project_root(Path(sp.path).parent))
        if proj not in files_by_root:
            files_by_root[proj] = find_files(proj)
        files = files_by_root[proj]
        out_root = outputs_root(proj)
        chains = {inst.slug: (inst, chain) for inst, chain in sp.chains.items()}
        names = sp.spec.edit_names()
        for slug, output in summary["outputs"].items():
            if slug not in chains:
                continue
            inst, chain = chains[slug]
            sample_key = chain[_sample_stage(chain, kinds)]
            edit = sp.spec.edits[names.index(inst.edit)]
            strip_url, caption = None, ""
            ref = refs.get(sample_key)
            if ref is not None:
                try:
                    strip = write_strip(ref.file("frames.npy"), out_root / STRIPS / f"strip-{sample_key[:20]}.png")
                    strip_url = files.link(strip) if files is not None else None
                    n = int(ref.meta.get("frames", 0) or 0)
                    caption = f"{min(STRIP_FRAMES, n) if n else STRIP_FRAMES} frames of {n or '?'}, evenly spaced"
                except Exception:  # noqa: BLE001  (no strip costs the picture only)
                    strip_url = None
            links: dict[str, str] = {}
            for fmt, label in (("mp4", "video (mp4)"), ("gif", "GIF"), ("npy", "frames (npy)")):
                if fmt in output.get("files", {}):
                    links[label] = _uri(output["files"][fmt], files)
            links["summary.json"] = _uri(Path(sp.output_dir) / "summary.json", files)
            gallery = out_root / INDEX
            if gallery.is_file():
                links["gallery"] = _uri(gallery, files)
            info = {
                "prompt": edit.prompt,
                "negative_prompt": edit.negative_prompt,
                "method": sp.spec.method,
                "model": _model_label(sp.spec.model),
                "sample_key": sample_key,
                "frames": caption,
            }
            md = output_markdown(spec_label(sp.path), slug, output, info, strip_url, links)
            key = artifact_key(sp.path, slug)
            try:
                create_markdown_artifact(
                    markdown=md, key=key, description=f"{spec_label(sp.path)} {SEP} {slug}: {edit.prompt[:80]}"
                )
            except Exception:  # noqa: BLE001
                continue
            written.append(key)
    return written
