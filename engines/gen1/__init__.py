"""Gen-1: structure (depth at level t_s) and content (text, image, prior) guided video editing."""

from engines.gen1.engine import Gen1Engine as ENGINE

__all__ = ["ENGINE"]
