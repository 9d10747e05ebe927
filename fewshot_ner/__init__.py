"""The shared few-shot NER core: data and domains, episodes, the encoder wrapper and word
features, the CRF and its fast paths, CDT, prototypes, labels, entity F1, the registry, the
method contract and the episodic trainer. Nothing here imports ``mfner``, ``baselines`` or
``bench``."""

__version__ = "0.2.0"
