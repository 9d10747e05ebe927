"""Reimplemented baselines, one module each; importing this package registers them in ``fewshot_ner.method.METHODS``."""

from baselines import lookup, nearest_proto, protonet, spanner, wpz  # noqa: F401
