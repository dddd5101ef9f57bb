"""Verification: read every carrier, run every check, and say what was found in a Report."""

from __future__ import annotations

import functools
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

from . import formats, imaging
from .errors import DuplicateLabel, InvalidRecord, LabelkitError, named
from .fileio import read_input
from .limits import DEFAULT_LIMITS, Limits
from .policy import Policy
from .record import KEYS, AIGCRecord, decode_label, field_problems
from .signing import (
    RC1_VERSION,
    PublicKey,
    SigningKey,
    TrustStore,
    load_key,
    load_public_key,
    parse_rc1,
)
from .watermark import MIN_SIDE as WATERMARK_MIN_SIDE
from .watermark import WatermarkKey, detect_image

__all__ = [
    "SCHEMA_VERSION",
    "STATUSES",
    "VERDICTS",
    "Check",
    "Report",
    "read_record",
    "trust_store",
    "verify",
]

SCHEMA_VERSION = 1
STATUSES = ("pass", "fail", "warn", "n/a", "error")
# traces_only: no metadata label, but the content carries labelkit's traces (watermark or
# visible label): it was labeled once and the metadata was stripped on the way.
VERDICTS = ("compliant", "noncompliant", "not_found", "traces_only", "inconclusive")
# Fingerprint bits that may differ while still being "the same picture, edited or re-encoded".
_SAME_PICTURE_BITS = 12


@dataclass
class Check:
    """One check's outcome: status is pass / fail / warn / n/a / error."""

    id: str
    status: str
    message: str
    evidence: dict[str, Any] | None = None


@dataclass
class Report:
    """Everything verify found about one file; JSON-serialisable (``to_dict``/``to_json``)."""

    path: str
    format: str | None = None
    verdict: str = "inconclusive"
    record: dict[str, Any] | None = None
    checks: list[Check] = field(default_factory=list)
    carriers: list[dict[str, str]] = field(default_factory=list)
    explicit: dict[str, Any] = field(default_factory=lambda: {"status": "n/a"})
    signature: dict[str, Any] = field(default_factory=lambda: {"status": "n/a"})
    watermark: dict[str, Any] = field(default_factory=lambda: {"status": "n/a"})
    # The generation-time token watermark of text: looked for only when a tokenizer is given.
    token_watermark: dict[str, Any] = field(default_factory=lambda: {"status": "n/a"})
    # C2PA Content Credentials: trusted / valid (untrusted) / invalid / absent / n/a.
    c2pa: dict[str, Any] = field(default_factory=lambda: {"status": "n/a"})
    schema_version: int = SCHEMA_VERSION

    def add(self, id: str, status: str, message: str, **evidence: Any) -> None:
        """Append a check."""
        self.checks.append(Check(id, status, message, evidence or None))

    def check(self, id: str) -> Check | None:
        """The first check with this id, or None."""
        return next((c for c in self.checks if c.id == id), None)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict in the report schema."""
        d = asdict(self)
        return {"schema_version": d.pop("schema_version"), **d}

    def to_json(self) -> str:
        """The report as one line of JSON."""
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))


def trust_store(
    key: SigningKey | str | os.PathLike | None = None,
    public_key: PublicKey | str | os.PathLike | Iterable[PublicKey | str | os.PathLike] | None = None,
) -> TrustStore:
    """Build a trust store from a secret key and/or public keys (objects or key-file paths)."""
    store = TrustStore()
    if key is not None:
        store.add((key if isinstance(key, SigningKey) else load_key(key)).public)
    if public_key is not None:
        items = [public_key] if isinstance(public_key, (PublicKey, str, os.PathLike)) else public_key
        for item in items:
            store.add(item if isinstance(item, PublicKey) else load_public_key(item))
    return store


def verify(
    source: str | os.PathLike | bytes,
    *,
    key: SigningKey | str | os.PathLike | None = None,
    public_key: Any = None,
    trust: TrustStore | None = None,
    policy: Policy | None = None,
    limits: Limits = DEFAULT_LIMITS,
    detect_visible: bool = True,
    require_visible: bool = False,
    detect_watermark: bool = True,
    watermark_key: WatermarkKey | None = None,
    tokenizer: Any = None,
    c2pa_trust: Any = None,
    check_c2pa: bool = True,
    name: str | None = None,
) -> Report:
    """Verify a file or bytes and return a Report; raises LabelkitError if it cannot be parsed.

    ``key`` (the provider's secret key) or ``public_key`` (one or several) enable the signature
    check; ``detect_visible`` decodes the pixels to find labelkit's visible label, and
    ``require_visible`` makes its absence a failure instead of a warning (the default warns:
    content handed out under Measures Art. 9 legitimately lacks it, and a label drawn by another
    tool is not recognised). The watermark is looked for when the secret is at hand: ``key``
    (it is derived from the signing key) or ``watermark_key``; it is what still identifies
    content whose metadata was stripped (verdict ``traces_only``). For text, ``tokenizer``
    (the generating model's: a callable from text to token ids, or an object with ``encode``)
    also tests the generation-time token watermark with the green share of ``policy.text``.
    A C2PA manifest is validated offline (``check_c2pa``) against ``c2pa_trust``: PEM text of
    the trust anchors, or CA file paths.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, path = bytes(source), name or "<bytes>"
    else:
        path = name or os.fspath(source)
        data = formats.load(source, limits)
    if tokenizer is not None and not (hasattr(tokenizer, "encode") or callable(tokenizer)):
        raise TypeError("tokenizer must be callable (text -> ids) or have an encode method")
    if key is not None and not isinstance(key, SigningKey):
        key = load_key(key)
    trust = trust if trust is not None else trust_store(key, public_key)
    if watermark_key is None and key is not None:
        watermark_key = WatermarkKey.from_signing_key(key)
    policy = policy or Policy()
    with named(path):
        return _verify(data, path, trust, policy, limits, detect_visible, require_visible,
                       watermark_key if detect_watermark else None, tokenizer,
                       c2pa_anchors(c2pa_trust) if check_c2pa else False)


def c2pa_anchors(trust: Any) -> str:
    """PEM text of C2PA trust anchors from PEM text, a CA file path, or several paths."""
    if trust is None:
        return ""
    if isinstance(trust, str) and "-----BEGIN" in trust:
        return trust
    from .credentials.certs import load_trust_anchors

    paths = [trust] if isinstance(trust, (str, os.PathLike)) else list(trust)
    return load_trust_anchors(paths)


def _verify(data: bytes, path: str, trust: TrustStore, policy: Policy, limits: Limits,
            detect_visible: bool, require_visible: bool,
            watermark_key: WatermarkKey | None, tokenizer: Any = None,
            anchors: str | bool = "") -> Report:
    container = formats.parse(data, path, limits)
    report = Report(path=path, format=container.format)
    from .audio.pipeline import is_audio

    modality = formats.handlers()[container.format].MODALITY
    if modality in ("text", "document"):
        report.add("parse", "pass", _text_parse_message(container))
    elif is_audio(container):
        report.add("parse", "pass", f"{container.format} audio, "
                   f"{getattr(container, 'sample_rate', 0) or '?'} Hz, "
                   f"{getattr(container, 'channels', 0) or '?'} channel(s)")
    else:
        report.add("parse", "pass", f"{container.format} {container.width}x{container.height}, "
                   f"{container.frames} frame(s)")
    record = _check_carriers(report, container, optional=not getattr(
        formats.handlers()[container.format], "HAS_METADATA", True))
    if record is not None:
        essence = functools.cache(lambda: formats.essence_digest(container))  # hashed once
        _check_signature(report, record, container, data, trust, limits, essence)
        if record.reserved_code2:
            _check_propagator_signature(report, record, trust, essence)
    elif report.record is not None and report.record.get("ReservedCode1"):
        report.signature = {"status": "error", "message": "the label is invalid; not checked"}
    else:
        report.signature = {"status": "n/a", "message": "no label to check"}
    if modality in ("text", "document"):
        _check_text(report, container, policy, detect_visible, require_visible,
                    watermark_key, record)
        _check_tokens(report, container, policy, watermark_key, tokenizer)
    elif is_audio(container):
        _check_audio(report, data, path, limits, policy, detect_visible, require_visible,
                     watermark_key, record)
    elif modality == "video":
        _check_video(report, data, path, limits, policy, detect_visible, require_visible,
                     watermark_key, record)
    else:
        _check_picture(report, data, container, limits, policy, detect_visible,
                       require_visible, watermark_key, record)
    if anchors is not False:  # False: not looked for; "" looked for without trust anchors
        _check_c2pa(report, data, container, anchors or None, record)
    report.verdict = _verdict(report)
    return report


def _check_picture(report: Report, data: bytes, container, limits: Limits, policy: Policy,
                   detect_visible: bool, require_visible: bool,
                   watermark_key: WatermarkKey | None, record: AIGCRecord | None) -> None:
    """A picture's own checks: the visible label and the watermark, from its first frame."""
    pixels = None
    if detect_visible or watermark_key is not None:
        try:
            pixels = imaging.decode_first_frame(data, container.format, report.path, limits)
        except LabelkitError as exc:
            _undecodable(report, exc, "pixels", detect_visible, watermark_key)
    if pixels is not None and detect_visible:
        _check_visible(report, pixels, policy, require_visible)
    if pixels is not None and watermark_key is not None:
        _check_watermark(report, pixels, watermark_key, record)
    elif watermark_key is None:
        report.watermark = {"status": "n/a", "message": "no secret key given: not looked for"}


def _check_c2pa(report: Report, data: bytes, container, anchors: str | None,
                record: AIGCRecord | None) -> None:
    """The C2PA manifest: its validation state, and whether its AIGC assertion is the label."""
    from .credentials.reader import read_credentials

    found = read_credentials(data, container, trust_anchors=anchors, record=record)
    binding = found.get("soft_binding")
    if binding is not None:  # the watermark found in the content, if it was looked for
        seen = report.watermark.get("payload") if report.watermark.get("present") else None
        binding["matches_watermark"] = None if seen is None else seen == binding["payload"]
    report.c2pa = found
    status = found["status"]
    if status in ("trusted", "valid", "invalid"):
        report.add("c2pa", {"trusted": "pass", "valid": "warn", "invalid": "fail"}[status],
                   found["message"], failures=found.get("failures") or None)
    if found.get("aigc_matches_label") is False:
        report.add("c2pa_aigc", "fail", "the C2PA manifest's AIGC assertion differs from the "
                   "metadata label", assertion=found.get("aigc"))
    elif found.get("aigc_matches_label"):
        report.add("c2pa_aigc", "pass", "the C2PA manifest's AIGC assertion is the metadata label")


def read_record(
    source: str | os.PathLike | bytes, *, limits: Limits = DEFAULT_LIMITS, name: str | None = None
) -> AIGCRecord | None:
    """The file's one AIGC record, read strictly: None when unlabeled.

    Raises DuplicateLabel when the file holds more than one label (GB 45438 6.1 c), and
    InvalidRecord when the label breaks Annex E (JSON, keys, types, characters, codes).
    Use ``verify`` for a report of every problem instead of the first one.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, path = bytes(source), name or "<bytes>"
    else:
        path = name or os.fspath(source)
        data = formats.load(source, limits)
    with named(path):
        carriers = formats.parse(data, path, limits).carriers
        if not carriers:
            return None
        if len(carriers) > 1:
            raise DuplicateLabel(
                f"{len(carriers)} AIGC labels ("
                + ", ".join(f"{c.kind} at {c.location}" for c in carriers[:5])
                + (", ..." if len(carriers) > 5 else "") + "); exactly one is allowed"
            )
        try:
            return AIGCRecord.from_json(carriers[0].text)
        except InvalidRecord as exc:
            where = f"{carriers[0].kind} at {carriers[0].location}"
            raise InvalidRecord(f"{where}: {exc.reason}") from None


# -- carriers and fields ----------------------------------------------------------------------


def _check_carriers(report: Report, container: formats.Container,
                    optional: bool = False) -> AIGCRecord | None:
    """Check every carrier; return the valid record, if exactly one label is valid.

    ``optional``: the format has no metadata field (plain text), so none is not a failure."""
    carriers = container.carriers
    report.carriers = [{"kind": c.kind, "location": c.location, "text": c.text} for c in carriers]
    if not carriers and optional:
        report.add("label_present", "n/a", f"{container.format} has no metadata field; its "
                   "implicit label is the invisible carrier (see watermark)")
        return None
    if not carriers:
        report.add("label_present", "fail", "no AIGC label in any carrier of this format")
        return None
    report.add("label_present", "pass", f"{len(carriers)} AIGC carrier(s) found",
               kinds=sorted({c.kind for c in carriers[:1000]}))
    paired = getattr(formats.handlers()[container.format], "ONE_LABEL_IN", frozenset())
    if (len(carriers) == 2 and {c.kind for c in carriers} <= paired
            and len({c.kind for c in carriers}) == 2 and _same_record(carriers)):
        report.add("single_label", "pass", f"one AIGC label, in the two places "
                   f"{container.format} keeps it ({' and '.join(c.kind for c in carriers)})")
    elif len(carriers) > 1:
        texts = {c.text for c in carriers[:1000]}
        what = "identical copies" if len(texts) == 1 else "conflicting labels"
        report.add("single_label", "fail",
                   f"{len(carriers)} AIGC carriers ({what}); GB 45438 6.1 c) allows exactly one",
                   locations=[c.location for c in carriers[:20]])
    else:
        report.add("single_label", "pass", "exactly one AIGC label")
    chosen: AIGCRecord | None = None
    for i, carrier in enumerate(carriers[:MAX_CHECKED_CARRIERS]):
        record = _check_fields(report, carrier, first=i == 0)
        if chosen is None and record is not None:
            chosen = record
    if len(carriers) > MAX_CHECKED_CARRIERS:
        report.add("carriers", "warn", f"{len(carriers) - MAX_CHECKED_CARRIERS} more carriers "
                   "not checked field by field")
        # Keep the report bounded: unchecked carriers keep a prefix of their text, and at most
        # 1000 are listed.
        for c in report.carriers[MAX_CHECKED_CARRIERS:]:
            c["text"] = c["text"][:200]
        del report.carriers[1000:]
    return chosen


def _same_record(carriers: list[formats.Carrier]) -> bool:
    """Whether carriers hold the same fields (bare or wrapped, whitespace aside)."""
    try:
        return len({json.dumps(decode_label(c.text).fields, sort_keys=True)
                    for c in carriers}) == 1
    except InvalidRecord:
        return False


# Checks that pass unless field_problems says otherwise, with the message for a pass.
_FIELD_CHECKS = {
    "keys": "the seven Annex E keys, spelled exactly",
    "types": "every value is a string",
    "label_value": "Label is 1, 2 or 3",
    "charset": "values obey the character rule",
    "producer_code": "ContentProducer: structure and USCC checksum valid",
}
# A file may hold thousands of carriers (a hostile XMP): check this many fully, list the rest.
MAX_CHECKED_CARRIERS = 8


def _check_fields(report: Report, carrier: formats.Carrier, *, first: bool) -> AIGCRecord | None:
    where = f"{carrier.kind} at {carrier.location}"
    try:
        parsed = decode_label(carrier.text)
    except InvalidRecord as exc:
        report.add("json", "fail", f"{where}: {exc.reason}")
        return None
    fields_ = parsed.fields
    if first or report.record is None:
        report.record = dict(fields_)
    report.add("json", "pass", f"{where}: strict JSON, {parsed.form} form")
    problems = field_problems(fields_)
    for p in problems:
        report.add(p.check, p.status, f"{where}: {p.message}")
    flagged = {p.check for p in problems}
    for check, message in _FIELD_CHECKS.items():
        if check not in flagged:
            report.add(check, "pass", message)
    if "ContentPropagator" in fields_ and fields_["ContentPropagator"] and \
            "propagator_code" not in flagged:
        report.add("propagator_code", "pass", "ContentPropagator: structure and USCC checksum valid")
    if any(p.status == "fail" for p in problems):
        return None
    return AIGCRecord.from_dict({k: fields_.get(k, "") for k in KEYS})


# -- signature --------------------------------------------------------------------------------


def _check_signature(
    report: Report,
    record: AIGCRecord,
    container: formats.Container,
    data: bytes,
    trust: TrustStore,
    limits: Limits,
    essence: Callable[[], bytes],
) -> None:
    def done(status: str, check_status: str, message: str, **extra: Any) -> None:
        report.signature = {"status": status, "message": message, **extra}
        report.add("signature", check_status, message)

    rc1 = record.reserved_code1
    if not rc1:
        return done("absent", "warn", "ReservedCode1 is empty: the label is not bound to the content")
    parsed = parse_rc1(rc1)
    if parsed is None:
        if rc1.startswith(RC1_VERSION + "."):
            return done("malformed", "fail",
                        "ReservedCode1 claims a labelkit signature but is malformed "
                        "(truncated or edited)")
        return done("unknown_scheme", "n/a",
                    "ReservedCode1 is not a labelkit signature (another producer's scheme)")
    kid = parsed.key_id.hex()
    if not len(trust):
        return done("unverified", "warn",
                    f"signed with key {kid}; no public key given to verify it", key_id=kid)
    pub = trust.get(parsed.key_id)
    if pub is None:
        return done("unknown_key", "warn",
                    f"signed with key {kid}, which is not among the trusted keys", key_id=kid)
    fields_ = record.as_dict()
    digest = essence()
    extra = {"key_id": kid, "algorithm": parsed.algorithm}
    if pub.verify(parsed.signature, parsed.message(fields_, digest)):
        return done("valid", "pass", f"valid {parsed.algorithm} signature by key {kid}; "
                    "label and content unchanged", **extra)
    if digest == parsed.digest or not pub.verify(parsed.signature, parsed.message(fields_)):
        return done("fields_edited", "fail",
                    "the label's fields were edited after signing", **extra)
    # The fields are authentic but the media differs from what was signed.
    if not parsed.fingerprint:
        return done("content_mismatch", "fail",
                    "the content differs from what was labeled: edited, re-encoded, or the label "
                    "was copied from other content (a metadata-only label carries no fingerprint "
                    "to tell which)", **extra)
    try:
        if formats.handlers()[container.format].MODALITY == "video":
            from .video.inspect import inspect_video

            now = inspect_video(data, report.path, limits, Policy(), detect_visible=False
                                ).fingerprint
        else:
            now = imaging.fingerprint_bytes(data, report.path, limits)
    except LabelkitError as exc:
        return done("content_changed", "fail",
                    f"the content differs from what was labeled ({exc.reason})", **extra)
    distance = imaging.hamming(now, parsed.fingerprint)
    if distance <= _SAME_PICTURE_BITS:
        return done("content_changed", "fail",
                    f"the content was changed after labeling (same picture, fingerprint "
                    f"distance {distance}/64)", fingerprint_distance=distance, **extra)
    return done("label_copied", "fail",
                f"the label was copied onto other content (fingerprint distance {distance}/64)",
                fingerprint_distance=distance, **extra)


def _check_propagator_signature(report: Report, record: AIGCRecord, trust: TrustStore,
                                essence: Callable[[], bytes]) -> None:
    """ReservedCode2, a platform's signature (Measures Art. 6): checked when its key is trusted,
    otherwise reported as unverified without failing the file."""
    from .signing import propagator_message

    def done(status: str, check_status: str, message: str, **extra: Any) -> None:
        report.signature["propagator"] = {"status": status, "message": message, **extra}
        report.add("propagator_signature", check_status, message)

    parsed = parse_rc1(record.reserved_code2)
    if parsed is None or parsed.fingerprint:
        return done("unknown_scheme", "n/a", "ReservedCode2 is not a labelkit platform "
                    "signature (another scheme): not checked")
    kid = parsed.key_id.hex()
    pub = trust.get(parsed.key_id)
    if pub is None:
        return done("unverified", "n/a", f"ReservedCode2 signed by platform key {kid}: "
                    "unverified (give the platform's public key with --pubkey)", key_id=kid)
    digest = essence()
    fields_ = record.as_dict()
    if pub.verify(parsed.signature, propagator_message(fields_, parsed.algorithm, parsed.key_id,
                                                       digest)):
        return done("valid", "pass", f"valid platform signature (ReservedCode2) by key {kid} "
                    f"for {record.content_propagator or 'the propagator'}", key_id=kid)
    if digest != parsed.digest and pub.verify(parsed.signature, propagator_message(
            fields_, parsed.algorithm, parsed.key_id, parsed.digest)):
        return done("content_mismatch", "fail", "the content differs from what the platform "
                    "signed (ReservedCode2)", key_id=kid)
    return done("fields_edited", "fail", "the label was edited after the platform signed it "
                "(ReservedCode2)", key_id=kid)


# -- visible label ----------------------------------------------------------------------------


def _check_visible(report: Report, pixels, policy: Policy, require_visible: bool) -> None:
    from .explicit.image import RULE_HEIGHT_RATIO, detect_image_label

    found = detect_image_label(pixels, policy.image)
    if found.present:
        report.explicit = {
            "status": "present",
            "position": found.position,
            "box": list(found.box),
            "ink_height_ratio": round(found.ink_height_ratio, 4),
            "score": round(float(found.score), 3),
        }
        ok = found.ink_height_ratio >= RULE_HEIGHT_RATIO
        report.add("explicit", "pass" if ok else "fail",
                   f"visible label at {found.position}, ink height "
                   f"{found.ink_height_ratio:.1%} of the shortest side"
                   + ("" if ok else " (under the 5% minimum)"))
    else:
        report.explicit = {"status": "absent"}
        report.add("explicit", "fail" if require_visible else "warn",
                   "no labelkit visible label found (labelkit recognises its own label only; one "
                   "is required unless the content was handed out on request with a recipient "
                   "log, Measures Art. 9)")


# -- watermark --------------------------------------------------------------------------------


def _check_watermark(report: Report, pixels, key: WatermarkKey, record: AIGCRecord | None) -> None:
    _report_watermark(report, detect_image(pixels, key), key, record,
                      min(pixels.shape[:2]) < WATERMARK_MIN_SIDE, "pictures")


def _report_watermark(report: Report, found, key: WatermarkKey, record: AIGCRecord | None,
                      small: bool, what: str) -> None:
    """Put a Detection into the report: its summary, and a check matching it to the label."""
    expected = key.payload_for(record.produce_id) if record is not None else None
    matches = None if expected is None or found.payload is None else found.payload == expected
    status = "n/a" if found.reason else "present" if found.present else "absent"
    report.watermark = {"status": status, **found.to_dict(), "matches_record": matches}
    p = f"p = {found.p_value:.2g}"
    if not found.present and small:
        # Labeler does not mark pictures this small; a larger marked one may have been shrunk
        # to this size, which is why it was looked for all the same.
        report.watermark["message"] = "too small to have been marked at this size"
        report.add("watermark", "n/a", f"no watermark found ({p}); {what} under "
                   f"{WATERMARK_MIN_SIDE} px are not marked")
    elif not found.present:
        report.add("watermark", "warn" if record is not None else "n/a",
                   f"no watermark of this key found ({p})")
    elif found.payload is None:
        report.add("watermark", "warn", f"a watermark of this key is present ({p}) but its "
                   "payload could not be read back (damaged by heavy processing)")
    elif matches is None:
        report.add("watermark", "warn", f"watermark {found.payload_hex} found ({p}); there is no "
                   "metadata label to match it with (stripped): only traces remain")
    elif matches:
        report.add("watermark", "pass", f"watermark {found.payload_hex} found ({p}); it belongs "
                   "to this label's ProduceID")
    else:
        report.add("watermark", "fail", f"watermark {found.payload_hex} found ({p}) but it belongs "
                   "to another ProduceID: the label was replaced or copied from other content")


# -- text and documents -----------------------------------------------------------------------


def _report_explicit(report: Report, spans: list, evidence: dict, found: str, absent: str,
                     require_visible: bool) -> None:
    """Report a notice or cue found at ``spans`` (each with ``where``), or its absence."""
    if not spans:
        report.explicit = {"status": "absent"}
        report.add("explicit", "fail" if require_visible else "warn", absent)
        return
    edges = any(s.where in ("start", "end") for s in spans)
    report.explicit = {"status": "present", **evidence}
    report.add("explicit", "pass" if edges else "warn",
               found + ("" if edges else "; not at the start or the end"))


def _text_parse_message(container) -> str:
    text = getattr(container, "text", None)
    if text is None:
        return f"{container.format} document"
    kind = "plain" if container.format == "text" else container.format
    return f"{kind} text, {len(text)} characters"


def _check_text(report: Report, container, policy: Policy, detect_visible: bool,
                require_visible: bool, watermark_key: WatermarkKey | None,
                record: AIGCRecord | None) -> None:
    """The text's own checks: the notice (where it is) and the invisible carrier."""
    from .explicit.text import find_notices
    from .watermark.text import detect_text

    text = getattr(container, "text", None)
    if text is None:  # a document: its pages and paragraphs are not read
        report.explicit = {"status": "n/a", "message": "documents' notices are not read"}
        report.watermark = {"status": "n/a", "message": "documents carry no text watermark"}
        return
    kind = getattr(container, "kind", "text")
    if detect_visible:
        spans = find_notices(text, kind)
        where = ", ".join(w for w in ("start", "middle", "end") if any(s.where == w for s in spans))
        _report_explicit(report, spans, {"spans": [s.to_dict() for s in spans[:20]]},
                         f"text notice ({spans[0].text!r}) at the {where}" if spans else "",
                         "no notice with an AI element and a generation element (AI生成) found",
                         require_visible)
    found = detect_text(container._data)  # the bytes: scanning needs no decoding
    paragraphs = f"{found.geometry['carriers']} paragraph(s)"
    if not getattr(formats.handlers()[container.format], "HAS_METADATA", True):
        # Plain text: the carrier is the implicit label, so its absence is a missing label.
        present = report.check("label_present")
        if present is not None:
            report.checks.remove(present)
        report.add("label_present", "pass" if found.present else "fail",
                   f"invisible carrier {found.payload_hex} in {paragraphs} (plain text has no "
                   "metadata field; the ledger maps the carrier to its ProduceID)"
                   if found.present else "no invisible carrier, and plain text has no "
                   "metadata field: no implicit label")
    if watermark_key is not None and record is not None:
        _report_watermark(report, found, watermark_key, record, False, "texts")
    else:
        # The carrier is read without a key; matching it to a label needs the key and a label.
        report.watermark = {"status": "present" if found.present else "absent",
                            **found.to_dict(), "matches_record": None}
        report.add("watermark", "pass" if found.present else "n/a",
                   f"invisible carrier {found.payload_hex} in {paragraphs}"
                   + ("; give the key to match it with the label" if record else "")
                   if found.present else "no invisible carrier")
    report.watermark.update(carriers=found.geometry["carriers"],
                            damaged=found.geometry["damaged"])


def _check_tokens(report: Report, container, policy: Policy, watermark_key: WatermarkKey | None,
                  tokenizer: Any) -> None:
    """The generation-time token watermark of the text the model wrote (notice and carriers
    removed), tokenized with the caller's tokenizer."""
    from .explicit.text import find_notices
    from .watermark.text import strip_carriers
    from .watermark.tokens import TokenWatermark

    text = getattr(container, "text", None)
    if tokenizer is None or text is None:
        report.token_watermark = {"status": "n/a", "message": "no tokenizer given: not looked for"
                                  if text is not None else "documents' text is not read"}
        return
    if watermark_key is None:
        report.token_watermark = {"status": "n/a", "message": "no secret key given: not looked for"}
        return
    body = container.content()
    for span in reversed(find_notices(body, getattr(container, "kind", "text"))):
        body = body[:span.start] + body[span.end:]
    try:
        ids = _tokenize(tokenizer, strip_carriers(body).strip())
        found = TokenWatermark(watermark_key, gamma=policy.text.token_gamma).detect(ids)
    except Exception as exc:  # the caller's tokenizer: any failure is reported, not raised
        report.token_watermark = {"status": "error", "message": f"tokenizer failed: {exc}"}
        # warn, not error: the label's own checks stand whatever the caller's tokenizer does
        report.add("token_watermark", "warn", f"tokenizer failed: {exc}")
        return
    counts = found.geometry
    summary = (f"z = {found.score:.1f} over {counts['scored']} distinct token pairs "
               f"({counts['green']} green, {counts['gamma']:.0%} expected), p = {found.p_value:.2g}")
    report.token_watermark = {"status": "present" if found.present else "absent",
                              **found.to_dict(), **counts}
    report.token_watermark.pop("payload", None)
    report.add("token_watermark", "pass" if found.present else "n/a",
               ("generation watermark present: " if found.present
                else "no generation watermark: ") + summary)


def _tokenize(tokenizer: Any, text: str) -> list[int]:
    """Token ids from a callable, a tiktoken Encoding, or a transformers/tokenizers tokenizer."""
    if not hasattr(tokenizer, "encode"):
        ids = tokenizer(text)
    elif type(tokenizer).__module__.partition(".")[0] == "tiktoken":
        # tiktoken refuses text that spells a special token unless told to treat it as text
        ids = tokenizer.encode(text, disallowed_special=())
    else:
        ids = tokenizer.encode(text)
    ids = getattr(ids, "ids", ids)  # tokenizers.Encoding
    return [int(i) for i in ids]


# -- video ------------------------------------------------------------------------------------


def _check_video(report: Report, data, path: str, limits: Limits, policy: Policy,
                 detect_visible: bool, require_visible: bool,
                 watermark_key: WatermarkKey | None, record: AIGCRecord | None) -> None:
    """The frames' checks: the visible label's presence and duration from the start, the mark."""
    from .explicit.image import RULE_HEIGHT_RATIO
    from .policy import VIDEO_MIN_LABEL_S
    from .video.inspect import inspect_video

    if not detect_visible and watermark_key is None:
        return
    try:
        seen = inspect_video(data, path, limits, policy, detect_visible=detect_visible,
                             watermark_key=watermark_key)
    except LabelkitError as exc:
        _undecodable(report, exc, "video", detect_visible, watermark_key)
        return
    found = seen.visible
    if detect_visible and found is not None and found.present:
        until = round(seen.visible_until or 0.0, 3)
        report.explicit = {
            "status": "present", "position": found.position, "box": list(found.box),
            "ink_height_ratio": round(found.ink_height_ratio, 4),
            "score": round(float(found.score), 3), "duration_s": until,
            "duration_at_least": seen.visible_capped,
        }
        tall = found.ink_height_ratio >= RULE_HEIGHT_RATIO
        long = until >= VIDEO_MIN_LABEL_S
        report.add("explicit", "pass" if tall and long else "fail",
                   f"visible label at {found.position} from the start for "
                   f"{'at least ' if seen.visible_capped else ''}{until:.2f} s, ink height "
                   f"{found.ink_height_ratio:.1%} of the shortest side"
                   + ("" if long else f" (under the {VIDEO_MIN_LABEL_S:.0f} s minimum)")
                   + ("" if tall else " (under the 5% minimum)"))
    elif detect_visible:
        report.explicit = {"status": "absent"}
        report.add("explicit", "fail" if require_visible else "warn",
                   "no labelkit visible label on the opening frame (labelkit recognises its own "
                   "label only; one is required unless the content was handed out on request "
                   "with a recipient log, Measures Art. 9)")
    if watermark_key is not None and seen.watermark is not None:
        small = min(seen.width, seen.height) < WATERMARK_MIN_SIDE
        _report_watermark(report, seen.watermark, watermark_key, record, small, "videos")
        report.watermark["frames"] = seen.frames_seen


# -- audio ------------------------------------------------------------------------------------


def _check_audio(report: Report, data, path: str, limits: Limits, policy: Policy,
                 detect_visible: bool, require_visible: bool,
                 watermark_key: WatermarkKey | None, record: AIGCRecord | None) -> None:
    """The samples' checks: the audible cue (where it is) and the watermark."""
    from .audio.codec import decode_audio
    from .explicit.audio import detect_cue
    from .watermark.audio import detect_audio

    if not detect_visible and watermark_key is None:
        return
    try:
        pcm, info = decode_audio(data, path, limits)
    except LabelkitError as exc:
        _undecodable(report, exc, "audio", detect_visible, watermark_key)
        return
    rate = info.sample_rate
    if detect_visible:
        found = detect_cue(pcm, rate, policy.audio)
        where = ", ".join(f"{s.where} {s.start_s:.2f}-{s.end_s:.2f} s" for s in found.spans)
        _report_explicit(report, found.spans, found.to_dict(),
                         f"audible cue (Morse \".- ..\") at {where}",
                         "no audible cue found (labelkit recognises the Morse \".- ..\" cue, not "
                         "a spoken notice; one is required unless the content was handed out on "
                         "request with a recipient log, Measures Art. 9)", require_visible)
    if watermark_key is not None:
        found = detect_audio(pcm, rate, watermark_key)
        _report_watermark(report, found, watermark_key, record, False, "clips")


def _undecodable(report: Report, exc: LabelkitError, what: str, detect_visible: bool,
                 watermark_key: WatermarkKey | None) -> None:
    """Mark the content checks that needed the decoded ``what`` as errors (never "absent")."""
    for layer, wanted in (("explicit", detect_visible), ("watermark", watermark_key)):
        if wanted:
            setattr(report, layer, {"status": "error", "message": exc.reason})
            report.add(layer, "error", f"could not decode the {what}: {exc.reason}")


def _verdict(report: Report) -> str:
    statuses = {c.status for c in report.checks}
    if report.check("label_present") and report.check("label_present").status == "fail":
        if (report.watermark.get("present") or report.token_watermark.get("present")
                or report.explicit.get("status") == "present"):
            return "traces_only"
        return "not_found" if "error" not in statuses else "inconclusive"
    if "fail" in statuses:
        return "noncompliant"
    if "error" in statuses:
        return "inconclusive"
    return "compliant"
