"""Signing C2PA manifests into files with c2pa-python, fully offline.

A ``C2paSigner`` holds a reusable c2pa ``Signer`` (a local key and certificate chain, or a
callback for keys that stay in an HSM or a KMS) and the settings labelkit always signs with:
no thumbnail (it would add ~74 kB and ~100 ms to a 1080p JPEG, and a picture of the content is
not a label), no post-sign validation (``verify`` reads the result independently), no remote
manifest fetching and no OCSP. A timestamp authority is used only when its URL is given; when
it cannot be reached, signing fails rather than write an untimestamped manifest.
"""

from __future__ import annotations

import io
import threading
from typing import Any, Callable

from ..errors import LabelkitError
from .certs import Credentials, load_credentials

__all__ = ["C2paSigner", "SIGNING_ALGS", "c2pa_module", "settings"]

SIGNING_ALGS = ("es256", "es384", "es512", "ps256", "ps384", "ps512", "ed25519")


def c2pa_module():
    """The c2pa-python module, imported on first use (its native library takes ~100 ms)."""
    try:
        import c2pa
    except ImportError as exc:
        raise LabelkitError("the C2PA layer needs c2pa-python (pip install 'labelkit[c2pa]'): "
                            f"{exc}") from None
    return c2pa


def settings(*, trust_anchors: str | None = None, thumbnail: bool = False) -> dict[str, Any]:
    """c2pa-rs settings: offline (no remote manifests, no OCSP), no thumbnail by default."""
    out: dict[str, Any] = {
        "builder": {"thumbnail": {"enabled": thumbnail}},
        "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False,
                   "verify_after_sign": False},
    }
    if trust_anchors:  # an empty string is an error in c2pa-rs: leave the key out instead
        out["trust"] = {"trust_anchors": trust_anchors}
    return out


class C2paSigner:
    """Signs C2PA manifests: with ``Credentials`` (key + chain) or a ``callback`` (HSM, KMS).

    ``callback(data) -> signature`` signs the COSE to-be-signed bytes with the private key of
    the leaf of ``chain_pem``, in algorithm ``alg``; ``tsa_url`` adds an RFC 3161 timestamp."""

    def __init__(self, credentials: Credentials | None = None, *,
                 callback: Callable[[bytes], bytes] | None = None, chain_pem: bytes | None = None,
                 alg: str | None = None, tsa_url: str | None = None,
                 thumbnail: bool = False) -> None:
        c2pa = c2pa_module()
        if (credentials is None) == (callback is None):
            raise LabelkitError("a C2PA signer needs either credentials or a callback")
        if tsa_url is not None and not tsa_url.startswith(("http://", "https://")):
            raise LabelkitError(f"the timestamp authority URL must be http(s): {tsa_url!r}")
        if credentials is not None:
            alg, chain_pem = credentials.alg, credentials.chain_pem
        if alg not in SIGNING_ALGS or not chain_pem:
            raise LabelkitError(f"a C2PA callback signer needs chain_pem and alg (one of "
                                f"{', '.join(SIGNING_ALGS)}), not {alg!r}")
        c2pa_alg = getattr(c2pa.C2paSigningAlg, alg.upper())
        try:
            if credentials is not None:
                self._signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(
                    c2pa_alg, credentials.chain_pem, credentials.key_pem,
                    tsa_url.encode() if tsa_url else None))
            else:
                self._signer = c2pa.Signer.from_callback(callback, c2pa_alg,
                                                         chain_pem.decode("ascii"), tsa_url)
        except c2pa.C2paError as exc:
            raise LabelkitError(f"the C2PA signer could not be made: {exc}") from None
        self.alg, self.tsa_url = alg, tsa_url
        self._context = c2pa.Context.from_dict(settings(thumbnail=thumbnail))
        self._lock = threading.Lock()  # one signing at a time per native signer

    @classmethod
    def from_files(cls, chain_path: str, key_path: str, **kw: Any) -> "C2paSigner":
        """A signer from a PEM chain (leaf first) and its PEM private key."""
        return cls(load_credentials(chain_path, key_path), **kw)

    def __repr__(self) -> str:
        return f"C2paSigner(alg={self.alg!r}, tsa={self.tsa_url!r})"

    def sign(self, data: bytes, mime: str, manifest: dict[str, Any], source: str) -> bytes:
        """``data`` with the signed manifest embedded (a new bytes object; data is unchanged)."""
        c2pa = c2pa_module()
        out = io.BytesIO()
        try:
            with self._lock:
                builder = c2pa.Builder(manifest, context=self._context)
                builder.sign(self._signer, mime, io.BytesIO(data), out)
        except c2pa.C2paError as exc:
            what = ("the timestamp authority could not be reached"
                    if self.tsa_url and "http" in str(exc) else "C2PA signing failed")
            raise LabelkitError(f"{what}: {exc}", source=source) from None
        return out.getvalue()
