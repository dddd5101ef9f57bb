"""The seven-field AIGC record of GB 45438 Annex E: codec, validation, provider codes, IDs."""

from __future__ import annotations

import difflib
import json
import os
import secrets
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Iterator

from .errors import InvalidRecord

__all__ = [
    "KEYS",
    "MAX_VALUE_LENGTH",
    "AIGCRecord",
    "ParsedLabel",
    "decode_label",
    "check_value_chars",
    "check_provider_code",
    "uscc_check_char",
    "new_produce_id",
    "produce_id_time",
    "looks_like_code",
    "Problem",
    "field_problems",
    "misspelling_of",
]

# Exact spelling and order of Annex E.
KEYS = (
    "Label",
    "ContentProducer",
    "ProduceID",
    "ReservedCode1",
    "ContentPropagator",
    "PropagateID",
    "ReservedCode2",
)
_ATTRS = (
    "label",
    "content_producer",
    "produce_id",
    "reserved_code1",
    "content_propagator",
    "propagate_id",
    "reserved_code2",
)
LABEL_VALUES = {"1": "AI-generated", "2": "possibly AI-generated", "3": "suspected AI-generated"}
MAX_VALUE_LENGTH = 2048  # the standard sets none; the spec page caps each value here

# Printable ASCII without space, '"' or '\' (0x21, 0x23-0x5B, 0x5D-0x7E); a '"' is tolerated
# because the Annex allows it escaped in the JSON text.
_ALLOWED = frozenset(chr(c) for c in range(0x21, 0x7F) if c not in (0x5C,))

# GB 32100-2015 Unified Social Credit Code.
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_CODE_CHARS = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
SERVICE_TYPES = {"1": "generation", "2": "propagation"}


def check_value_chars(key: str, value: str) -> None:
    """Raise InvalidRecord unless ``value`` obeys the Annex E character rule and length cap."""
    if not isinstance(value, str):
        raise InvalidRecord(f"{key} must be a string, not {type(value).__name__}")
    if len(value) > MAX_VALUE_LENGTH:
        raise InvalidRecord(f"{key} is {len(value)} characters, over {MAX_VALUE_LENGTH}")
    bad = sorted({c for c in value if c not in _ALLOWED})
    if bad:
        shown = ", ".join(repr(c) for c in bad[:5])
        raise InvalidRecord(
            f"{key} has characters outside printable ASCII without space or backslash: {shown}"
        )


def uscc_check_char(first17: str) -> str:
    """Return the GB 32100 check character for the first 17 characters of a USCC."""
    total = 0
    for ch, weight in zip(first17, USCC_WEIGHTS):
        idx = USCC_ALPHABET.find(ch)
        if idx < 0:
            raise InvalidRecord(f"USCC character {ch!r} is not in the GB 32100 alphabet")
        total += idx * weight
    return USCC_ALPHABET[(31 - total % 31) % 31]


def looks_like_code(value: str) -> bool:
    """True when ``value`` is meant as a 27-character provider code (not a free name).

    Any 27 characters of [0-9A-Z] count, so that a wrong format version is reported as an
    invalid code rather than waved through as a name.
    """
    return len(value) == 27 and set(value) <= _CODE_CHARS


def check_provider_code(key: str, value: str, *, service: str | None = None) -> None:
    """Validate a 27-character provider code: structure and USCC checksum; raise InvalidRecord.

    ``service`` ("1" generation, "2" propagation), when given, must match the code's service type.
    """
    if len(value) != 27 or not set(value) <= _CODE_CHARS:
        raise InvalidRecord(f"{key} {value!r} is not a 27-character code of [0-9A-Z]")
    if value[:2] != "00":
        raise InvalidRecord(f"{key} {value!r}: format version must be '00', not {value[:2]!r}")
    if value[2] not in "123456789":
        raise InvalidRecord(f"{key} {value!r}: subject type {value[2]!r} is not a digit 1-9")
    if value[3] not in "0123456789":
        raise InvalidRecord(f"{key} {value!r}: binding type {value[3]!r} is not a digit")
    uscc = value[4:22]
    if value[3] == "1":
        bad = [c for c in uscc if c not in USCC_ALPHABET]
        if bad:
            raise InvalidRecord(
                f"{key} {value!r}: USCC {uscc} has {bad[0]!r}, not in the GB 32100 alphabet"
            )
        want = uscc_check_char(uscc[:17])
        if uscc[17] != want:
            raise InvalidRecord(
                f"{key} {value!r}: USCC {uscc} fails its GB 32100 checksum "
                f"(check character is {uscc[17]!r}, should be {want!r})"
            )
    if value[22] not in SERVICE_TYPES:
        raise InvalidRecord(f"{key} {value!r}: service type {value[22]!r} is not 1 or 2")
    if service is not None and value[22] != service:
        raise InvalidRecord(
            f"{key} {value!r}: service type {value[22]} ({SERVICE_TYPES[value[22]]}) where "
            f"{service} ({SERVICE_TYPES[service]}) is expected"
        )


@dataclass(frozen=True)
class AIGCRecord:
    """The seven Annex E fields; every value a string, empty where unknown. Validated on creation."""

    label: str = "1"
    content_producer: str = ""
    produce_id: str = ""
    reserved_code1: str = ""
    content_propagator: str = ""
    propagate_id: str = ""
    reserved_code2: str = ""

    def __post_init__(self) -> None:
        for key, attr in zip(KEYS, _ATTRS):
            check_value_chars(key, getattr(self, attr))
        if self.label not in LABEL_VALUES:
            raise InvalidRecord(f"Label must be one of 1, 2, 3, not {self.label!r}")
        for key, attr in (("ContentProducer", "content_producer"),
                          ("ContentPropagator", "content_propagator")):
            value = getattr(self, attr)
            if looks_like_code(value):
                check_provider_code(key, value)

    def items(self) -> Iterator[tuple[str, str]]:
        """Yield (Annex E key, value) in the standard's order."""
        for key, attr in zip(KEYS, _ATTRS):
            yield key, getattr(self, attr)

    def as_dict(self) -> dict[str, str]:
        """Return the seven fields keyed by their Annex E names, in order."""
        return dict(self.items())

    def to_json(self, *, wrapped: bool = False) -> str:
        """Compact JSON, all seven keys in order; ``wrapped`` gives {"AIGC":{...}}."""
        body = self.as_dict()
        return json.dumps({"AIGC": body} if wrapped else body, separators=(",", ":"))

    def replace(self, **changes: str) -> "AIGCRecord":
        """Return a copy with some fields changed (attribute names), validated again."""
        return replace(self, **changes)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AIGCRecord":
        """Build from Annex E keys; the first problem field_problems finds is raised."""
        for problem in field_problems(data):
            if problem.status == "fail":
                raise InvalidRecord(problem.message)
        return cls(**{attr: data.get(key, "") for key, attr in zip(KEYS, _ATTRS)})

    @classmethod
    def from_json(cls, text: str) -> "AIGCRecord":
        """Strictly decode bare or wrapped JSON into a validated record."""
        return cls.from_dict(decode_label(text).fields)


@dataclass(frozen=True)
class ParsedLabel:
    """A label's JSON as found: its fields (any types) and whether it was bare or wrapped."""

    fields: dict[str, Any]
    form: str  # "bare" or "wrapped"


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise InvalidRecord(f"duplicate key {key!r} in AIGC JSON")
        seen[key] = value
    return seen


def decode_label(text: str) -> ParsedLabel:
    """Strict JSON decode of a label, bare {"Label":...} or wrapped {"AIGC":{...}}."""
    if len(text) > 16 * MAX_VALUE_LENGTH:
        raise InvalidRecord(f"AIGC JSON is {len(text)} characters, far over any valid label")
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise InvalidRecord(f"AIGC value is not valid JSON: {exc.msg} at position {exc.pos}")
    except ValueError as exc:  # e.g. an integer literal of thousands of digits
        raise InvalidRecord(f"AIGC value is not acceptable JSON: {exc}")
    except RecursionError:
        raise InvalidRecord("AIGC JSON nests too deeply")
    if not isinstance(obj, dict):
        raise InvalidRecord(f"AIGC JSON must be an object, not {type(obj).__name__}")
    if set(obj) == {"AIGC"}:
        inner = obj["AIGC"]
        if not isinstance(inner, dict):
            raise InvalidRecord("wrapped AIGC JSON: the AIGC member must be an object")
        return ParsedLabel(inner, "wrapped")
    return ParsedLabel(obj, "bare")


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or worth a warning) in a label's fields."""

    check: str  # "keys", "types", "label_value", "charset", "producer_code", "propagator_code"
    status: str  # "fail" or "warn"
    message: str


def field_problems(fields: dict[str, Any]) -> list[Problem]:
    """Every Annex E problem in a decoded label's fields; the one rulebook for reading labels."""
    out: list[Problem] = []
    for k in fields:
        if k not in KEYS:
            hint = misspelling_of(k)
            out.append(Problem("keys", "fail", f"key {k!r} is not in Annex E"
                               + (f" (misspelling of {hint!r}?)" if hint else "")))
    missing = [k for k in KEYS if k not in fields]
    if missing:
        out.append(Problem("keys", "warn",
                           "keys missing (all seven should be written): " + ", ".join(missing)))
    for k, v in fields.items():
        if not isinstance(v, str):
            out.append(Problem("types", "fail", f"{k} is a JSON {_json_type(v)}, not a string"))
        elif k in KEYS:
            try:
                check_value_chars(k, v)
            except InvalidRecord as exc:
                out.append(Problem("charset", "fail", exc.reason))
    label = fields.get("Label")
    if not (isinstance(label, str) and label in LABEL_VALUES):
        out.append(Problem("label_value", "fail", f"Label must be 1, 2 or 3, not {label!r}"[:200]))
    for k, check, service in (("ContentProducer", "producer_code", "1"),
                              ("ContentPropagator", "propagator_code", "2")):
        v = fields.get(k)
        if not isinstance(v, str) or not v:
            # A platform labels content whose producer it cannot know "2" or "3" (Measures
            # Art. 6): then its own code stands in the label instead.
            platform_class = label in ("2", "3") and bool(fields.get("ContentPropagator"))
            if k == "ContentProducer" and not platform_class:
                out.append(Problem(check, "fail", "ContentProducer is empty"))
            continue
        if not looks_like_code(v):
            out.append(Problem(check, "warn", f"{k} {v[:60]!r} is a name, not a 27-character "
                                              "provider code"))
            continue
        try:
            check_provider_code(k, v)
        except InvalidRecord as exc:
            out.append(Problem(check, "fail", exc.reason))
            continue
        if v[22] != service:
            out.append(Problem(check, "warn", f"{k} {v} has service type {v[22]} "
                                              f"({SERVICE_TYPES[v[22]]}), expected {service}"))
    return out


def _json_type(value: Any) -> str:
    return {dict: "object", list: "array", bool: "boolean", int: "number", float: "number",
            type(None): "null"}.get(type(value), type(value).__name__)


_MISSPELLINGS = {
    "reservecode1": "ReservedCode1",
    "reservecode2": "ReservedCode2",
    "propagator": "ContentPropagator",
    "producer": "ContentProducer",
    "producerid": "ProduceID",
    "propagatorid": "PropagateID",
    "contentproducerid": "ProduceID",
}


def misspelling_of(key: str) -> str | None:
    """Return the Annex E key that ``key`` is probably a misspelling of, or None."""
    if key in KEYS:
        return None
    folded = key.lower().replace("_", "").replace("-", "")
    for k in KEYS:
        if k.lower() == folded:
            return k
    if folded in _MISSPELLINGS:
        return _MISSPELLINGS[folded]
    close = difflib.get_close_matches(key, KEYS, n=1, cutoff=0.75)
    return close[0] if close else None


# ProduceID: 48-bit millisecond time + 80 random bits in Crockford base32 (26 characters of
# [0-9A-Z], so within the character rule). Random bits make IDs unique across processes and
# machines without coordination; within one process IDs of the same millisecond increment, so
# they stay strictly ordered.
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_id_lock = threading.Lock()
_last_ms = -1
_last_rand = 0
_pid = os.getpid()


def _encode_base32(value: int, length: int) -> str:
    out = []
    for _ in range(length):
        out.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(out))


def new_produce_id() -> str:
    """Return a new time-ordered, globally unique 26-character ProduceID."""
    global _last_ms, _last_rand, _pid
    with _id_lock:
        if os.getpid() != _pid:  # forked: never continue the parent's sequence
            _pid, _last_ms = os.getpid(), -1
        now = time.time_ns() // 1_000_000
        if now <= _last_ms:
            now = _last_ms
            _last_rand += 1
            if _last_rand >> 80:  # 2**80 IDs in one millisecond: borrow the next one
                now, _last_rand = now + 1, secrets.randbits(79)
        else:
            _last_rand = secrets.randbits(79)  # top bit clear: room to increment
        _last_ms = now
        return _encode_base32(now, 10) + _encode_base32(_last_rand, 16)


def produce_id_time(produce_id: str) -> float | None:
    """Return the Unix time (seconds) encoded in a labelkit ProduceID, or None if not one."""
    if len(produce_id) != 26 or any(c not in _CROCKFORD for c in produce_id):
        return None
    ms = 0
    for c in produce_id[:10]:
        ms = ms * 32 + _CROCKFORD.index(c)
    return ms / 1000.0

