"""GPU fast path of the CRF (placeholder until the Triton kernels land)."""

from __future__ import annotations


def available() -> bool:
    return False
