"""Method engines: one sub-package per editing method, plus ``common``.

Each method package exports ``ENGINE``, a :class:`recut.engine.Engine`
subclass. Engines are plain PyTorch/diffusers code: no Prefect, no Ray.
"""
