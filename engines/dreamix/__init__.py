"""Dreamix: a text-to-video diffusion model as a general video editor (plus image animation, subject-driven video)."""

from engines.dreamix.engine import DreamixEngine as ENGINE

__all__ = ["ENGINE"]
