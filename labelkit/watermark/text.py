"""Invisible text carrier: the watermark payload in variation selectors, once per paragraph.

A carrier is 30 characters from U+FE00..U+FE0F (variation selectors VS1-VS16, a hex nibble
each): the sync pair VS8 VS13, then 14 bytes, high nibble first: the 64-bit payload (the keyed
ID every labelkit watermark carries, ``WatermarkKey.payload_for``), its CRC-16 (CCITT) and four
Reed-Solomon parity bytes, which correct two damaged bytes. It goes after the first character
(with its combining marks) of every paragraph, so that any copied paragraph still decodes.

Why variation selectors: they are default-ignorable (no glyph, no width, no caret stop in
common renderers), NFC, NFKC, NFD and NFKD leave them alone, and str.strip, split, copy and
paste keep them. A run of 30 never occurs in real text (an emoji takes one VS16), and the
carrier starts with VS8, which forms no standardized variation sequence with any character, so
the glyph it follows does not change. What removes it: a deliberate strip (one regular
expression does it), retyping, OCR, and platforms that drop default-ignorable characters. It
is a convenience for honest copies, not protection against someone removing the label; the
statistical watermark (``watermark.logits``) is the layer that survives rewording.
"""

from __future__ import annotations

import binascii
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import reedsolo

from .._impl import kernel
from .detection import Detection

__all__ = [
    "CARRIER_CHARS",
    "CarrierScan",
    "carrier",
    "detect_text",
    "insert_carriers",
    "insert_carriers_utf8",
    "scan_carriers",
    "strip_carriers",
    "strip_carriers_utf8",
]

_VS0 = 0xFE00
_SYNC = (0x7, 0xC)  # VS8, VS13
_DATA_BYTES = 10  # payload 8 + CRC 2
_PARITY = 4
CARRIER_CHARS = 2 + 2 * (_DATA_BYTES + _PARITY)  # 30
_RS = reedsolo.RSCodec(_PARITY)
# One random run of 30 selectors passes as a carrier with probability below this: the sync
# (2^-8), a word within two byte errors of an RS codeword (about 1.4e-3), and the CRC (2^-16).
_P_RANDOM_RUN = 2.0**-8 * 1.4e-3 * 2.0**-16

_CARRIER_RE = re.compile(f"{chr(_VS0 + _SYNC[0])}{chr(_VS0 + _SYNC[1])}[\ufe00-\ufe0f]{{28}}")
_SYNC_UTF8 = chr(_VS0 + _SYNC[0]).encode("utf-8")
_CARRIER_RE_UTF8 = re.compile(re.escape(_SYNC_UTF8 + chr(_VS0 + _SYNC[1]).encode("utf-8"))
                              + rb"(?:\xef\xb8[\x80-\x8f]){28}")
def _crc(data: bytes) -> bytes:
    return binascii.crc_hqx(data, 0xFFFF).to_bytes(2, "big")


@lru_cache(maxsize=64)
def carrier(payload: int) -> str:
    """The 30-character invisible carrier of a 64-bit ``payload``."""
    if not 0 <= payload < 1 << 64:
        raise ValueError("the payload is a 64-bit unsigned integer")
    body = payload.to_bytes(8, "big")
    word = bytes(_RS.encode(body + _crc(body)))
    nibbles = [*_SYNC] + [n for b in word for n in (b >> 4, b & 0xF)]
    return "".join(chr(_VS0 + n) for n in nibbles)


def insert_carriers_utf8(data: bytes, payload: int) -> bytes:
    """Put the carrier after the first character of every paragraph of UTF-8 prose ``data``.

    Paragraphs are separated by blank lines. Carriers already there (any payload) are removed
    first, so labeling twice keeps one per paragraph. The scan and the copy are native."""
    mark = carrier(payload).encode("utf-8")
    data = strip_carriers_utf8(data)
    offsets = np.empty(data.count(b"\n") + 1, np.int64)
    count = kernel("paragraph_marks")(data, offsets)
    out = bytearray(len(data) + count * len(mark))
    kernel("splice")(data, offsets[:count], mark, out)
    return bytes(out)


def insert_carriers(text: str, payload: int) -> str:
    """``insert_carriers_utf8`` for a str."""
    return insert_carriers_utf8(text.encode("utf-8"), payload).decode("utf-8")


def strip_carriers_utf8(data: bytes) -> bytes:
    """UTF-8 ``data`` without labelkit carriers (any payload); other selectors are left alone."""
    return _CARRIER_RE_UTF8.sub(b"", data) if _SYNC_UTF8 in data else data


def strip_carriers(text: str) -> str:
    """``text`` without labelkit carriers (any payload); other selectors are left alone."""
    return _CARRIER_RE.sub("", text) if "\ufe07" in text else text


@lru_cache(maxsize=1024)
def _decode(nibbles: bytes) -> int | None:
    """The payload of 28 data nibbles (values 0-15), or None when the check fails."""
    word = bytes((nibbles[i] << 4) | nibbles[i + 1] for i in range(0, len(nibbles), 2))
    try:
        fixed = bytes(_RS.decode(word)[0])
    except reedsolo.ReedSolomonError:
        return None
    body, crc = fixed[:8], fixed[8:]
    return int.from_bytes(body, "big") if _crc(body) == crc else None


@dataclass(frozen=True)
class CarrierScan:
    """What a scan of a text found: carriers that decode, by payload, and damaged ones."""

    payloads: Counter
    damaged: int
    runs: int  # runs of >= 30 selectors looked at

    @property
    def carriers(self) -> int:
        """How many carriers decoded."""
        return sum(self.payloads.values())

    @property
    def payload(self) -> int | None:
        """The payload most carriers hold (None when none decoded)."""
        return self.payloads.most_common(1)[0][0] if self.payloads else None


def _carriers_in_run(run: bytes) -> list[bytes]:
    """The data nibbles of each carrier in a run of selectors (3 UTF-8 bytes each)."""
    values = run[2::3]  # the last byte: 0x80 + nibble
    out, i = [], 0
    while i + CARRIER_CHARS <= len(values):
        if values[i] - 0x80 == _SYNC[0] and values[i + 1] - 0x80 == _SYNC[1]:
            out.append(bytes(v - 0x80 for v in values[i + 2 : i + CARRIER_CHARS]))
            i += CARRIER_CHARS
        else:
            i += 1
    return out


def scan_carriers(data: bytes | str, batch: int = 4096) -> CarrierScan:
    """Find and decode every carrier in UTF-8 ``data`` (or a str); the scan is native."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    starts, ends = np.empty(batch, np.int64), np.empty(batch, np.int64)
    payloads: Counter = Counter()
    damaged = runs = 0
    seen: dict[bytes, list[int | None]] = {}  # a text repeats one carrier: decode it once
    offset, n = 0, len(raw)
    while offset < n:
        found, offset = kernel("vs_runs")(raw, CARRIER_CHARS, starts, ends, offset)
        for s, e in zip(starts[:found].tolist(), ends[:found].tolist()):
            run = bytes(raw[s:e])
            runs += 1
            decoded = seen.get(run)
            if decoded is None:
                decoded = seen[run] = [_decode(c) for c in _carriers_in_run(run)]
            for value in decoded:
                if value is None:
                    damaged += 1
                else:
                    payloads[value] += 1
        if found < batch:
            break
    return CarrierScan(payloads, damaged, runs)


def detect_text(data: bytes | str) -> Detection:
    """The carrier as a watermark ``Detection``: present when one carrier decodes."""
    scan = scan_carriers(data)
    p = min(1.0, max(scan.runs, 1) * _P_RANDOM_RUN) if scan.carriers else 1.0
    return Detection(scan.carriers > 0, p, scan.payload, score=float(scan.carriers),
                     hypotheses=scan.runs,
                     geometry={"carriers": scan.carriers, "damaged": scan.damaged,
                               "payloads": len(scan.payloads)})
