"""Full-size architectures with seeded random weights, built on first use from public configs.

The configs live in the repository (``models/fullsize``), written from the published ``config.json``
of each hub model; no weights are copied. A folder there is laid out as the hub's (a pipeline folder
of component subfolders, or one model's folder), and a directory link names a component shared with
another folder (Gen-1's text encoder is ModelScope's, ReVideo's UNet is SVD's). This module mirrors
a folder into a local cache (``~/.cache/recut/fullsize-random``, or ``$RECUT_FULLSIZE_DIR``; never git
or DVC) and builds each model component through the ordinary loading path: ``from_config`` with a
seeded generator, ``save_pretrained`` into the cache, and later the engines' own ``from_pretrained``.

* A component's class comes from its config: ``_class_name`` in diffusers, ``architectures[0]`` in
  transformers. A class neither library defines (an engine's own module, such as Gen-1's content
  projection or ReVideo's control module) is built when an engine first loads it, with the class the
  engine passes (:func:`ensure_component`); the core never imports engine code.
* Weights are stored as bfloat16 (half the bytes of float32; a loader casts them to the dtype it asks
  for). The config in the cache is the committed one, so an unspecified dtype loads as the published
  checkpoint would (``torch_dtype`` float32 in the transformers configs).
* Each component is built into a private temporary folder and renamed into place: a reader sees
  nothing or the whole component, and two processes that race both end with one copy.
* The seed of a component is the profile seed plus a hash of its path, so the weights do not depend
  on which component was built first. :func:`config_digest` (the configs, the builder version and the
  torch/diffusers/transformers versions that draw the weights) is the profile's model identity.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import time
import zlib
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

#: Bump when the way weights are drawn or saved changes (it enters the model identity).
BUILDER_VERSION = "1"
#: Files that hold weights; a component folder with none of them is configuration only.
WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "model.safetensors")
#: The storage dtype of the built weights.
STORAGE_DTYPE = "bfloat16"


def default_cache() -> Path:
    """Where built weights go: ``$RECUT_FULLSIZE_DIR``, else ``~/.cache/recut/fullsize-random``."""
    env = os.environ.get("RECUT_FULLSIZE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "recut" / "fullsize-random"


# --------------------------------------------------------------------------- the config tree


def _inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


def _is_component(src: Path) -> bool:
    """A folder of files only (one model, tokenizer, scheduler or processor); a pipeline folder has
    subfolders."""
    return not any(p.is_dir() for p in src.iterdir())


def config_digest(config_root: Path, seed: int = 0) -> str:
    """sha256 of every committed file (links followed), the seed, the builder version and the versions of
    the libraries that draw and save the weights: equal digests mean equal built weights."""
    root = Path(config_root)
    h = hashlib.sha256()
    for p in sorted(_walk(root)):
        h.update(p.relative_to(root).as_posix().encode() + b"\0")
        h.update(p.read_bytes())
    versions = {name: _version(name) for name in ("torch", "diffusers", "transformers", "safetensors")}
    h.update(json.dumps({"seed": seed, "builder": BUILDER_VERSION, "versions": versions}, sort_keys=True).encode())
    return h.hexdigest()


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"


def _walk(folder: Path) -> Iterator[Path]:
    """Every file under ``folder``, following links (a link is walked under its own name)."""
    for p in sorted(folder.iterdir()):
        if p.is_dir():
            yield from _walk(p)
        elif p.is_file():
            yield p


# --------------------------------------------------------------------------- classes


def component_class(src: Path) -> tuple[str | None, str | None]:
    """``(library, class name)`` of a component folder: ``("diffusers", ...)``, ``("transformers", ...)``,
    ``("other", ...)`` for a class neither library defines, or ``(None, None)`` for configuration only."""
    cfg_file = src / "config.json"
    if not cfg_file.is_file():
        return None, None
    cfg = json.loads(cfg_file.read_text())
    if "_class_name" in cfg:
        import diffusers  # local: seconds to import

        name = str(cfg["_class_name"])
        return ("diffusers" if hasattr(diffusers, name) else "other"), name
    if cfg.get("architectures"):
        import transformers  # local: seconds to import

        name = str(cfg["architectures"][0])
        return ("transformers" if hasattr(transformers, name) else "other"), name
    return None, None


def _resolve_class(src: Path, cls: Any) -> tuple[str | None, Any]:
    """The library and class to build ``src`` with: the config's class, or ``cls`` (an engine's own)."""
    lib, name = component_class(src)
    if lib is None:
        return None, None
    if lib == "diffusers":
        import diffusers

        return lib, getattr(diffusers, name)
    if lib == "transformers":
        import transformers

        return lib, getattr(transformers, name)
    if cls is None or getattr(cls, "__name__", None) != name:
        return "other", None
    return ("transformers" if hasattr(cls, "config_class") else "diffusers"), cls


# --------------------------------------------------------------------------- building


@contextlib.contextmanager
def _default_dtype(dtype: Any) -> Iterator[None]:
    import torch

    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def component_seed(seed: int, rel: str) -> int:
    return (int(seed) + zlib.crc32(rel.encode())) % (2**31)


def _build_weights(lib: str, cls: Any, src: Path, out: Path, seed: int) -> None:
    """Draw ``cls``'s weights from ``src``'s config with ``seed`` and ``save_pretrained`` them into ``out``."""
    import torch

    dtype = getattr(torch, STORAGE_DTYPE)
    with torch.random.fork_rng(devices=[]), _default_dtype(dtype):
        torch.manual_seed(seed)
        if lib == "diffusers":
            model = cls.from_config(cls.load_config(src))
        else:
            model = cls._from_config(cls.config_class.from_pretrained(src), dtype=dtype)
    model.save_pretrained(out, safe_serialization=True)  # drawn in bfloat16 (the default dtype above)
    del model


def _build(src: Path, dst: Path, rel: str, cls: Any, seed: int) -> bool:
    """Mirror the component ``src`` into ``dst`` (files copied, weights drawn); False when its class is
    an engine's and no class was given (built later, by :func:`ensure_component`)."""
    lib, klass = _resolve_class(src, cls)
    if lib == "other":
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.parent / f".{dst.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        tmp.mkdir()
        if klass is not None:
            _build_weights(lib, klass, src, tmp, component_seed(seed, rel))
        for f in sorted(src.iterdir()):  # the committed files (the published config) over what save wrote
            if f.is_file():
                shutil.copyfile(f, tmp / f.name)
        try:
            os.rename(tmp, dst)
        except OSError:
            if not dst.is_dir():  # not a lost race: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return True


def ensure_component(config_root: Path, cache_root: Path, rel: str, cls: Any = None, seed: int = 0) -> Path:
    """The cache folder of component ``rel`` (``"sd/unet"``, ``"clip-vit-l14"``, ``"gen1/clip"``), built if
    missing. ``cls`` is the class a loader asks for: it builds a component whose class is an engine's."""
    config_root, cache_root = Path(config_root), Path(cache_root)
    src = config_root / rel
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: no such component in {config_root}")
    if src.is_symlink() and _inside(src, config_root):
        target = src.resolve().relative_to(config_root.resolve()).as_posix()
        ensure_component(config_root, cache_root, target, cls, seed)
        _link(cache_root / rel, cache_root / target)
        return cache_root / rel
    dst = cache_root / rel
    if dst.is_dir():
        return dst
    if not _is_component(src):
        return ensure_folder(config_root, cache_root, rel, seed)
    _build(src, dst, rel, cls, seed)
    return dst


def _link(link: Path, target: Path) -> None:
    """A relative directory link ``link`` -> ``target`` (made atomically; kept if it is already there)."""
    if link.is_symlink() or link.exists():
        return
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.parent / f".{link.name}.link-{os.getpid()}-{secrets.token_hex(4)}"
    os.symlink(os.path.relpath(target, link.parent), tmp)
    try:
        os.rename(tmp, link)
    except OSError:
        os.unlink(tmp)


def _copy_file(src: Path, dst: Path) -> None:
    if dst.is_file() and dst.read_bytes() == src.read_bytes():
        return
    tmp = dst.parent / f".{dst.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def ensure_folder(config_root: Path, cache_root: Path, rel: str, seed: int = 0) -> Path:
    """Mirror the folder ``rel`` into the cache: its files copied, its links made (their targets built),
    and every component that diffusers or transformers defines built. Returns the cache folder."""
    config_root, cache_root = Path(config_root), Path(cache_root)
    src = config_root / rel
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: no such folder in {config_root}")
    if src.is_symlink() or _is_component(src):
        return ensure_component(config_root, cache_root, rel, None, seed)
    dst = cache_root / rel
    dst.mkdir(parents=True, exist_ok=True)
    for entry in sorted(src.iterdir()):
        sub = f"{rel}/{entry.name}"
        if entry.is_file():
            _copy_file(entry, dst / entry.name)
        else:
            ensure_component(config_root, cache_root, sub, None, seed)
    return dst


def _has_weights(src: Path) -> bool:
    """Whether a component folder's config names a model class (read as text: no import)."""
    cfg_file = src / "config.json"
    if not cfg_file.is_file():
        return False
    cfg = json.loads(cfg_file.read_text())
    return "_class_name" in cfg or bool(cfg.get("architectures"))


def missing(config_root: Path, cache_root: Path, rel: str) -> list[str]:
    """The model components of folder ``rel`` not built yet (an engine's own class counts until the engine
    first loads it). Reads files only: no import, no build."""
    config_root, cache_root = Path(config_root), Path(cache_root)
    src = config_root / rel
    if src.is_symlink() and _inside(src, config_root):
        return missing(config_root, cache_root, src.resolve().relative_to(config_root.resolve()).as_posix())
    if _is_component(src):
        return [] if not _has_weights(src) or (cache_root / rel).is_dir() else [rel]
    return [m for e in sorted(src.iterdir()) if e.is_dir() for m in missing(config_root, cache_root, f"{rel}/{e.name}")]


def build_all(config_root: Path, cache_root: Path, folders: list[str], seed: int = 0) -> dict[str, float]:
    """Build ``folders`` (``python -m recut.fullsize``); seconds per folder."""
    took = {}
    for rel in folders:
        t0 = time.perf_counter()
        ensure_folder(config_root, cache_root, rel, seed)
        took[rel] = time.perf_counter() - t0
    return took


def main(argv: list[str] | None = None) -> None:
    import argparse

    repo = Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(description="Build the fullsize-random weights (seeded, from the committed configs).")
    ap.add_argument("folders", nargs="*", help="folders under models/fullsize (default: all)")
    ap.add_argument("--configs", type=Path, default=repo / "models" / "fullsize")
    ap.add_argument("--cache", type=Path, default=None)
    args = ap.parse_args(argv)
    cache = args.cache or default_cache()
    folders = args.folders or sorted(p.name for p in args.configs.iterdir() if p.is_dir())
    for rel, secs in build_all(args.configs, cache, folders).items():
        print(f"{rel}: {secs:.1f} s")
    print(f"built into {cache}")


if __name__ == "__main__":
    main()
