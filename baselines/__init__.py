"""Reimplemented baselines; importing this package registers them in ``mfner.method.METHODS``."""

from baselines import nearest_proto  # noqa: F401
