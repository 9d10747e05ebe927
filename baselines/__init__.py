"""Reimplemented baselines; importing this package registers them in ``fewshot_ner.method.METHODS``."""

from baselines import nearest_proto  # noqa: F401
