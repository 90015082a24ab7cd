"""Video-P2P: tuned text-to-set model, null-text inversion, prompt-to-prompt attention control."""

from engines.videop2p.engine import VideoP2PEngine as ENGINE

__all__ = ["ENGINE"]
