"""The verification world: toy scenes with ground truth, the judge, the tiny-random builder,
the toy tokenizer, and the toy model zoo (trainers and recipes).

It is apart from the product: the product imports it only through the registries in
:mod:`recut.registry`, and it may import ``engines.common`` (the samplers it trains and checks with).
"""
