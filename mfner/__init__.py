"""MFNER, the paper's model: denoiser, L-TapNet head, the model, and the method (``fewshot_ner.method``)."""
