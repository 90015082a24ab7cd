"""Copy a spec's results from the store into its output folder (driver side).

For every edit (and sweep point): ``<slug>.mp4`` (and ``.npy``/``.gif`` when
asked), one ``metrics.json`` for the spec, and ``summary.json`` describing the
run.  Every file is written to a temporary name and renamed, so a killed run
never leaves a half-written output.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from recut.plan import SpecPlan
from recut.store import ArtifactRef


def _atomic_copy(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _atomic_write(dst: Path, text: str) -> None:
    tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, dst)


def _sample_stage(chain: dict[str, str], kinds: dict[str, str]) -> str:
    """The last stage of kind ``sample`` in a chain is the output video."""
    samples = [name for name in chain if kinds.get(name) == "sample"]
    if not samples:
        raise RuntimeError("the engine declares no sample stage")
    return samples[-1]


def materialize(sp: SpecPlan, refs: dict[str, ArtifactRef], kinds: dict[str, str]) -> dict[str, Any]:
    out_dir = sp.output_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    formats = sp.spec.outputs.formats
    outputs: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    for inst, chain in sp.chains.items():
        sample = refs[chain[_sample_stage(chain, kinds)]]
        files: dict[str, str] = {}
        if "mp4" in formats:
            dst = out_dir / f"{inst.slug}.mp4"
            _atomic_copy(sample.file("video.mp4"), dst)
            files["mp4"] = str(dst)
        if "npy" in formats:
            dst = out_dir / f"{inst.slug}.npy"
            _atomic_copy(sample.file("frames.npy"), dst)
            files["npy"] = str(dst)
        if "gif" in formats:
            from recut import video  # local: recut.video pulls in av, and `recut plan` imports this module

            dst = out_dir / f"{inst.slug}.gif"
            tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}.gif")
            video.write_gif(tmp, video.load_frames(sample.file("frames.npy")), sample.meta.get("fps", 8.0))
            os.replace(tmp, dst)
            files["gif"] = str(dst)
        m: dict[str, Any] = {}
        for name, key in chain.items():
            if kinds.get(name) == "evaluate":
                m.update(json.loads(refs[key].file("metrics.json").read_text()))
        metrics[inst.slug] = m
        outputs[inst.slug] = {
            "edit": inst.edit,
            "point": dict(inst.point),
            "files": files,
            "metrics": m,
            "stages": {name: key for name, key in chain.items()},
        }
    _atomic_write(out_dir / "metrics.json", json.dumps(metrics, indent=1, sort_keys=True))
    summary = {"spec": sp.path, "method": sp.spec.method, "output_dir": str(out_dir), "outputs": outputs}  # type: ignore[attr-defined]
    if len(sp.spec.sweep) == 2:
        summary["contact_sheets"] = contact_sheets(sp, refs, kinds, outputs)
    return summary


# --------------------------------------------------------------------------- contact sheet

#: Frames shown per cell, and the largest cell frame height (pixels).
SHEET_FRAMES = 4
SHEET_MAX_HEIGHT = 96


def _put(sheet: Any, text: str, x: int, y: int) -> None:
    cv2.putText(sheet, text, (x, y), cv2.FONT_HERSHEY_PLAIN, 0.8, (0, 0, 0), 1, cv2.LINE_AA)


def _fmt(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def contact_sheets(
    sp: SpecPlan, refs: dict[str, ArtifactRef], kinds: dict[str, str], outputs: dict[str, Any]
) -> list[dict[str, Any]]:
    """One contact sheet per edit of a 2-parameter sweep (rows: the first swept path, columns: the second).

    Each cell shows ``SHEET_FRAMES`` frames of the output spread over the clip and its numeric metrics.
    Writes ``contact-<edit>.png``; returns the table (also written to summary.json).
    """
    from recut import video  # local: recut.video pulls in av, and `recut plan` imports this module

    row_key, col_key = list(sp.spec.sweep)
    rows, cols = sp.spec.sweep[row_key], sp.spec.sweep[col_key]
    sheets = []
    for edit in sp.spec.edit_names():
        # 1. the cells, in sweep order
        grid: list[list[dict[str, Any]]] = [[{} for _ in cols] for _ in rows]
        images: dict[tuple[int, int], np.ndarray] = {}
        for inst, chain in sp.chains.items():
            if inst.edit != edit:
                continue
            point = dict(inst.point)
            r, c = rows.index(point[row_key]), cols.index(point[col_key])
            grid[r][c] = {"output": inst.slug, "point": point, "metrics": outputs[inst.slug]["metrics"]}
            frames = video.load_frames(refs[chain[_sample_stage(chain, kinds)]].file("frames.npy"))
            pick = np.linspace(0, len(frames) - 1, min(SHEET_FRAMES, len(frames))).round().astype(int)
            strip = np.concatenate(list(frames[pick]), axis=1)
            if strip.shape[0] > SHEET_MAX_HEIGHT:
                scale = SHEET_MAX_HEIGHT / strip.shape[0]
                strip = cv2.resize(
                    strip, (round(strip.shape[1] * scale), SHEET_MAX_HEIGHT), interpolation=cv2.INTER_AREA
                )
            images[(r, c)] = strip
        # 2. the image: a header row and column, each cell a frame strip over its metrics
        cell_h = max(i.shape[0] for i in images.values()) if images else SHEET_MAX_HEIGHT
        cell_w = max(max(i.shape[1] for i in images.values()) if images else 0, 150)
        n_lines = max(
            (len([v for v in g["metrics"].values() if isinstance(v, (int, float))]) for row in grid for g in row if g),
            default=0,
        )
        row_labels = [f"{row_key.split('.')[-1]}={rv}" for rv in rows]
        label_w = max(cv2.getTextSize(t, cv2.FONT_HERSHEY_PLAIN, 0.8, 1)[0][0] for t in row_labels)
        text_h, pad, head_w, head_h = 12 * min(n_lines, 6) + 4, 4, label_w + 8, 18
        sheet = np.full(
            (head_h + len(rows) * (cell_h + text_h + pad), head_w + len(cols) * (cell_w + pad), 3), 255, np.uint8
        )
        put = functools.partial(_put, sheet)
        for c, cv in enumerate(cols):
            put(f"{col_key.split('.')[-1]}={cv}", head_w + c * (cell_w + pad) + 2, 13)
        for r, label in enumerate(row_labels):
            y0 = head_h + r * (cell_h + text_h + pad)
            put(label, 2, y0 + cell_h // 2)
            for c in range(len(cols)):
                x0 = head_w + c * (cell_w + pad)
                img = images.get((r, c))
                if img is not None:
                    sheet[y0 : y0 + img.shape[0], x0 : x0 + img.shape[1]] = img
                nums = [(k, v) for k, v in sorted(grid[r][c].get("metrics", {}).items()) if isinstance(v, (int, float))]
                for i, (k, v) in enumerate(nums[:6]):
                    put(f"{k[:18]} {_fmt(v)}", x0 + 2, y0 + cell_h + 11 + 12 * i)
        dst = sp.output_dir / f"contact-{edit}.png"
        tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}.png")
        cv2.imwrite(str(tmp), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
        os.replace(tmp, dst)
        sheets.append(
            {
                "edit": edit,
                "image": str(dst),
                "rows": {"param": row_key, "values": rows},
                "columns": {"param": col_key, "values": cols},
                "cells": grid,
            }
        )
    return sheets


def write_summary(out_dir: Path, summary: dict[str, Any]) -> Path:
    """``summary.json``: :func:`tracked_summary` of ``summary`` (DVC tracks the output folder)."""
    dst = out_dir / "summary.json"
    _atomic_write(dst, json.dumps(tracked_summary(out_dir, summary), indent=1, sort_keys=True))
    return dst


#: What summary.json keeps of each stage: its identity, not how this run got it (status, timings and
#: store paths differ between a computing run and a cached one; the run's JSON has them).
_STAGE_FIELDS = ("stage", "kind", "label", "key", "outputs")


def tracked_summary(out_dir: Path, summary: dict[str, Any]) -> dict[str, Any]:
    """The summary as the output folder keeps it: the same bytes for the same outputs, whichever run
    wrote them and wherever the project is checked out (paths relative to the folder, no timings)."""
    s = dict(summary)
    if "spec" in s:
        s["spec"] = os.path.relpath(s["spec"], out_dir)
    s["output_dir"] = "."
    s["outputs"] = {
        slug: {**o, "files": {fmt: Path(f).name for fmt, f in o["files"].items()}}
        for slug, o in summary.get("outputs", {}).items()
    }
    if "stages" in s:
        s["stages"] = [{k: st[k] for k in _STAGE_FIELDS if k in st} for st in summary["stages"]]
    if "failed" in s:
        s["failed"] = [{**f, "spec": os.path.relpath(f["spec"], out_dir)} for f in summary["failed"]]
    if "contact_sheets" in s:
        s["contact_sheets"] = [{**c, "image": Path(c["image"]).name} for c in summary["contact_sheets"]]
    return s


def write_outputs(
    plan: Any,
    refs: dict[str, ArtifactRef],
    stages: list[dict[str, Any]],
    failed: list[dict[str, str]] | None = None,
) -> list[dict[str, Any]]:
    """Each spec's outputs for every edit whose stages all have a ref (the others failed), and its
    summary.json; returns the summaries (``stages``: the run's stage records; ``failed``: per output)."""
    from dataclasses import replace

    kinds = {n.stage.name: n.kind for n in plan.ordered()}
    summaries = []
    for sp in plan.specs:
        good = {i: c for i, c in sp.chains.items() if all(k in refs for k in c.values())}
        summary = materialize(replace(sp, chains=good), refs, kinds)
        keys = {k for chain in sp.chains.values() for k in chain.values()}
        summary["stages"] = [s for s in stages if s["key"] in keys]
        summary["failed"] = [f for f in failed or [] if f["spec"] == sp.path]
        write_summary(sp.output_dir, summary)
        summaries.append(summary)
    from recut import gallery  # stdlib only at import; never raises (a gallery problem is a warning)

    gallery.refresh_after_run(plan, refs)
    return summaries


def failure(spec: str, output: str, chain: dict[str, str], errors: dict[str, BaseException]) -> dict[str, str]:
    """The first stage of ``chain`` that failed (not one that only did not run) and why."""
    from recut.runner import UpstreamFailed

    bad = [name for name, key in chain.items() if key in errors]
    first = next((n for n in bad if not isinstance(errors[chain[n]], UpstreamFailed)), bad[0])
    exc = errors[chain[first]]
    return {"spec": spec, "output": output, "stage": first, "error": f"{type(exc).__name__}: {exc}"}


def finish_run(
    plan: Any,
    results: dict[str, Any],
    errors: dict[str, BaseException],
    store: Any,
    dvc: bool,
    t0: float,
    publish: Callable[[list[dict[str, Any]]], None] | None = None,
) -> dict[str, Any]:
    """After every node ran or failed (``results``: key -> :class:`recut.runner.StageResult`,
    ``errors``: key -> exception): the outputs of every edit whose stages all succeeded, the
    summaries, ``publish(summaries)`` (the dashboard), the DVC record; returns the run's summary.
    Shared by the flows and the in-process run."""
    from recut import dvc as dvc_glue

    refs = {k: r.ref for k, r in results.items()}
    stages = [results[n.key].to_json() for n in plan.ordered() if n.key in results]
    failed = [
        failure(sp.path, inst.label, chain, errors)
        for sp in plan.specs
        for inst, chain in sp.chains.items()
        if set(chain.values()) & errors.keys()
    ]
    spec_summaries = write_outputs(plan, refs, stages, failed)
    if publish is not None:
        publish(spec_summaries)
    try:
        dvc_note = dvc_glue.record(store.root, plan) if dvc else "skipped (--no-dvc)"
    except Exception as exc:  # noqa: BLE001
        dvc_note = f"FAILED: {type(exc).__name__}: {exc}"
    return {
        "store": str(store.root),
        "seconds": round(time.perf_counter() - t0, 3),
        "computed": sum(1 for s in stages if s["status"] == "computed"),
        "cached": sum(1 for s in stages if s["status"] == "cached"),
        "stages": stages,
        "specs": spec_summaries,
        "failed": failed,
        "dvc": dvc_note,
    }


def finish_cached(plan: Any, store: Any) -> dict[str, Any]:
    """A run whose every stage is in the store: put the outputs in place from the store, without
    Prefect, Ray or DVC (nothing is computed, so nothing new needs recording). The same summary shape
    as the flows return."""
    from recut.runner import StageResult

    stages = []
    refs = {}
    for n in plan.ordered():
        ref = store.get(n.kind, n.key)
        if ref is None:  # gone since planning (another run's gc, a corrupt entry): take the full path
            raise LookupError(f"stage {n.label} [{n.key[:8]}] is no longer in the store")
        refs[n.key] = ref
        res = StageResult(n.key, n.stage.name, n.kind, n.label, "cached", 0.0, ref, [i.label for i in n.instances])
        stages.append(res.to_json())
    return {
        "store": str(store.root),
        "computed": 0,
        "cached": len(stages),
        "stages": stages,
        "specs": write_outputs(plan, refs, stages),
        "failed": [],
        "dvc": "nothing new to record (every stage was cached)",
    }
