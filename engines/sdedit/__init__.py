"""SDEdit: per-frame (or whole-clip) noise-and-denoise baseline."""

from engines.sdedit.engine import SDEditEngine as ENGINE

__all__ = ["ENGINE"]
