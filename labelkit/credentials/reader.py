"""Reading and validating a file's C2PA manifest for ``verify``, offline.

The state comes from c2pa-rs against the configured trust anchors: ``trusted`` (the chain ends
at an anchor), ``valid`` (intact, but signed by a certificate no anchor vouches for),
``invalid`` (a hash, signature or structure check failed, or the manifest cannot be read),
``absent`` (no manifest) and ``n/a`` (a format C2PA cannot carry). The state is read from
``validation_state``, never from an empty failure list: an untrusted but intact manifest is
``Valid`` and still lists ``signingCredential.untrusted`` as a failure (NOTES section 1).
Remote manifests are never fetched and OCSP is never asked.
"""

from __future__ import annotations

import io
from typing import Any

from ..record import AIGCRecord
from .manifest import AIGC_ASSERTION, SOFT_BINDING_ALG, mime_type, not_applicable, payload_of
from .signer import settings

__all__ = ["read_credentials"]

_STATES = {"Trusted": "trusted", "Valid": "valid", "Invalid": "invalid"}


def read_credentials(data: bytes, container: Any, *, trust_anchors: str | None,
                     record: AIGCRecord | None) -> dict[str, Any]:
    """The report's ``c2pa`` object for one file (see the module docstring for ``status``)."""
    mime = mime_type(container)
    if mime is None:
        return {"status": "n/a", "message": f"not applicable: {not_applicable(container.format)}"}
    try:
        import c2pa
    except ImportError:
        return {"status": "n/a", "message": "c2pa-python is not installed: not looked for"}
    try:
        context = c2pa.Context.from_dict(settings(trust_anchors=trust_anchors))
        reader = c2pa.Reader.try_create(mime, io.BytesIO(data), context=context)
        if reader is None:
            return {"status": "absent", "message": "no C2PA manifest"}
        state = reader.get_validation_state()
        results = reader.get_validation_results() or {}
        manifest = reader.get_active_manifest() or {}
    except c2pa.C2paError as exc:
        text = str(exc)
        if "Remote" in text:  # only a pointer to a remote manifest, which is never fetched
            return {"status": "absent", "message": f"remote manifest only, not fetched: {text}"}
        return {"status": "invalid", "message": f"the C2PA manifest cannot be read: {text}",
                "failures": []}
    active = results.get("activeManifest", results) if isinstance(results, dict) else {}
    failures = [f.get("code", "") for f in active.get("failure", [])]
    status = _STATES.get(state, "invalid")
    out: dict[str, Any] = {"status": status, "validation_state": state, "failures": failures,
                           "signer": _signer(manifest.get("signature_info") or {}),
                           "trust_anchors": bool(trust_anchors)}
    assertions = {a.get("label"): a.get("data") for a in manifest.get("assertions", [])}
    aigc = assertions.get(AIGC_ASSERTION)
    out["aigc"] = aigc
    out["aigc_matches_label"] = (None if aigc is None or record is None
                                 else aigc == record.as_dict())
    binding = assertions.get("c2pa.soft-binding")
    if isinstance(binding, dict) and binding.get("alg") == SOFT_BINDING_ALG:
        blocks = binding.get("blocks") or [{}]
        payload = payload_of(str(blocks[0].get("value", "")))
        out["soft_binding"] = {"alg": SOFT_BINDING_ALG,
                               "payload": None if payload is None else f"{payload:016x}"}
    out["message"] = _message(status, failures, out)
    return out


def _signer(info: dict[str, Any]) -> str:
    name = info.get("common_name") or "?"
    issuer = info.get("issuer")
    return f"{name} (issued by {issuer})" if issuer else name


def _message(status: str, failures: list[str], out: dict[str, Any]) -> str:
    who = out["signer"]
    if status == "trusted":
        text = f"C2PA manifest valid and trusted, signed by {who}"
    elif status == "valid":
        text = (f"C2PA manifest intact, signed by {who}, but no trust anchor vouches for it"
                + ("" if out["trust_anchors"] else " (none given: --c2pa-trust)"))
    else:
        text = "C2PA manifest invalid: " + (", ".join(f for f in failures if f) or "unreadable")
    if out["aigc_matches_label"] is False:
        text += "; its AIGC assertion differs from the metadata label"
    return text
