"""LPIPS (Zhang et al., "The Unreasonable Effectiveness of Deep Features as a
Perceptual Metric", CVPR 2018), AlexNet variant, in plain torch.

Nothing downloads.  The weights are one local file, looked up in this order:

1. ``$RECUT_LPIPS_WEIGHTS`` (a path), if set;
2. ``models/lpips/alex.safetensors``, then ``models/lpips/alex.pth`` in this repo;
3. ``~/.cache/recut/lpips/alex.safetensors``, then ``~/.cache/recut/lpips/alex.pth``.

When none exists the metric is *skipped* (with the reason), never an error.

The file holds the AlexNet convolutions and the five learned linear heads.
Two key layouts are accepted, so the file can be produced from the reference
implementation on a machine with network access::

    torch.save(lpips.LPIPS(net="alex").state_dict(), "alex.pth")   # layout A

* layout A (the ``lpips`` package's full state dict): ``net.slice{1..5}.{i}.weight|bias``
  with torchvision's layer indices ``i`` in {0, 3, 6, 8, 10}, and ``lin{0..4}.model.1.weight``;
* layout B: torchvision's ``features.{i}.weight|bias`` and ``lin{0..4}.weight``
  (or ``lin{k}.model.1.weight``).

Any ``scaling_layer.*`` buffers are ignored: the input scaling is fixed below.

The distance of two frames:

1. map uint8 RGB to [-1, 1], then scale per channel (``(x - SHIFT) / SCALE``);
2. run both through AlexNet's five conv+ReLU stages (max-pool between stages 1-3);
3. at each stage, normalise every feature vector to unit length over channels;
4. square the difference, weight the channels with the stage's linear head (1x1 conv, no bias),
   average over space;
5. sum the five stage values.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from recut.models import MODELS_DIR

__all__ = ["ENV_VAR", "default_locations", "find_weights", "load_lpips", "lpips_distance", "lpips_forward"]

ENV_VAR = "RECUT_LPIPS_WEIGHTS"

#: Input scaling of the reference implementation (after mapping to [-1, 1]).
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)

#: AlexNet's conv layers: (torchvision index, in, out, kernel, stride, padding).
ALEX_CONVS = (
    (0, 3, 64, 11, 4, 2),
    (3, 64, 192, 5, 1, 2),
    (6, 192, 384, 3, 1, 1),
    (8, 384, 256, 3, 1, 1),
    (10, 256, 256, 3, 1, 1),
)
CHANNELS = tuple(c[2] for c in ALEX_CONVS)


def default_locations() -> list[Path]:
    """Where the weights are looked for when ``$RECUT_LPIPS_WEIGHTS`` is not set."""
    cache = Path(os.path.expanduser("~/.cache/recut/lpips"))
    repo = MODELS_DIR / "lpips"
    return [repo / "alex.safetensors", repo / "alex.pth", cache / "alex.safetensors", cache / "alex.pth"]


def find_weights() -> tuple[Path | None, str]:
    """``(path, "")`` of the LPIPS weights file, or ``(None, reason)`` when there is none."""
    env = os.environ.get(ENV_VAR)
    if env:
        p = Path(os.path.expanduser(env))
        if p.is_file():
            return p, ""
        return None, f"no LPIPS weights: ${ENV_VAR} is {env!r}, which is not a file"
    for p in default_locations():
        if p.is_file():
            return p, ""
    where = ", ".join(str(p) for p in default_locations())
    return None, f"no LPIPS weights on this machine (set ${ENV_VAR} or put alex.pth at one of: {where})"


def _torch() -> Any:
    import torch  # local: torch takes seconds to import; `recut plan` imports this module (find_weights)

    return torch


def lpips_forward(weights: dict[str, Any], a: Any, b: Any) -> Any:
    """Distance per image ``[N]`` of float ``[N, 3, H, W]`` tensors in [-1, 1] (steps 1-5 above).

    ``weights`` maps ``conv{k}.weight``, ``conv{k}.bias`` and ``head{k}.weight`` (k = 0..4) to tensors.
    """
    torch = _torch()
    f = torch.nn.functional
    shift = torch.tensor(SHIFT).view(1, 3, 1, 1)
    scale = torch.tensor(SCALE).view(1, 3, 1, 1)
    ha, hb = (a - shift) / scale, (b - shift) / scale
    total = torch.zeros(a.shape[0])
    for k, (_, _, _, _, stride, pad) in enumerate(ALEX_CONVS):
        if k in (1, 2):  # AlexNet max-pools before conv2 and conv3
            ha, hb = f.max_pool2d(ha, 3, 2), f.max_pool2d(hb, 3, 2)
        w, bias = weights[f"conv{k}.weight"], weights[f"conv{k}.bias"]
        ha = torch.relu(f.conv2d(ha, w, bias, stride=stride, padding=pad))
        hb = torch.relu(f.conv2d(hb, w, bias, stride=stride, padding=pad))
        na = ha / (ha.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        nb = hb / (hb.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        total = total + f.conv2d((na - nb) ** 2, weights[f"head{k}.weight"]).mean(dim=(1, 2, 3))
    return total


def _read_state(path: Path) -> dict[str, Any]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file  # local: safetensors.torch imports torch

        return dict(load_file(str(path)))
    torch = _torch()
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}")
    return dict(state)


def _remap(state: dict[str, Any], path: Path) -> dict[str, Any]:
    """Keys of layout A or B (module docstring) -> ``conv{k}.*``/``head{k}.weight``, shapes checked."""
    out: dict[str, Any] = {}
    for k, (idx, cin, cout, ksize, _, _) in enumerate(ALEX_CONVS):
        want = {"weight": (cout, cin, ksize, ksize), "bias": (cout,)}
        for part, shape in want.items():
            names = (f"net.slice{k + 1}.{idx}.{part}", f"features.{idx}.{part}")
            found = next((n for n in names if n in state), None)
            if found is None:
                raise ValueError(f"{path}: no AlexNet conv {k + 1} {part} (looked for {' and '.join(names)})")
            if tuple(state[found].shape) != shape:
                raise ValueError(f"{path}: {found} has shape {tuple(state[found].shape)}, expected {shape}")
            out[f"conv{k}.{part}"] = state[found].float()
        names = (f"lin{k}.model.1.weight", f"lin{k}.weight")
        found = next((n for n in names if n in state), None)
        if found is None:
            raise ValueError(f"{path}: no linear head {k} (looked for {' and '.join(names)})")
        if tuple(state[found].shape) != (1, cout, 1, 1):
            raise ValueError(f"{path}: {found} has shape {tuple(state[found].shape)}, expected {(1, cout, 1, 1)}")
        out[f"head{k}.weight"] = state[found].float()
    return out


@lru_cache(maxsize=2)
def load_lpips(path: str) -> dict[str, Any]:
    """The weights of ``path`` as ``lpips_forward`` takes them (memoised per process)."""
    p = Path(path)
    return _remap(_read_state(p), p)


def lpips_distance(a: np.ndarray, b: np.ndarray, weights: str | os.PathLike[str], batch: int = 8) -> np.ndarray:
    """LPIPS distance per frame ``[T]`` between uint8 ``[T, H, W, 3]`` clips ``a`` and ``b``."""
    torch = _torch()
    if a.shape != b.shape or a.ndim != 4 or a.shape[-1] != 3:
        raise ValueError(f"LPIPS needs two clips of the same [T, H, W, 3] shape, got {a.shape} and {b.shape}")
    net = load_lpips(str(weights))
    out = []
    with torch.inference_mode():
        for s in range(0, len(a), batch):
            ta = torch.from_numpy(np.ascontiguousarray(a[s : s + batch])).permute(0, 3, 1, 2).float() / 127.5 - 1
            tb = torch.from_numpy(np.ascontiguousarray(b[s : s + batch])).permute(0, 3, 1, 2).float() / 127.5 - 1
            out.append(lpips_forward(net, ta, tb).numpy())
    return np.concatenate(out).astype(np.float64)
