"""Keys, the ReservedCode1 signature that binds a label to its content, and the trust store.

ReservedCode1 = ``lk1.<alg>.<kid>.<digest>.<fingerprint>.<signature>``, every part base64url
without padding, so the whole value stays within Annex E's character rule. The signature covers
the producer's fields (Label, ContentProducer, ProduceID), the algorithm and key id, the SHA-256
essence digest and an optional 64-bit perceptual fingerprint of the pixels. Carrying the digest
and fingerprint in clear is what lets a verifier tell "fields edited" from "content changed" from
"label copied onto other content" instead of a bare "invalid".
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import KeyFileError

__all__ = [
    "propagator_message",
    "sign_rc2",
    "ALGORITHMS",
    "SigningKey",
    "PublicKey",
    "TrustStore",
    "RC1",
    "generate_key",
    "load_key",
    "load_public_key",
    "write_key_pair",
    "parse_rc1",
    "sign_rc1",
    "b64u",
    "unb64u",
]

ALGORITHMS = ("ed25519", "es256")
RC1_VERSION = "lk1"


def b64u(data: bytes) -> str:
    """base64url without padding: only characters Annex E allows."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64u(text: str) -> bytes:
    """Decode base64url without padding; raises ValueError on bad input."""
    if not text or any(c not in _B64U for c in text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_B64U = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _raw_public(pub) -> bytes:
    if isinstance(pub, ed25519.Ed25519PublicKey):
        return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return pub.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)


def _algorithm_of(key) -> str:
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return "ed25519"
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)) and isinstance(
        key.curve, ec.SECP256R1
    ):
        return "es256"
    raise KeyFileError(f"unsupported key type {type(key).__name__}: use Ed25519 or ECDSA P-256")


@dataclass(frozen=True)
class PublicKey:
    """A verification key with its algorithm and 8-byte key id (SHA-256 of the raw key)."""

    key: object
    algorithm: str
    key_id: bytes

    @classmethod
    def from_key(cls, key) -> "PublicKey":
        """Wrap a cryptography public key object."""
        return cls(key, _algorithm_of(key), hashlib.sha256(_raw_public(key)).digest()[:8])

    def verify(self, signature: bytes, message: bytes) -> bool:
        """True when ``signature`` is valid for ``message`` under this key."""
        try:
            if self.algorithm == "ed25519":
                self.key.verify(signature, message)
            else:
                self.key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return False
        return True

    def to_pem(self) -> bytes:
        """SubjectPublicKeyInfo PEM."""
        return self.key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


@dataclass(frozen=True)
class SigningKey:
    """A provider's secret key: signs labels and derives the watermark secret."""

    key: object
    algorithm: str
    public: PublicKey

    @classmethod
    def from_key(cls, key) -> "SigningKey":
        """Wrap a cryptography private key object."""
        return cls(key, _algorithm_of(key), PublicKey.from_key(key.public_key()))

    @property
    def key_id(self) -> bytes:
        """The 8-byte key id, shared with the public key."""
        return self.public.key_id

    def sign(self, message: bytes) -> bytes:
        """Sign ``message`` (Ed25519, or ECDSA P-256 with SHA-256, DER)."""
        if self.algorithm == "ed25519":
            return self.key.sign(message)
        return self.key.sign(message, ec.ECDSA(hashes.SHA256()))

    def derive_secret(self, purpose: str, length: int = 32) -> bytes:
        """A secret for ``purpose`` (e.g. "watermark-image") derived from this key by HKDF."""
        raw = self.key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return HKDF(hashes.SHA256(), length, b"labelkit-v1", purpose.encode()).derive(raw)

    def to_pem(self) -> bytes:
        """Unencrypted PKCS#8 PEM (the key file is protected by its file mode)."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def generate_key(algorithm: str = "ed25519") -> SigningKey:
    """Create a new signing key."""
    if algorithm == "ed25519":
        return SigningKey.from_key(ed25519.Ed25519PrivateKey.generate())
    if algorithm == "es256":
        return SigningKey.from_key(ec.generate_private_key(ec.SECP256R1()))
    raise KeyFileError(f"unknown algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")


def write_key_pair(path: str | os.PathLike, key: SigningKey, *, overwrite: bool = False) -> Path:
    """Write KEYFILE (mode 0600) and KEYFILE.pub atomically; refuses to overwrite unless asked."""
    from .fileio import atomic_write

    path = Path(path)
    pub = path.with_name(path.name + ".pub")
    for p in (path, pub):
        if p.is_dir():
            raise KeyFileError("cannot write key file: it is a directory", source=str(p))
        if p.exists() and not overwrite:
            raise KeyFileError("exists already; refusing to overwrite a key", source=str(p))
    if not path.parent.is_dir():
        raise KeyFileError(f"cannot write key file: folder {path.parent} does not exist",
                          source=str(path))
    try:
        # A fresh temp file created 0600 and renamed over the target: an old key file's looser
        # mode never carries over, and a crash leaves the old key or the new, never half of one.
        atomic_write(path, key.to_pem(), mode=0o600)
        atomic_write(pub, key.public.to_pem(), mode=0o644)
    except OSError as exc:
        raise KeyFileError(f"cannot write key file: {exc.strerror or exc}", source=str(path)) from None
    return pub


def _read(path: str | os.PathLike) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read key file: {exc.strerror}", source=str(path)) from None
    if len(data) > 64 * 1024:
        raise KeyFileError("key file is too large to be a key", source=str(path))
    return data


def load_key(path: str | os.PathLike) -> SigningKey:
    """Load a secret key file written by ``labelkit keygen`` (PKCS#8 PEM)."""
    data = _read(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"not an unencrypted PEM private key ({exc})", source=str(path)) from None
    try:
        return SigningKey.from_key(key)
    except KeyFileError as exc:
        raise KeyFileError(exc.reason, source=str(path)) from None


def load_public_key(path: str | os.PathLike) -> PublicKey:
    """Load a public key file (``KEYFILE.pub``); a secret key file is accepted too."""
    data = _read(path)
    try:
        if b"PRIVATE KEY" in data:
            return load_key(path).public
        key = serialization.load_pem_public_key(data)
        return PublicKey.from_key(key)
    except KeyFileError:
        raise
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"not a PEM public key ({exc})", source=str(path)) from None


class TrustStore:
    """Public keys a verifier trusts, looked up by key id."""

    def __init__(self, keys: Iterable[PublicKey] = ()) -> None:
        self._keys: dict[bytes, PublicKey] = {}
        for k in keys:
            self.add(k)

    def add(self, key: PublicKey) -> None:
        """Trust ``key``."""
        self._keys[key.key_id] = key

    def get(self, key_id: bytes) -> PublicKey | None:
        """The trusted key with ``key_id``, or None."""
        return self._keys.get(key_id)

    def __len__(self) -> int:
        return len(self._keys)


@dataclass(frozen=True)
class RC1:
    """A parsed ReservedCode1 value."""

    algorithm: str
    key_id: bytes
    digest: bytes  # SHA-256 essence digest at labeling time
    fingerprint: bytes  # 8-byte perceptual hash of the pixels, or b"" when none was taken
    signature: bytes

    def message(self, fields: Mapping[str, str], digest: bytes | None = None) -> bytes:
        """The signed bytes, for ``fields`` and ``digest`` (default: the one carried)."""
        return signed_message(fields, self.algorithm, self.key_id,
                              self.digest if digest is None else digest, self.fingerprint)


def signed_message(
    fields: Mapping[str, str], algorithm: str, key_id: bytes, digest: bytes, fingerprint: bytes
) -> bytes:
    """Canonical bytes the producer signs: its own fields, key, essence digest, fingerprint.

    The propagator's fields are left out on purpose: a platform adds them later (Measures Art. 6)
    and the producer's signature must stay valid.
    """
    body = [
        RC1_VERSION,
        fields.get("Label", ""),
        fields.get("ContentProducer", ""),
        fields.get("ProduceID", ""),
        algorithm,
        key_id.hex(),
        digest.hex(),
        fingerprint.hex(),
    ]
    return b"labelkit-rc1\0" + json.dumps(body, separators=(",", ":")).encode()


def sign_rc1(
    key: SigningKey, fields: Mapping[str, str], digest: bytes, fingerprint: bytes = b""
) -> str:
    """Return the ReservedCode1 value signing ``fields`` and the essence ``digest``."""
    sig = key.sign(signed_message(fields, key.algorithm, key.key_id, digest, fingerprint))
    parts = [RC1_VERSION, key.algorithm, b64u(key.key_id), b64u(digest),
             b64u(fingerprint) if fingerprint else "0", b64u(sig)]
    return ".".join(parts)


def propagator_message(fields: Mapping[str, str], algorithm: str, key_id: bytes,
                       digest: bytes) -> bytes:
    """Canonical bytes a propagating platform signs in ReservedCode2 (Measures Art. 6).

    Every field but ReservedCode2 itself: the producer's (ReservedCode1 included) as the
    platform received them, its own ContentPropagator and PropagateID, and the essence digest,
    so the platform vouches for this label on this content."""
    body = [RC1_VERSION, *(fields.get(k, "") for k in (
        "Label", "ContentProducer", "ProduceID", "ReservedCode1", "ContentPropagator",
        "PropagateID")), algorithm, key_id.hex(), digest.hex()]
    return b"labelkit-rc2\0" + json.dumps(body, separators=(",", ":")).encode()


def sign_rc2(key: SigningKey, fields: Mapping[str, str], digest: bytes) -> str:
    """Return the ReservedCode2 value: the platform's signature over the label and ``digest``.

    Encoded as ReservedCode1 is (``parse_rc1`` reads it; no fingerprint)."""
    sig = key.sign(propagator_message(fields, key.algorithm, key.key_id, digest))
    return ".".join([RC1_VERSION, key.algorithm, b64u(key.key_id), b64u(digest), "0", b64u(sig)])


def parse_rc1(value: str) -> RC1 | None:
    """Parse a labelkit ReservedCode1; None if it is not one (another producer's scheme)."""
    parts = value.split(".")
    if len(parts) != 6 or parts[0] != RC1_VERSION or parts[1] not in ALGORITHMS:
        return None
    try:
        key_id, digest, sig = unb64u(parts[2]), unb64u(parts[3]), unb64u(parts[5])
        fingerprint = b"" if parts[4] == "0" else unb64u(parts[4])
    except ValueError:
        return None
    if len(key_id) != 8 or len(digest) != 32 or len(fingerprint) not in (0, 8):
        return None
    # Ed25519 signatures are exactly 64 bytes; ECDSA P-256 DER signatures 8 to 72.
    if len(sig) != 64 if parts[1] == "ed25519" else not 8 <= len(sig) <= 72:
        return None
    return RC1(parts[1], key_id, digest, fingerprint, sig)
