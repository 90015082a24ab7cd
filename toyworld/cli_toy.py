"""`recut toy`: generate synthetic scenes with ground truth (see :mod:`toyworld.scene`).

Mounted by the main CLI as ``recut toy``.  Problems with ``--spec`` print as
``file: field.path: message`` and exit 2; bad option combinations exit 2;
failures while writing exit 1.  No traceback unless RECUT_DEBUG=1.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import ValidationError

from toyworld.scene import ToyScene, caption, render, sample_scenes, write_clip

toy_app = typer.Typer(
    help="Synthetic scenes with ground truth.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@toy_app.callback()
def _toy() -> None:
    """Synthetic scenes with ground truth."""


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


def _load_scene(path: Path) -> Any:
    """Parse a YAML ToyScene (top level, or under a `toy:` key); raise typer.Exit(2) on problems."""
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _fail(f"{shown}: file not found", 2) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(f"{shown}: cannot read: {exc}", 2) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise _fail(f"{shown}: invalid YAML{where}: {problem}", 2) from None
    if isinstance(data, dict) and set(data) == {"toy"}:
        data = data["toy"]
    if not isinstance(data, dict):
        raise _fail(f"{shown}: expected a mapping of ToyScene fields (objects, background, ...)", 2)
    try:
        return ToyScene.model_validate(data)
    except ValidationError as exc:
        for e in exc.errors():
            loc = ".".join(str(x) for x in e["loc"])
            msg = str(e["msg"]).removeprefix("Value error, ")
            if e.get("type") == "extra_forbidden":
                msg = "unknown field (not allowed here)"
            typer.echo(f"{shown}: {loc}: {msg}" if loc else f"{shown}: {msg}", err=True)
        raise typer.Exit(2) from None


@toy_app.command()
def make(
    out: Annotated[
        Path | None, typer.Option("--out", help="Output folder (scenes go to OUT/scene-XXXX/).", show_default=False)
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Dataset seed (default 0).", show_default=False)] = None,
    count: Annotated[
        int | None, typer.Option("--count", min=1, help="Number of scenes (default 1).", show_default=False)
    ] = None,
    frames: Annotated[
        int | None, typer.Option("--frames", min=1, max=256, help="Frames per scene (default 12).", show_default=False)
    ] = None,
    size: Annotated[
        int | None,
        typer.Option("--size", min=16, max=1024, help="Width and height in pixels (default 64).", show_default=False),
    ] = None,
    caption_only: Annotated[
        bool, typer.Option("--caption-only", help="Only print the captions; render and write nothing.")
    ] = False,
    spec: Annotated[
        Path | None,
        typer.Option("--spec", help="Render this ToyScene YAML into OUT instead of sampling.", show_default=False),
    ] = None,
) -> None:
    """Sample scenes (or render one from --spec) and write video.mp4, frames.npy, truth.npz, scene.json."""
    if spec is not None:
        given = [
            n
            for n, v in (("--seed", seed), ("--count", count), ("--frames", frames), ("--size", size))
            if v is not None
        ]
        if given:
            raise _fail(f"error: {', '.join(given)} cannot be combined with --spec (set them in the YAML)", 2)
    if out is None and not caption_only:
        raise _fail("error: --out is required (unless --caption-only)", 2)
    try:
        if spec is not None:
            scene = _load_scene(spec)
            if caption_only:
                typer.echo(caption(scene))
                return
            assert out is not None
            clip = render(scene)
            write_clip(clip, out)
            typer.echo(f"{out}  {clip.caption}")
            return
        kw = {"frames": frames or 12, "size": size or 64}
        for i, scene in enumerate(sample_scenes(seed or 0, count or 1, **kw)):
            name = f"scene-{i:04d}"
            if caption_only:
                typer.echo(f"{name}  {caption(scene)}")
                continue
            assert out is not None
            clip = render(scene)
            write_clip(clip, out / name)
            typer.echo(f"{out / name}  {clip.caption}")
    except typer.Exit:
        raise
    except Exception as exc:
        if os.environ.get("RECUT_DEBUG") == "1":
            raise
        raise _fail(f"error: {type(exc).__name__}: {exc}", 1) from None
