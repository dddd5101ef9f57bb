"""Watermark keys: the provider secret, the payload derived from a ProduceID, keyed material.

Keyed material is drawn from SHAKE-256 of the secret, never from numpy's generators, whose
streams may change between numpy versions: a mark embedded today must be found in ten years.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

import numpy as np

from ..errors import KeyFileError

__all__ = ["WatermarkKey", "keyed_uniform", "keyed_permutation", "keyed_words"]

SECRET_BYTES = 32


def _stream(secret: bytes, domain: str, n_bytes: int) -> bytes:
    return hashlib.shake_256(secret + b"\x00labelkit-wm\x00" + domain.encode()).digest(n_bytes)


def keyed_uniform(secret: bytes, domain: str, n: int) -> np.ndarray:
    """n keyed numbers uniform in [0, 1) (53-bit resolution)."""
    raw = np.frombuffer(_stream(secret, domain, 8 * n), dtype=">u8").astype(np.uint64)
    return (raw >> np.uint64(11)).astype(np.float64) * 2.0**-53


def keyed_words(secret: bytes, domain: str, n: int) -> np.ndarray:
    """n keyed uint32 words; the first k are the same for any n >= k (a table can grow)."""
    return np.frombuffer(_stream(secret, domain, 4 * n), dtype="<u4").astype(np.uint32)


def keyed_permutation(secret: bytes, domain: str, n: int) -> np.ndarray:
    """A keyed permutation of range(n): the order of n keyed 64-bit numbers."""
    raw = np.frombuffer(_stream(secret, domain, 8 * n), dtype=">u8")
    return np.argsort(raw, kind="stable")


@dataclass(frozen=True)
class WatermarkKey:
    """The provider's watermark secret (32 bytes); derived from the signing key by default."""

    secret: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.secret, bytes) or len(self.secret) != SECRET_BYTES:
            raise KeyFileError(f"a watermark secret must be {SECRET_BYTES} bytes")

    @classmethod
    def from_signing_key(cls, key) -> "WatermarkKey":
        """The watermark secret of a labelkit signing key (HKDF, purpose "watermark")."""
        return cls(key.derive_secret("watermark"))

    def payload_for(self, produce_id: str) -> int:
        """The 64-bit payload of a ProduceID: HMAC-SHA256(secret, ProduceID), first 8 bytes.

        Keyed, so a third party cannot forge the payload of a given ID without the secret."""
        mac = hmac.new(self.secret, b"labelkit-wm-id:" + produce_id.encode("ascii"), "sha256")
        return int.from_bytes(mac.digest()[:8], "big")

    def __repr__(self) -> str:  # never print the secret
        return f"WatermarkKey(id={hashlib.sha256(self.secret).hexdigest()[:8]})"
