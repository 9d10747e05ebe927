"""The one home of each run default that several layers name (no heavy imports: the CLI reads it first)."""

from __future__ import annotations

DEFAULT_ENCODER = "minilm"  # the bundled all-MiniLM-L6-v2 (fewshot_ner.encoder.ENCODERS)
DEFAULT_PRECISION = "fp32"  # the encoder's arithmetic (fewshot_ner.encoder.PRECISIONS)
DEFAULT_IMAGE_TEXT = "blip2"  # each tweet's image text: BLIP-2 captions (fewshot_ner.datasets.IMAGE_TEXT_SOURCES)
