"""ReVideo: local content and motion editing with trajectories (SVD-class image-to-video + control module)."""

from engines.revideo.engine import ReVideoEngine as ENGINE

__all__ = ["ENGINE"]
