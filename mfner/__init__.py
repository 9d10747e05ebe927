"""MFNER: few-shot multimodal NER harness (data, episodes, encoder, CRF, metrics, the model)."""

__version__ = "0.1.0"
