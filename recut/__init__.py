"""recut: declarative text- and motion-guided video editing with diffusion models."""

__version__ = "0.1.0"
