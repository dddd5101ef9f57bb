"""A propagating platform's relabeling (Labeling Measures Art. 6, spec/gb45438.md section 5).

A platform reads what it receives and writes its own fields into the one label:
- a valid label: its Label ("1" from a producer) and the producer's fields are kept;
- no valid label, but the uploader declares the content AI-generated: Label "2";
- neither, but traces are found (a labelkit watermark or invisible carrier, a visible label, a
  C2PA manifest, an invalid label): Label "3";
- nothing: the content is not relabeled (``label_class`` None), and nothing is written.

Then ContentPropagator, PropagateID and ReservedCode2 (the platform's signature over the whole
label and the content's essence digest) are written by a metadata-only rewrite, so the essence
is untouched and the producer's ReservedCode1 stays valid; exactly one label remains.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from . import formats
from .errors import UnsupportedFormat, named
from .fileio import atomic_write, read_input
from .limits import DEFAULT_LIMITS, Limits
from .record import AIGCRecord, check_provider_code, new_produce_id
from .signing import SigningKey, TrustStore, load_key, sign_rc2
from .verify import Report, verify
from .watermark import WatermarkKey

__all__ = ["Propagation", "Propagator"]

# Checks whose failure makes a label invalid for the platform (the signature is not among them:
# a platform cannot tell a producer it does not trust from one that lies).
_LABEL_CHECKS = frozenset({"single_label", "json", "keys", "types", "label_value", "charset",
                           "producer_code", "propagator_code", "record"})


@dataclass(frozen=True)
class Propagation:
    """What relabeling one item gave: the bytes (None when not relabeled) and why."""

    data: bytes | None
    label_class: str | None  # "1", "2", "3", or None (not AI-generated as far as one can tell)
    reason: str
    record: AIGCRecord | None
    report: Report  # verify's report of the content as received
    notes: tuple[str, ...] = ()


class Propagator:
    """A platform that relabels what it distributes: its code (service type 2) and its key."""

    def __init__(self, propagator: str, key: SigningKey | str | os.PathLike, *,
                 trust: TrustStore | None = None, watermark_keys: tuple[WatermarkKey, ...] = (),
                 c2pa_trust: Any = None, limits: Limits = DEFAULT_LIMITS,
                 ledger: Any = None) -> None:
        check_provider_code("ContentPropagator", propagator, service="2")
        self.propagator = propagator
        self.key = key if isinstance(key, SigningKey) else load_key(key)
        self.trust = trust or TrustStore()
        self.watermark_keys = tuple(watermark_keys)
        self.c2pa_trust = c2pa_trust
        self.limits = limits
        self.ledger = ledger  # labelkit.ledger: every relabeling is recorded there when given

    def propagate(self, data: bytes, *, declared_ai: bool = False,
                  propagate_id: str | None = None, source: str = "<upload>") -> Propagation:
        """Relabel one item's bytes; ``declared_ai``: the uploader says it is AI-generated."""
        with named(source):
            report = verify(data, trust=self.trust, limits=self.limits, name=source,
                            watermark_key=self.watermark_keys[0] if self.watermark_keys else None,
                            c2pa_trust=self.c2pa_trust)
            container = formats.parse(data, source, self.limits)
            if not getattr(formats.handlers()[container.format], "HAS_METADATA", True):
                raise UnsupportedFormat(f"{container.format} has no metadata field for the "
                                        "platform's label", source=source)
            label_class, reason, producer = _classify(report, declared_ai)
            if label_class is None:
                return Propagation(None, None, reason, None, report)
            fields = dict(producer) if producer else {"Label": label_class}
            fields.update(ContentPropagator=self.propagator,
                          PropagateID=propagate_id or new_produce_id(), ReservedCode2="")
            record = AIGCRecord(
                label=fields.get("Label", label_class),
                content_producer=fields.get("ContentProducer", ""),
                produce_id=fields.get("ProduceID", ""),
                reserved_code1=fields.get("ReservedCode1", ""),
                content_propagator=self.propagator, propagate_id=fields["PropagateID"])
            digest = formats.essence_digest(container)
            record = record.replace(reserved_code2=sign_rc2(self.key, record.as_dict(), digest))
            out = container.with_label(record.to_json())
            notes = ()
            if report.c2pa.get("status") in ("trusted", "valid"):
                notes = ("the rewrite invalidates the C2PA manifest's hard binding: the "
                         "platform's own manifest would have to replace it (not done)",)
            if self.ledger is not None:
                from .ledger import PropagationEntry

                self.ledger.record_propagation(PropagationEntry(
                    propagate_id=record.propagate_id, propagator=self.propagator,
                    produce_id=record.produce_id, producer=record.content_producer,
                    label=record.label, reason=reason, format=container.format,
                    essence_digest=digest.hex(), declared_ai=int(declared_ai),
                    propagated_at=int(time.time() * 1000)))
            return Propagation(out, label_class, reason, record, report, notes)

    def propagate_file(self, src: str | os.PathLike, dst: str | os.PathLike, *,
                       declared_ai: bool = False, propagate_id: str | None = None) -> Propagation:
        """Relabel ``src`` into ``dst`` atomically; nothing is written when not relabeled."""
        result = self.propagate(read_input(src, self.limits), declared_ai=declared_ai,
                                propagate_id=propagate_id, source=os.fspath(src))
        if result.data is not None:
            atomic_write(dst, result.data)
        return result


def _classify(report: Report, declared_ai: bool) -> tuple[str | None, str, dict | None]:
    """(Label class, why, the producer's fields to keep) from verify's report."""
    label_failed = any(c.id in _LABEL_CHECKS and c.status == "fail" for c in report.checks)
    present = report.check("label_present")
    has_label = report.record is not None and not (present and present.status == "fail")
    if has_label and not label_failed:
        fields = {k: str(v) for k, v in report.record.items()}
        return fields.get("Label", "1"), "a valid label: the producer's fields are kept", fields
    if declared_ai:
        return "2", "no valid label; the uploader declares the content AI-generated", None
    traces = []
    if has_label:
        traces.append("an invalid label")
    if report.watermark.get("present"):
        traces.append("labelkit's invisible watermark")
    if report.token_watermark.get("present"):
        traces.append("the token watermark")
    if report.explicit.get("status") == "present":
        traces.append("a visible/explicit label")
    if report.c2pa.get("status") in ("trusted", "valid", "invalid"):
        traces.append("a C2PA manifest")
    if traces:
        return "3", "no valid label, but traces: " + ", ".join(traces), None
    return None, "no label, no declaration and no traces: not relabeled", None

