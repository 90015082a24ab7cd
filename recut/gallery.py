"""A static gallery of every output: ``<outputs root>/index.html``, opened from disk with no server.

The page is built from the ``summary.json`` that every run writes into each spec's output folder
(:mod:`recut.outputs`), so it needs neither the specs to validate nor the models, and it shows an output
whose spec was renamed or deleted since. The prompts and parameters come from the spec file the summary
names (read as plain YAML; a summary that records them itself wins). For each output (edit x sweep point)
it shows the input beside the output (a GIF, or the mp4 playing), the prompt, the method, the parameters
the spec sets, every metric, the toy judge's verdicts and the sweep's contact sheets; a few lines of
inline JavaScript sort and filter by method, spec and metric.

Three layers: :func:`load_summaries` reads the folders, :func:`prepare` makes the previews a browser needs
(under ``<root>/.gallery/``, named by content) and turns the summaries into plain entries, and
:func:`render` (pure) turns the entries into HTML. :func:`write_gallery` does all three;
:func:`refresh_after_run` is what every run calls, and never raises.

Only the standard library and YAML are imported at module level; numpy, OpenCV and PyAV are imported when
a preview has to be made.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from recut.gitignore import ignore_in_git

log = logging.getLogger("recut.gallery")
if log.level == logging.NOTSET:  # a run under Prefect quiets the root logger; a gallery warning still shows
    log.setLevel(logging.WARNING)

INDEX = "index.html"
#: Previews made at gallery time (input GIFs, posters), beside index.html, named by content.
ASSETS = ".gallery"
#: Largest side of a generated preview (pixels); the page shows every clip 256 px wide.
PREVIEW_MAX_SIDE = 256
#: Most frames of a generated preview GIF.
PREVIEW_MAX_FRAMES = 48
#: Unreferenced previews older than this are removed when the whole gallery is rewritten.
PRUNE_AGE_S = 3600.0
#: The toy judge's verdicts (fractions of the named objects judged right; 1 = pass).
VERDICTS = ("toy_edit_success", "toy_edit_colour", "toy_edit_shape", "toy_edit_motion", "toy_unedited_objects_kept")

_WEB_VIDEO = {".mp4", ".m4v", ".webm", ".ogv"}
_WEB_IMAGE = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".svg"}

#: ``lookup(kind, key)``: the folder of a committed store artifact, or None.
Lookup = Callable[[str, str], Any]


# --------------------------------------------------------------------------- reading


@dataclass
class Loaded:
    """One spec's output folder: its summary and, when it can be read, its spec file (plain YAML)."""

    dir: Path
    summary: dict[str, Any]
    spec_path: Path | None = None
    spec: dict[str, Any] | None = None
    spec_note: str = ""


def outputs_root(project_root: Path) -> Path:
    """Where specs write by default (``<project>/outputs``, see recut.plan.default_output_dir)."""
    return Path(project_root) / "outputs"


def find_summaries(root: Path) -> list[Path]:
    """Every ``summary.json`` under ``root`` (the gallery's own folder excluded), in path order."""
    if not root.is_dir():
        return []
    found = [p for p in root.rglob("summary.json") if ASSETS not in p.relative_to(root).parts and p.is_file()]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def load_summaries(paths: Iterable[Path], warnings: list[str]) -> list[Loaded]:
    """Read each ``summary.json``; one that is missing or broken becomes a line in ``warnings``."""
    out: list[Loaded] = []
    seen: set[Path] = set()
    for p in paths:
        p = Path(p)
        if p.resolve() in seen:
            continue
        seen.add(p.resolve())
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            warnings.append(f"{p}: no summary.json; skipped")
            continue
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            warnings.append(f"{p}: unreadable summary ({_one_line(exc)}); skipped")
            continue
        if not isinstance(data, dict) or not isinstance(data.get("outputs", {}), dict):
            warnings.append(f"{p}: not a recut summary (expected an object with `outputs`); skipped")
            continue
        item = Loaded(p.parent, data)
        _read_spec(item)
        out.append(item)
    return out


def _read_spec(item: Loaded) -> None:
    ref = item.summary.get("spec")
    if not isinstance(ref, str) or not ref:
        item.spec_note = "the summary names no spec"
        return
    p = Path(ref) if os.path.isabs(ref) else item.dir / ref
    p = Path(os.path.normpath(p))
    item.spec_path = p
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        item.spec_note = f"spec {p.name} not found (moved or deleted since the run)"
        return
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        item.spec_note = f"spec {p.name} unreadable ({_one_line(exc)})"
        return
    if isinstance(data, dict):
        item.spec = data
    else:
        item.spec_note = f"spec {p.name} is not a YAML mapping"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


# --------------------------------------------------------------------------- previews


def store_lookup(store_root: Path | str | None, refs: dict[str, Any] | None = None) -> Lookup:
    """A lookup into the run's refs (by key), then the store at ``store_root`` (if it exists)."""
    store = None
    if store_root is not None and Path(store_root).is_dir():
        from recut.store import Store  # light: stdlib only

        store = Store(store_root)

    def lookup(kind: str, key: str) -> Any:
        ref = (refs or {}).get(key)
        if ref is None and store is not None:
            ref = store.get(kind, key)
        return ref

    return lookup


def _atomic_bytes_writer(dst: Path, write: Callable[[Path], None]) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.stem}.tmp{os.getpid()}{dst.suffix}")
    try:
        write(tmp)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


def _shrink(frames: Any) -> Any:
    """At most PREVIEW_MAX_FRAMES frames (evenly spread), at most PREVIEW_MAX_SIDE px on a side."""
    import cv2
    import numpy as np

    if len(frames) > PREVIEW_MAX_FRAMES:
        frames = frames[np.linspace(0, len(frames) - 1, PREVIEW_MAX_FRAMES).round().astype(int)]
    h, w = frames.shape[1:3]
    scale = PREVIEW_MAX_SIDE / max(h, w)
    if scale < 1:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        frames = np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])
    return frames


def _gif_from_frames(frames: Any, fps: float, dst: Path) -> None:
    from recut import video

    frames = _shrink(frames)
    _atomic_bytes_writer(dst, lambda tmp: video.write_gif(tmp, frames, fps or 8.0))


def _png_from_frame(frame: Any, dst: Path) -> None:
    from recut import video

    frame = _shrink(frame[None])[0]
    _atomic_bytes_writer(dst, lambda tmp: video.write_image(tmp, frame))


def _content_name(prefix: str, *parts: Any) -> str:
    return f"{prefix}-{hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:20]}"


@dataclass
class Media:
    """What the page shows for one clip: ``kind`` is img, video or none."""

    kind: str = "none"
    src: Path | None = None
    poster: Path | None = None
    note: str = ""


@dataclass
class _Previews:
    root: Path
    lookup: Lookup | None
    warnings: list[str]
    made: set[Path] = field(default_factory=set)
    refs: dict[tuple[str, str], Any] = field(default_factory=dict)

    @property
    def folder(self) -> Path:
        return self.root / ASSETS

    def _use(self, p: Path) -> Path:
        self.made.add(p)
        return p

    def input(self, item: Loaded, stages: dict[str, str], kinds: dict[str, str]) -> Media:
        """The preprocessed input (what the method edited) as a GIF, else the spec's own media."""
        pre = next((k for n, k in stages.items() if kinds.get(k, n) == "preprocess"), None)
        if pre is not None:
            dst = self.folder / f"{_content_name('in', pre)}.gif"
            ref = self._ref("preprocess", pre)
            caption = str(ref.meta.get("caption", "")) if ref is not None else ""
            if dst.is_file():
                return Media("img", self._use(dst), note=caption)
            if ref is not None and Path(ref.file("frames.npy")).is_file():
                try:
                    from recut import video

                    frames = video.load_frames(ref.file("frames.npy"))
                    _gif_from_frames(frames, float(ref.meta.get("fps", 8.0)), dst)
                    return Media("img", self._use(dst), note=caption)
                except Exception as exc:  # noqa: BLE001
                    self.warnings.append(f"{item.dir}: input preview failed ({_one_line(exc)})")
        return self._raw_input(item)

    def _ref(self, kind: str, key: str) -> Any:
        if self.lookup is None:
            return None
        if (kind, key) not in self.refs:
            try:
                self.refs[(kind, key)] = self.lookup(kind, key)
            except Exception as exc:  # noqa: BLE001  (an unreadable store entry costs its preview only)
                self.warnings.append(f"store entry {kind}/{key[:12]}: {_one_line(exc)}")
                self.refs[(kind, key)] = None
        return self.refs[(kind, key)]

    def _raw_input(self, item: Loaded) -> Media:
        inp = (item.spec or {}).get("input")
        if not isinstance(inp, dict) or item.spec_path is None:
            return Media(note="input not available")
        base = item.spec_path.parent
        for kind in ("video", "image", "images"):
            val = inp.get(kind)
            if val is None:
                continue
            first = val[0] if isinstance(val, list) and val else val
            if not isinstance(first, str):
                break
            p = Path(os.path.normpath(base / os.path.expanduser(first)))
            if not p.is_file():
                return Media(note=f"input {first} not found")
            suffix = p.suffix.lower()
            if kind == "video" and suffix in _WEB_VIDEO:
                return Media("video", p)
            if kind != "video" and suffix in _WEB_IMAGE:
                return Media("img", p)
            st = p.stat()
            dst = self.folder / f"{_content_name('raw', str(p), st.st_size, st.st_mtime_ns)}"
            dst = dst.with_suffix(".gif" if kind == "video" else ".png")
            try:
                if not dst.is_file():
                    from recut import video

                    if kind == "video":
                        frames, fps = video.read_video(p, count=PREVIEW_MAX_FRAMES)
                        _gif_from_frames(frames, fps, dst)
                    else:
                        _png_from_frame(video.read_image(p), dst)
                return Media("img", self._use(dst))
            except Exception as exc:  # noqa: BLE001
                self.warnings.append(f"{p}: input preview failed ({_one_line(exc)})")
                return Media(note=f"input {p.name} cannot be previewed")
        if isinstance(inp.get("toy"), dict):
            return Media(note="toy scene (not in the store; run the spec to see it)")
        return Media(note="input not available")

    def output(self, item: Loaded, files: dict[str, Path], sample: str | None) -> Media:
        """The output GIF if the run wrote one, else the mp4 (with a first-frame poster), else the npy."""
        if "gif" in files:
            return Media("img", files["gif"])
        if "mp4" in files:
            mp4 = files["mp4"]
            st = mp4.stat()
            dst = self.folder / f"{_content_name('poster', sample or str(mp4), st.st_size)}.png"
            if not dst.is_file():
                try:
                    from recut import video

                    frames, _ = video.read_video(mp4, count=1)
                    _png_from_frame(frames[0], dst)
                except Exception as exc:  # noqa: BLE001
                    self.warnings.append(f"{mp4}: poster failed ({_one_line(exc)})")
                    return Media("video", mp4)
            return Media("video", mp4, self._use(dst))
        if "npy" in files:
            npy = files["npy"]
            st = npy.stat()
            dst = self.folder / f"{_content_name('out', sample or str(npy), st.st_size)}.gif"
            try:
                if not dst.is_file():
                    from recut import video

                    _gif_from_frames(video.load_frames(npy), 8.0, dst)
                return Media("img", self._use(dst))
            except Exception as exc:  # noqa: BLE001
                self.warnings.append(f"{npy}: preview failed ({_one_line(exc)})")
        return Media(note="no output file")


# --------------------------------------------------------------------------- entries


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d} if prefix else {}
    out: dict[str, Any] = {}
    for k, v in d.items():
        name = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict) and v:
            out.update(_flatten(v, name))
        else:
            out[name] = v
    return out


def _edit_of(spec: dict[str, Any] | None, name: str) -> tuple[int, dict[str, Any] | None]:
    edits = (spec or {}).get("edits")
    if not isinstance(edits, list):
        return 10**6, None
    for i, e in enumerate(edits):
        if isinstance(e, dict) and (e.get("name") or f"edit-{i}") == name:
            return i, e
    return 10**6, None


def _point_order(spec: dict[str, Any] | None, point: dict[str, Any]) -> list[int]:
    sweep = (spec or {}).get("sweep")
    if not isinstance(sweep, dict):
        return []
    order = []
    for path, values in sweep.items():
        try:
            order.append(list(values).index(point.get(path)))
        except (TypeError, ValueError):
            order.append(10**6)
    return order


def _params(spec: dict[str, Any] | None, edit: dict[str, Any] | None, point: dict[str, Any]) -> dict[str, Any]:
    """The parameters the spec sets for this output: its params, the edit's overrides, the sweep point."""
    out = _flatten((spec or {}).get("params") or {})
    out.update(_flatten((edit or {}).get("params") or {}))
    for path, v in point.items():
        out[path.removeprefix("params.")] = v
    if spec and "seed" in spec and "seed" not in point:
        out.setdefault("seed", spec["seed"])
    return out


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _same_drive(p: Path, root: Path) -> bool:
    try:
        os.path.relpath(p, root)
        return True
    except ValueError:
        return False


def _rel(p: Path, root: Path) -> str:
    """``p`` as a URL relative to ``root`` (the folder of index.html)."""
    try:
        rel = os.path.relpath(p, root)
    except ValueError:  # another drive: no relative path exists
        return Path(p).resolve().as_uri()
    return quote(rel.replace(os.sep, "/"))


def prepare(loaded: list[Loaded], root: Path, lookup: Lookup | None, warnings: list[str]) -> dict[str, Any]:
    """The page's data: ``{"entries": [...], "sheets": [...], "previews": {paths}}``; makes the previews.

    Every path in an entry is a URL relative to ``root``; every file it names exists.
    """
    root = Path(root)
    pv = _Previews(root, lookup, warnings)
    entries: list[dict[str, Any]] = []
    sheets: list[dict[str, Any]] = []
    for item in loaded:
        try:
            got, got_sheets = _item_entries(item, root, pv, warnings)
        except Exception as exc:  # noqa: BLE001  (a malformed summary costs its own entries only)
            warnings.append(
                f"{item.dir / 'summary.json'}: malformed summary ({type(exc).__name__}: {_one_line(exc)}); skipped"
            )
            continue
        entries += got
        sheets += got_sheets
    entries.sort(key=lambda e: e["order"])
    for e in entries:
        del e["order"]
    return {"entries": entries, "sheets": sheets, "previews": set(pv.made)}


def _item_entries(item: Loaded, root: Path, pv: _Previews, warnings: list[str]) -> tuple[list[Any], list[Any]]:
    """The entries (one per output, and one per failed output) and contact sheets of one summary."""
    entries: list[dict[str, Any]] = []
    sheets: list[dict[str, Any]] = []
    s, spec = item.summary, item.spec
    spec_label = str((spec or {}).get("name") or (item.spec_path.stem if item.spec_path else item.dir.name))
    group = os.path.relpath(item.dir, root).replace(os.sep, "/") if _same_drive(item.dir, root) else str(item.dir)
    method = str(s.get("method") or (spec or {}).get("method") or "?")
    kinds = {st.get("key"): st.get("kind") for st in s.get("stages") or [] if isinstance(st, dict)}
    links = {"summary": _rel(item.dir / "summary.json", root)}
    if item.spec_path is not None and item.spec_path.is_file():
        links["spec"] = _rel(item.spec_path, root)
    sheet_of: dict[str, str] = {}
    for c in s.get("contact_sheets") or []:
        img = _file(item.dir, c.get("image")) if isinstance(c, dict) else None
        if img is None:
            continue
        url = _rel(img, root)
        sheet_of[str(c.get("edit"))] = url
        rows, cols = c.get("rows") or {}, c.get("columns") or {}
        sheets.append(
            {
                "spec": spec_label,
                "group": group,
                "method": method,
                "edit": str(c.get("edit")),
                "image": url,
                "rows": str(rows.get("param", "")),
                "columns": str(cols.get("param", "")),
            }
        )
    for slug, o in (s.get("outputs") or {}).items():
        if not isinstance(o, dict):
            warnings.append(f"{item.dir / 'summary.json'}: output {slug!r} is not an object; skipped")
            continue
        edit_name = str(o.get("edit") or slug)
        point = o.get("point") if isinstance(o.get("point"), dict) else {}
        idx, edit = _edit_of(spec, edit_name)
        stages = o.get("stages") if isinstance(o.get("stages"), dict) else {}
        files = {fmt: f for fmt, name in (o.get("files") or {}).items() if (f := _file(item.dir, name))}
        sample = next((k for n, k in stages.items() if kinds.get(k, n) == "sample"), None)
        inp = pv.input(item, stages, kinds)
        outp = pv.output(item, files, sample)
        prompt = o.get("prompt", (edit or {}).get("prompt"))
        note = item.spec_note or ("" if edit is not None or spec is None else "edit no longer in the spec")
        metrics = o.get("metrics") if isinstance(o.get("metrics"), dict) else {}
        entries.append(
            {
                "spec": spec_label,
                "group": group,
                "slug": str(slug),
                "edit": edit_name,
                "method": method,
                "point": point,
                "prompt": None if prompt is None else str(prompt),
                "negative_prompt": str(o.get("negative_prompt", (edit or {}).get("negative_prompt", "")) or ""),
                "params": o.get("params") if isinstance(o.get("params"), dict) else _params(spec, edit, point),
                "swept": sorted(p.removeprefix("params.") for p in point),
                "model": _model_label((spec or {}).get("model")),
                "note": note,
                "metrics": metrics,
                "input": _media_json(inp, root),
                "output": _media_json(outp, root),
                "files": {fmt: _rel(f, root) for fmt, f in files.items()},
                "links": dict(links, **({"contact sheet": sheet_of[edit_name]} if edit_name in sheet_of else {})),
                "failed": None,
                "order": (group, idx, _point_order(spec, point), str(slug)),
            }
        )
    for f in s.get("failed") or []:
        if not isinstance(f, dict):
            continue
        label = str(f.get("output", "?"))
        idx, edit = _edit_of(spec, label.split("[")[0])
        entries.append(
            {
                "spec": spec_label,
                "group": group,
                "slug": label,
                "edit": label,
                "method": method,
                "point": {},
                "prompt": None if edit is None else str(edit.get("prompt", "")),
                "negative_prompt": "",
                "params": _params(spec, edit, {}),
                "swept": [],
                "model": _model_label((spec or {}).get("model")),
                "note": item.spec_note,
                "metrics": {},
                "input": _media_json(Media(note="failed"), root),
                "output": _media_json(Media(note="failed"), root),
                "files": {},
                "links": links,
                "failed": f"stage {f.get('stage', '?')}: {f.get('error', '')}",
                "order": (group, idx, [10**6], label),
            }
        )
    return entries, sheets


def _file(folder: Path, name: Any) -> Path | None:
    if not isinstance(name, str) or not name:
        return None
    p = Path(name) if os.path.isabs(name) else folder / name
    return p if p.is_file() else None


def _model_label(model: Any) -> str:
    if isinstance(model, dict):
        for k in ("profile", "repo", "path"):
            if model.get(k):
                return f"{k} {model[k]}"
    return ""


def _media_json(m: Media, root: Path) -> dict[str, str]:
    d = {"kind": m.kind, "note": m.note}
    if m.src is not None:
        d["src"] = _rel(m.src, root)
    if m.poster is not None:
        d["poster"] = _rel(m.poster, root)
    return d


# --------------------------------------------------------------------------- rendering (pure)


def _e(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _fmt(v: Any) -> str:
    if _is_num(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)
    if isinstance(v, str):
        return v
    return json.dumps(v, default=str)


def _short(v: Any, n: int = 80) -> str:
    s = _fmt(v)
    return s if len(s) <= n else s[: n - 1] + "…"


def _media_html(m: dict[str, str], caption: str, alt: str) -> str:
    if m["kind"] == "img":
        body = f'<img src="{_e(m["src"])}" alt="{_e(alt)}" loading="lazy">'
    elif m["kind"] == "video":
        poster = f' poster="{_e(m["poster"])}"' if m.get("poster") else ""
        body = f'<video src="{_e(m["src"])}"{poster} autoplay loop muted playsinline controls></video>'
    else:
        body = f'<div class="missing">{_e(m.get("note") or "not available")}</div>'
    note = f'<span class="note">{_e(m["note"])}</span>' if m["kind"] != "none" and m.get("note") else ""
    return f"<figure>{body}<figcaption>{caption}{note}</figcaption></figure>"


def _verdicts_html(metrics: dict[str, Any]) -> str:
    parts = []
    for k in VERDICTS:
        v = metrics.get(k)
        if not _is_num(v):
            continue
        label = k.removeprefix("toy_").replace("_", " ")
        cls, mark = ("pass", "✓") if v >= 1 else ("fail", "✗") if v <= 0 else ("part", f"{v:.2g}")
        parts.append(f'<span class="verdict {cls}" title="{_e(k)} = {_e(_fmt(v))}">{_e(label)} {mark}</span>')
    return f'<p class="verdicts">judge: {" ".join(parts)}</p>' if parts else ""


def _entry_html(i: int, e: dict[str, Any]) -> str:
    nums = {k: v for k, v in e["metrics"].items() if _is_num(v)}
    text = " ".join(str(x) for x in (e["spec"], e["slug"], e["method"], e["prompt"] or "", e["group"])).lower()
    attrs = {
        "id": f"o{i}",
        "class": "entry failed" if e["failed"] else "entry",
        "data-order": str(i),
        "data-method": e["method"],
        "data-spec": e["group"],
        "data-edit": e["edit"],
        "data-slug": e["slug"],
        "data-metrics": json.dumps(nums, sort_keys=True),
        "data-text": text,
    }
    head = (
        f'<header><h3>{_e(e["spec"])} <span class="slug">{_e(e["slug"])}</span></h3>'
        f'<span class="method">{_e(e["method"])}</span></header>'
    )
    parts = [head]
    if e["failed"]:
        parts.append(f'<p class="error">failed: {_e(e["failed"])}</p>')
    else:
        files = " ".join(f'<a href="{_e(u)}">{_e(fmt)}</a>' for fmt, u in e["files"].items())
        parts.append(
            '<div class="media">'
            + _media_html(e["input"], "input", f"input of {e['slug']}")
            + _media_html(e["output"], f"output {files}", f"output {e['slug']}")
            + "</div>"
        )
    if e["prompt"] is not None:
        parts.append(f'<p class="prompt"><b>prompt</b> {_e(e["prompt"])}</p>')
    if e["negative_prompt"]:
        parts.append(f'<p class="prompt neg"><b>negative</b> {_e(e["negative_prompt"])}</p>')
    if e["note"]:
        parts.append(f'<p class="note">{_e(e["note"])}</p>')
    params = [("model", e["model"])] if e["model"] else []
    params += list(e["params"].items())
    if params:
        items = "".join(
            f'<span class="param{" swept" if k in e["swept"] else ""}" title="{_e(_fmt(v))}">'
            f"<b>{_e(k)}</b>={_e(_short(v))}</span>"
            for k, v in params
        )
        parts.append(f'<p class="params">{items}</p>')
    parts.append(_verdicts_html(e["metrics"]))
    if e["metrics"]:
        rows = []
        for k, v in sorted(e["metrics"].items()):
            if _is_num(v):
                rows.append(f'<tr data-metric="{_e(k)}"><th>{_e(k)}</th><td>{_e(_fmt(v))}</td></tr>')
            else:
                rows.append(
                    f'<tr class="skipped"><th>{_e(k)}</th><td title="{_e(_fmt(v))}">{_e(_short(v, 60))}</td></tr>'
                )
        parts.append(f'<table class="metrics">{"".join(rows)}</table>')
    links = " · ".join(f'<a href="{_e(u)}">{_e(name)}</a>' for name, u in e["links"].items())
    parts.append(f'<p class="links">{links}</p>')
    attr = " ".join(f'{k}="{_e(v)}"' for k, v in attrs.items())
    return f"<article {attr}>{''.join(p for p in parts if p)}</article>"


def _options(values: Iterable[tuple[str, str]], blank: str) -> str:
    opts = [f'<option value="">{_e(blank)}</option>']
    opts += [f'<option value="{_e(v)}">{_e(label)}</option>' for v, label in values]
    return "".join(opts)


def render(
    entries: list[dict[str, Any]],
    sheets: list[dict[str, Any]] | None = None,
    warnings: list[str] | None = None,
    title: str = "recut gallery",
    higher_is_better: dict[str, bool] | None = None,
) -> str:
    """The page, from :func:`prepare`'s entries (pure: no file is read). Every text is escaped; the
    data the script sorts and filters on lives in ``data-*`` attributes (no inline JSON to break out of)."""
    sheets = sheets or []
    better = higher_is_better or {}
    methods = sorted({e["method"] for e in entries})
    specs = sorted({(e["group"], e["spec"]) for e in entries})
    metric_names = sorted({k for e in entries for k, v in e["metrics"].items() if _is_num(v)})
    metric_opts = "".join(
        f'<option value="{_e(m)}" data-dir="{"asc" if better.get(m) is False else "desc"}">'
        f"{_e(m)}{' ↓ better' if better.get(m) is False else ' ↑ better' if better.get(m) else ''}</option>"
        for m in metric_names
    )
    n_specs = len({e["group"] for e in entries})
    controls = (
        '<form id="controls" onsubmit="return false">'
        f'<label>method <select id="f-method">{_options(((m, m) for m in methods), "all")}</select></label>'
        f'<label>spec <select id="f-spec">{_options(((g, f"{s} ({g})") for g, s in specs), "all")}</select></label>'
        '<label>search <input id="f-text" type="search" placeholder="prompt, edit, spec"></label>'
        f'<label>sort by <select id="f-sort"><option value="">spec order</option>{metric_opts}</select></label>'
        '<select id="f-dir" aria-label="direction"><option value="desc">high → low</option>'
        '<option value="asc">low → high</option></select>'
        '<label>keep <select id="f-op" aria-label="comparison"><option value="ge">≥</option>'
        '<option value="le">≤</option></select>'
        '<input id="f-thr" type="number" step="any" placeholder="value" aria-label="threshold"></label>'
        '<span id="count"></span></form>'
    )
    warn = ""
    if warnings:
        warn = '<details class="warnings"><summary>{} warning(s)</summary><ul>{}</ul></details>'.format(
            len(warnings), "".join(f"<li>{_e(w)}</li>" for w in warnings)
        )
    body = "".join(_entry_html(i, e) for i, e in enumerate(entries))
    if not entries:
        body = '<p class="empty">No outputs yet: run a spec (<code>recut run SPEC</code>).</p>'
    sheet_html = ""
    if sheets:
        figs = "".join(
            f'<figure class="sheet" data-method="{_e(s["method"])}" data-spec="{_e(s["group"])}">'
            f'<a href="{_e(s["image"])}"><img src="{_e(s["image"])}" alt="contact sheet {_e(s["edit"])}" '
            f'loading="lazy"></a><figcaption>{_e(s["spec"])} <b>{_e(s["edit"])}</b>: rows '
            f"{_e(s['rows'])}, columns {_e(s['columns'])}</figcaption></figure>"
            for s in sheets
        )
        sheet_html = f'<section id="sheets"><h2>Sweeps (contact sheets)</h2>{figs}</section>'
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="generator" content="recut gallery">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{_e(title)}</h1>"
        f'<p class="sub">{len(entries)} output(s) from {n_specs} spec(s). Written by <code>recut gallery</code>; '
        "every <code>recut run</code> rewrites it.</p>"
        f'{warn}{controls}<main id="entries">{body}</main>{sheet_html}'
        f"<script>{_JS}</script></body></html>\n"
    )


_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1em 2em;color:#222;background:#fafafa}
h1{margin:.2em 0}.sub{color:#666;margin-top:0}
#controls{display:flex;flex-wrap:wrap;gap:.6em 1.2em;align-items:center;padding:.6em;background:#fff;
border:1px solid #ddd;border-radius:6px;position:sticky;top:0;z-index:1}
#count{color:#666}
#entries{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:1em;margin-top:1em}
.entry{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.6em .8em}
.entry.failed{border-color:#c33}.entry[hidden]{display:none}
.entry header{display:flex;justify-content:space-between;align-items:baseline}
.entry h3{margin:0;font-size:1.05em}.slug{font-family:monospace;color:#555}
.method{background:#eef;border-radius:4px;padding:0 .4em;font-family:monospace}
.media{display:flex;gap:.6em}figure{margin:.4em 0}
.media img,.media video{width:256px;height:auto;image-rendering:pixelated;background:#eee;display:block}
.missing{width:256px;height:128px;display:flex;align-items:center;justify-content:center;background:#eee;
color:#888;text-align:center}
figcaption{color:#555;font-size:.9em}figcaption a{margin-left:.3em}.note{color:#a60;margin-left:.4em}
.prompt{margin:.3em 0}.neg{color:#666}p.note{margin:.2em 0}
.params{font-family:monospace;font-size:.85em;display:flex;flex-wrap:wrap;gap:.2em .8em;margin:.3em 0}
.param.swept{background:#ffd}
.verdict{border-radius:4px;padding:0 .35em;margin-right:.2em}.pass{background:#cfc}.fail{background:#fcc}
.part{background:#ffd}
table.metrics{border-collapse:collapse;font-size:.85em}table.metrics th{text-align:left;font-weight:normal;
padding-right:1em;font-family:monospace}table.metrics td{text-align:right;font-family:monospace}
tr.skipped td{color:#999;text-align:left}tr.sorted{background:#ffd;font-weight:bold}
.error{color:#c33;font-family:monospace;white-space:pre-wrap}
#sheets figure{display:inline-block;margin:.5em;vertical-align:top}#sheets img{max-width:100%}
.warnings{color:#a60}
"""

_JS = """
(function () {
  var list = document.getElementById('entries');
  var cards = Array.prototype.slice.call(list.querySelectorAll('.entry'));
  var $ = function (id) { return document.getElementById(id); };
  cards.forEach(function (c) { c._m = JSON.parse(c.getAttribute('data-metrics') || '{}'); });
  function value(c, m) { var v = c._m[m]; return typeof v === 'number' ? v : null; }
  function apply() {
    var method = $('f-method').value, spec = $('f-spec').value, q = $('f-text').value.trim().toLowerCase();
    var m = $('f-sort').value, dir = $('f-dir').value === 'asc' ? 1 : -1;
    var op = $('f-op').value, t = $('f-thr').value === '' ? null : Number($('f-thr').value);
    var shown = 0;
    cards.forEach(function (c) {
      var ok = (!method || c.getAttribute('data-method') === method) &&
        (!spec || c.getAttribute('data-spec') === spec) && (!q || c.getAttribute('data-text').indexOf(q) >= 0);
      if (ok && m && t !== null) { var v = value(c, m); ok = v !== null && (op === 'ge' ? v >= t : v <= t); }
      c.hidden = !ok; if (ok) shown++;
      Array.prototype.forEach.call(c.querySelectorAll('tr[data-metric]'), function (r) {
        r.classList.toggle('sorted', r.getAttribute('data-metric') === m);
      });
    });
    var order = cards.slice().sort(function (a, b) {
      var oa = Number(a.getAttribute('data-order')), ob = Number(b.getAttribute('data-order'));
      if (!m) return oa - ob;
      var va = value(a, m), vb = value(b, m);
      if (va === null || vb === null) return va === vb ? oa - ob : (va === null ? 1 : -1);
      return va === vb ? oa - ob : dir * (va - vb);
    });
    order.forEach(function (c) { list.appendChild(c); });
    Array.prototype.forEach.call(document.querySelectorAll('#sheets .sheet'), function (f) {
      f.hidden = (method && f.getAttribute('data-method') !== method) || (spec && f.getAttribute('data-spec') !== spec);
    });
    $('count').textContent = shown + ' of ' + cards.length + ' shown';
  }
  $('f-sort').addEventListener('change', function () {
    var o = this.options[this.selectedIndex];
    if (o.getAttribute('data-dir')) $('f-dir').value = o.getAttribute('data-dir');
    apply();
  });
  ['f-method', 'f-spec', 'f-dir', 'f-op'].forEach(function (id) { $(id).addEventListener('change', apply); });
  ['f-text', 'f-thr'].forEach(function (id) { $(id).addEventListener('input', apply); });
  apply();
})();
"""


# --------------------------------------------------------------------------- writing


def _higher_is_better() -> dict[str, bool]:
    try:
        from recut.registry import metrics

        out: dict[str, bool] = {}
        for m in metrics().values():
            for name in m.reports:
                out[name] = m.higher_is_better
        return out
    except Exception:  # noqa: BLE001  (a broken plug-in must not cost the page)
        return {}


@dataclass
class Written:
    path: Path
    outputs: int
    specs: int
    warnings: list[str]


def write_gallery(
    root: Path,
    summaries: Iterable[Path] | None = None,
    lookup: Lookup | None = None,
    prune: bool | None = None,
) -> Written:
    """Write ``<root>/index.html`` from ``summaries`` (default: every summary.json under ``root``).

    ``lookup`` finds store artifacts for the input previews (:func:`store_lookup`). With ``prune``
    (default: when the whole root is shown) old previews no entry uses any more are removed.
    """
    root = Path(root).resolve()
    full = summaries is None
    paths = find_summaries(root) if summaries is None else [Path(p) for p in summaries]
    warnings: list[str] = []
    loaded = load_summaries(paths, warnings)
    data = prepare(loaded, root, lookup, warnings)
    title = f"recut gallery: {root.parent.name}/{root.name}" if root.parent.name else "recut gallery"
    page = render(data["entries"], data["sheets"], warnings, title, _higher_is_better())
    root.mkdir(parents=True, exist_ok=True)
    dst = root / INDEX
    tmp = dst.with_name(f".{INDEX}.tmp{os.getpid()}")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, dst)
    ignore_in_git(root, GIT_IGNORED)
    if prune if prune is not None else full:
        _prune(root / ASSETS, data["previews"])
    return Written(dst, len(data["entries"]), len({e["group"] for e in data["entries"]}), warnings)


#: ``<root>/.gitignore`` lines that keep the page and its previews out of git: they are a view,
#: rebuilt by every run from the outputs (which DVC versions), and would conflict on every merge.
GIT_IGNORED = ("/index.html", "/.gallery/")


def _prune(folder: Path, keep: set[Path]) -> None:
    if not folder.is_dir():
        return
    now = time.time()
    for p in folder.iterdir():
        try:
            if p.is_file() and p not in keep and now - p.stat().st_mtime > PRUNE_AGE_S:
                p.unlink()
        except OSError:
            pass


def refresh_after_run(plan: Any, refs: dict[str, Any]) -> None:
    """Rewrite the gallery of every outputs root the run wrote to (whole root, plus any spec folder
    outside it). Never raises: a problem is one warning line, and the run goes on."""
    try:
        roots: dict[Path, list[Path]] = {}
        for sp in plan.specs:
            from recut.spec import find_project_root

            proj = sp.spec.root or find_project_root(Path(sp.path).parent)
            root = outputs_root(proj).resolve()
            extra = roots.setdefault(root, [])
            out_dir = Path(sp.output_dir).resolve()
            if not out_dir.is_relative_to(root) and (out_dir / "summary.json").is_file():
                extra.append(out_dir / "summary.json")
        store_root = None
        for ref in refs.values():
            store_root = Path(ref.path).parents[2]  # <store>/<kind>/<key[:2]>/<key>
            break
        lookup = store_lookup(store_root, refs)
        for root, extra in roots.items():
            paths = find_summaries(root) + extra
            w = write_gallery(root, paths, lookup, prune=True)
            for line in w.warnings:
                log.warning("gallery: %s", line)
    except Exception as exc:  # noqa: BLE001
        log.warning("gallery not updated: %s: %s", type(exc).__name__, _one_line(exc))
