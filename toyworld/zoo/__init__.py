"""recut's toy model zoo: small models trained on the synthetic world of :mod:`toyworld.scene`.

Part A (this package's ``data``, ``tokenizer``, ``clip``, ``vae``, ``depth``, ``judge``,
``recipes``): tokenizer, CLIP text encoder, toy CLIP, VAE, depth estimator and pixel-statistics
judges.  Train/check with ``python -m toyworld.zoo.recipes train|check NAME``.
Pure torch/diffusers/transformers (no Prefect or Ray).
"""
