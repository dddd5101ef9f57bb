"""What every watermark detector returns, and the p-value it is judged by."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Detection", "P_THRESHOLD", "union_p_value"]

P_THRESHOLD = 1e-6
"""Default false-positive probability per item (robustness.md: <= 1e-6)."""


def union_p_value(z: float, hypotheses: int) -> float:
    """P(max over ``hypotheses`` tests of an unmarked item >= z), bounded above.

    Each test statistic is a normalised sum of cos(U) terms with U uniform (keyed phases are
    independent of the content), so P(Z >= z) <= exp(-z^2/2) by Chernoff (E e^{l cos U} =
    I0(l) <= e^{l^2/4}); the union bound over every hypothesis tried multiplies by their count."""
    if hypotheses < 1:
        raise ValueError("at least one hypothesis")
    log_p = math.log(hypotheses) - z * z / 2.0 if z > 0 else 0.0
    return 1.0 if log_p >= 0 else math.exp(log_p)


@dataclass(frozen=True)
class Detection:
    """A detector's answer: present, p-value, payload (CRC-checked) and per-bit confidences."""

    present: bool
    p_value: float
    payload: int | None
    bit_confidence: np.ndarray | None = None
    score: float = 0.0
    hypotheses: int = 0
    reason: str | None = None
    geometry: dict = field(default_factory=dict)

    @property
    def payload_hex(self) -> str | None:
        """The payload as 16 hex digits, or None."""
        return None if self.payload is None else f"{self.payload:016x}"

    def to_dict(self) -> dict:
        """A JSON-ready summary (no per-bit arrays)."""
        out = {
            "present": self.present,
            "p_value": self.p_value,
            "payload": self.payload_hex,
            "score": round(self.score, 3),
            "hypotheses": self.hypotheses,
        }
        if self.reason:
            out["reason"] = self.reason
        return out
