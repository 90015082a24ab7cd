"""recut's toy model zoo: small models trained on the synthetic world of :mod:`toyworld.scene`.

``vae``, ``clip`` (the toy CLIP and its text tower), ``depth``, ``motion_text`` (the T2V's text
encoder), ``t2i`` and ``t2v`` (the diffusion pipelines) train one model each on ``data`` (toy
datasets) and :mod:`toyworld.scene`; ``recipes`` lists them with :mod:`toyworld.tokenizer`.
Train/check with ``recut zoo train|check NAME`` or ``python -m toyworld.zoo.recipes train|check NAME``;
benchmarks/ZOO.md has the recipes and their figures.  Pure torch/diffusers/transformers (no
Prefect or Ray).
"""
