"""Reimplemented baselines, one module each; importing this package registers them in ``fewshot_ner.method.METHODS``."""

from baselines import bert_crf, container, ita, lookup, nearest_proto, nnshot, protonet, spanner, wpz  # noqa: F401
