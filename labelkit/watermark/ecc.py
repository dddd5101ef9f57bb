"""Payload coding shared by every watermark: 64-bit payload + CRC-16, K=7 rate-1/3 code, soft Viterbi.

The CRC is the check that lets a detector accept a payload; the convolutional code (the NASA
K=7 generators, extended to rate 1/3) spreads each bit over 21 coded bits so that the soft
decoder corrects the chips that attacks flip.
"""

from __future__ import annotations

import numpy as np

from .._impl import kernel

__all__ = [
    "N_PAYLOAD",
    "N_CRC",
    "N_CODED",
    "encode",
    "decode",
    "crc16",
    "int_to_bits",
    "bits_to_int",
]

N_PAYLOAD = 64
N_CRC = 16
K = 7
GENERATORS = (0o133, 0o171, 0o165)
N_MESSAGE = N_PAYLOAD + N_CRC + (K - 1)  # 86: the tail drives the encoder back to state 0
N_CODED = N_MESSAGE * len(GENERATORS)  # 258

_STATES = 1 << (K - 1)
# state = the last K-1 input bits, newest in bit 0; register = (state << 1) | input
_REGISTER = (np.arange(_STATES)[:, None] << 1) | np.arange(2)[None, :]


def _parity(x: np.ndarray) -> np.ndarray:
    out = np.zeros_like(x)
    x = x.copy()
    while np.any(x):
        out ^= x & 1
        x >>= 1
    return out


OUTPUTS = np.stack([_parity(_REGISTER & g) for g in GENERATORS], -1).astype(np.int8)
_NEXT = _REGISTER & (_STATES - 1)


def int_to_bits(value: int, n: int) -> np.ndarray:
    """The n low bits of value, most significant first."""
    return np.array([(value >> (n - 1 - i)) & 1 for i in range(n)], dtype=np.uint8)


def bits_to_int(bits) -> int:
    """Bits, most significant first, as an integer."""
    value = 0
    for b in bits:
        value = (value << 1) | int(b)
    return value


def crc16(bits: np.ndarray) -> np.ndarray:
    """CRC-16/CCITT-FALSE of a bit sequence, as 16 bits."""
    reg = 0xFFFF
    for b in bits:
        top = ((reg >> 15) & 1) ^ int(b)
        reg = (reg << 1) & 0xFFFF
        if top:
            reg ^= 0x1021
    return int_to_bits(reg, 16)


def _convolve(message: np.ndarray) -> np.ndarray:
    state, out = 0, []
    for b in message:
        out.extend(OUTPUTS[state, b])
        state = _NEXT[state, b]
    return np.array(out, dtype=np.uint8)


def encode(payload: int) -> np.ndarray:
    """The N_CODED coded bits (0/1) of a 64-bit payload."""
    if not 0 <= payload < 1 << N_PAYLOAD:
        raise ValueError("payload must be a 64-bit unsigned integer")
    bits = int_to_bits(payload, N_PAYLOAD)
    message = np.concatenate([bits, crc16(bits), np.zeros(K - 1, np.uint8)])
    return _convolve(message)


def decode(soft: np.ndarray) -> tuple[int | None, np.ndarray | None]:
    """Soft-decode N_CODED values (> 0 favours 1): (payload or None, per-bit confidence or None).

    The payload is returned only when its CRC holds. The confidence of each payload bit is the
    agreement of the re-encoded codeword with the soft values over the bit's constraint span,
    in units of the soft values' spread."""
    soft = np.asarray(soft, dtype=np.float64)
    if soft.shape != (N_CODED,):
        raise ValueError(f"expected {N_CODED} soft values")
    message = kernel("viterbi_decode")(soft, OUTPUTS)
    bits, check = message[:N_PAYLOAD], message[N_PAYLOAD : N_PAYLOAD + N_CRC]
    if not np.array_equal(crc16(bits), check):
        return None, None
    codeword = _convolve(message).astype(np.float64) * 2 - 1
    agree = (soft * codeword).reshape(-1, len(GENERATORS)).sum(1)
    spread = float(np.std(soft)) or 1.0
    # bit i influences coded steps i .. i+K-1: sum the agreement over that span
    span = np.convolve(agree, np.ones(K), mode="full")[K - 1 : K - 1 + N_PAYLOAD]
    return bits_to_int(bits), span / spread
