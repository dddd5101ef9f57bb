"""C2PA signing credentials: development certificates, loading and checking a key and its chain.

c2pa-rs refuses to sign with a certificate that breaks its profile, and says only "the
certificate is invalid". So labelkit checks the same rules itself when the files are loaded and
names the file and the rule that fails (research/c2pa/NOTES.md, section 2, measured with
c2pa-rs 0.91.3). The leaf (the first certificate of the chain) must have:

- KeyUsage with digitalSignature, and not keyCertSign;
- an ExtendedKeyUsage holding emailProtection (documentSigning or C2PA's claimSigning also
  pass the profile, but alone they read back Invalid unless the reader lists them in its
  ``trust.trust_config``);
- an AuthorityKeyIdentifier, and no BasicConstraints ca=True;
- a validity period that includes now.
"""

from __future__ import annotations

import datetime as _dt
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, NoReturn

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from ..errors import KeyFileError

__all__ = [
    "ALGORITHMS",
    "DEV_ALGORITHMS",
    "Credentials",
    "make_dev_credentials",
    "credential_paths",
    "write_dev_credentials",
    "credentials_from_pem",
    "load_credentials",
    "load_trust_anchors",
]

# c2pa.C2paSigningAlg member names, lower case (only those labelkit can make or check).
ALGORITHMS = ("es256", "es384", "es512", "ps256", "ed25519")
DEV_ALGORITHMS = ALGORITHMS  # make_dev_credentials can make every one of them

EKU_EMAIL_PROTECTION = ExtendedKeyUsageOID.EMAIL_PROTECTION
EKU_DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")
EKU_C2PA_CLAIM_SIGNING = ObjectIdentifier("1.3.6.1.4.1.62558.2.1")
_ACCEPTED_EKUS = (EKU_EMAIL_PROTECTION, EKU_DOCUMENT_SIGNING, EKU_C2PA_CLAIM_SIGNING)

_MAX_PEM_BYTES = 1024 * 1024  # a chain of a few certificates is a few kB
_RSA_MIN_BITS = 2048
_CURVES = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}


@dataclass(frozen=True)
class Credentials:
    """A C2PA signer's private key, its certificate chain (leaf first) and c2pa algorithm."""

    key_pem: bytes
    chain_pem: bytes
    alg: str

    def __repr__(self) -> str:  # never print the key
        try:
            subject = self.leaf.subject.rfc4514_string()
        except ValueError:
            subject = "?"
        return f"Credentials(alg={self.alg!r}, leaf={subject!r}, key_pem=<hidden>)"

    @property
    def leaf(self) -> x509.Certificate:
        """The signing certificate (the first one of the chain)."""
        return x509.load_pem_x509_certificates(self.chain_pem)[0]


# --- development credentials ------------------------------------------------------------------


def _new_key(alg: str):
    if alg == "es256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "es384":
        return ec.generate_private_key(ec.SECP384R1())
    if alg == "es512":
        return ec.generate_private_key(ec.SECP521R1())
    if alg == "ps256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise KeyFileError(f"unknown C2PA algorithm {alg!r}; choose one of {', '.join(ALGORITHMS)}")


def _cert_hash(alg: str):
    # The certificate's own signature (CA over leaf); Ed25519 takes no separate hash.
    return {"es256": hashes.SHA256(), "es384": hashes.SHA384(), "es512": hashes.SHA512(),
            "ps256": hashes.SHA256()}.get(alg)


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "labelkit development"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_dev_credentials(
    alg: str = "es256", *, name: str = "labelkit development signer", days: int = 3650
) -> tuple[Credentials, bytes]:
    """A fresh development CA and a leaf it signed; returns the credentials and the CA's PEM.

    The CA PEM is the trust anchor a reader must be given for the files to read ``Trusted``
    (without it they read ``Valid``, untrusted). The leaf follows the profile c2pa-rs enforces
    (module docstring). The validity is long on purpose: a signature carries no timestamp
    unless a TSA is used, and then every file signed with a leaf reads ``Invalid``
    (``signingCredential.expired``) from the day the leaf expires. Development only: production
    uses a certificate from a CA on the C2PA trust list, or a callback signer for an HSM/KMS.
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    ca_key, leaf_key = _new_key(alg), _new_key(alg)
    digest = _cert_hash(alg)
    # An hour back, so a verifier whose clock runs a little behind does not see "not yet valid".
    start = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0) - _dt.timedelta(hours=1)
    end = start + _dt.timedelta(days=days, hours=1)
    ca_name = _name("labelkit development CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, digest)
    )
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name(name)).issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start).not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([EKU_EMAIL_PROTECTION, EKU_DOCUMENT_SIGNING]),
                       critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, digest)
    )
    ca_pem = _pem(ca)
    return Credentials(_key_pem(leaf_key), _pem(leaf) + ca_pem, alg), ca_pem


# --- files ------------------------------------------------------------------------------------


def credential_paths(keyfile: str | os.PathLike) -> tuple[Path, Path, Path]:
    """The C2PA files for KEYFILE: KEYFILE.c2pa-key.pem, .c2pa-chain.pem and .c2pa-root.pem."""
    path = Path(keyfile)
    return tuple(path.with_name(path.name + suffix)  # type: ignore[return-value]
                 for suffix in (".c2pa-key.pem", ".c2pa-chain.pem", ".c2pa-root.pem"))


def write_dev_credentials(
    keyfile: str | os.PathLike, alg: str = "es256", *, overwrite: bool = False
) -> tuple[Path, Path, Path]:
    """Make development credentials and write the key (0600), chain and CA next to KEYFILE.

    All or nothing: when one of the three files exists and ``overwrite`` is false, none is
    written. Each file is written to a temp file first and the three are renamed into place
    only when all were written, so a failure never leaves a key beside another key's chain.
    """
    paths = credential_paths(keyfile)
    for p in paths:
        if p.is_dir():
            raise KeyFileError("cannot write C2PA credentials: it is a directory", source=str(p))
    if not overwrite:
        existing = [p for p in paths if p.exists()]
        if existing:
            also = f" (and {', '.join(map(str, existing[1:]))})" if existing[1:] else ""
            raise KeyFileError(f"exists already{also}; refusing to overwrite C2PA credentials",
                               source=str(existing[0]))
    folder = paths[0].parent
    if not folder.is_dir():
        raise KeyFileError(f"cannot write C2PA credentials: folder {folder} does not exist",
                           source=str(paths[0]))
    creds, root_pem = make_dev_credentials(alg)
    contents = ((creds.key_pem, 0o600), (creds.chain_pem, 0o644), (root_pem, 0o644))
    temps: list[str] = []
    current = paths[0]
    try:
        for path, (data, mode) in zip(paths, contents):
            current = path
            temps.append(_write_temp(path, data, mode))
        for path, tmp in zip(paths, temps):
            current = path
            os.replace(tmp, path)
    except OSError as exc:
        for tmp in temps:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        raise KeyFileError(f"cannot write C2PA credentials: {exc.strerror or exc}",
                           source=str(current)) from None
    return paths


def _write_temp(path: Path, data: bytes, mode: int) -> str:
    # Created with its final mode (O_EXCL, so never an old file's looser mode) and flushed to
    # disk; the ".lk-tmp" suffix is the one the CLI recognises as a leftover.
    tmp = str(path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.lk-tmp"))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def _read(path: str | os.PathLike, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(_MAX_PEM_BYTES + 1)
    except IsADirectoryError:
        raise KeyFileError(f"cannot read {what}: it is a directory", source=str(path)) from None
    except OSError as exc:
        raise KeyFileError(f"cannot read {what}: {exc.strerror or exc}",
                           source=str(path)) from None
    if len(data) > _MAX_PEM_BYTES:
        raise KeyFileError(f"too large to be {what}", source=str(path))
    return data


# --- loading and checking ---------------------------------------------------------------------


def _parse_certs(data: bytes, source: str, what: str) -> list[x509.Certificate]:
    if b"-----BEGIN CERTIFICATE-----" not in data:
        if b"PRIVATE KEY-----" in data:
            raise KeyFileError(f"holds a private key, not {what}", source=source)
        kind = "PEM without a CERTIFICATE block" if b"-----BEGIN " in data else "not PEM"
        raise KeyFileError(f"not {what}: {kind}", source=source)
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise KeyFileError(f"not {what}: a CERTIFICATE block does not parse ({exc})",
                           source=source) from None


def _parse_key(data: bytes, source: str):
    if b"PRIVATE KEY-----" not in data:
        if b"-----BEGIN CERTIFICATE-----" in data:
            raise KeyFileError("holds a certificate, not a private key "
                               "(are the key and chain files swapped?)", source=source)
        raise KeyFileError("not a PEM private key", source=source)
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise KeyFileError("the private key is encrypted; c2pa-python needs it unencrypted "
                           "(protect the file by its mode, or use a callback signer)",
                           source=source) from None
    except (ValueError, serialization.UnsupportedAlgorithm) as exc:
        raise KeyFileError(f"not a valid PEM private key ({exc})", source=source) from None


def _alg_of(key, source: str) -> str:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        alg = _CURVES.get(key.curve.name)
        if alg is None:
            raise KeyFileError(f"unsupported EC curve {key.curve.name}: C2PA signs with "
                               "P-256, P-384 or P-521", source=source)
        return alg
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < _RSA_MIN_BITS:
            raise KeyFileError(f"RSA key of {key.key_size} bits is too weak: C2PA needs at "
                               f"least {_RSA_MIN_BITS}", source=source)
        return "ps256"  # C2PA allows RSA only with PSS padding
    raise KeyFileError(f"unsupported key type {type(key).__name__}: use ECDSA (P-256, P-384, "
                       "P-521), Ed25519 or RSA of 2048 bits or more", source=source)


def _spki(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def _extension(cert: x509.Certificate, kind):
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _check_leaf(leaf: x509.Certificate, source: str, now: _dt.datetime) -> None:
    def refuse(problem: str) -> NoReturn:
        raise KeyFileError(f"the signing certificate (the first one) {problem}", source=source)

    constraints = _extension(leaf, x509.BasicConstraints)
    if constraints is not None and constraints.ca:
        refuse("is a CA certificate; c2pa refuses to sign with one: put the signer's own "
               "certificate first, then its CA")
    usage = _extension(leaf, x509.KeyUsage)
    if usage is None or not usage.digital_signature:
        refuse("lacks KeyUsage digitalSignature, which c2pa requires")
    if usage.key_cert_sign:
        refuse("has KeyUsage keyCertSign, which c2pa refuses on a signing certificate")
    ekus = _extension(leaf, x509.ExtendedKeyUsage)
    if ekus is None or not any(oid in _ACCEPTED_EKUS for oid in ekus):
        refuse("lacks an ExtendedKeyUsage with emailProtection (1.3.6.1.5.5.7.3.4), which c2pa "
               "requires by default; documentSigning (1.3.6.1.5.5.7.3.36) or C2PA claimSigning "
               "(1.3.6.1.4.1.62558.2.1) alone is accepted only by readers that list it in "
               "their trust_config")
    if _extension(leaf, x509.AuthorityKeyIdentifier) is None:
        refuse("lacks an AuthorityKeyIdentifier, which c2pa requires")
    if now < leaf.not_valid_before_utc:
        refuse(f"is not valid before {leaf.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC")
    if now > leaf.not_valid_after_utc:
        refuse(f"expired on {leaf.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC")


def credentials_from_pem(
    chain_pem: bytes, key_pem: bytes, source: str = "<memory>", *, key_source: str | None = None
) -> Credentials:
    """Check a chain (leaf first) and its private key against c2pa's profile; KeyFileError if not.

    ``source`` names the chain in messages, ``key_source`` the key (default: ``source``).
    """
    key_source = source if key_source is None else key_source
    chain = _parse_certs(chain_pem, source, "a certificate chain")
    key = _parse_key(key_pem, key_source)
    alg = _alg_of(key, key_source)
    leaf = chain[0]
    if _spki(key.public_key()) != _spki(leaf.public_key()):
        raise KeyFileError(f"this private key does not belong to the signing certificate "
                           f"{leaf.subject.rfc4514_string()!r} of {source}", source=key_source)
    _check_leaf(leaf, source, _dt.datetime.now(_dt.timezone.utc))
    # Re-encoded: c2pa-rs gets clean PEM without comments or stray text between blocks.
    clean_chain = b"".join(_pem(cert) for cert in chain)
    return Credentials(_key_pem(key), clean_chain, alg)


def load_credentials(chain_path: str | os.PathLike, key_path: str | os.PathLike) -> Credentials:
    """Load and check a C2PA certificate chain file (leaf first) and its private key file."""
    chain_pem = _read(chain_path, "a certificate chain")
    key_pem = _read(key_path, "a private key")
    return credentials_from_pem(chain_pem, key_pem, str(chain_path), key_source=str(key_path))


def load_trust_anchors(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> str:
    """The PEM text of the CA certificates in ``paths`` (each file must hold at least one).

    For c2pa's ``trust.trust_anchors`` setting. No paths gives "": leave the setting out then
    (c2pa refuses an empty string).
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    parts: list[bytes] = []
    for path in paths:
        certs = _parse_certs(_read(path, "a CA certificate"), str(path), "a CA certificate")
        parts.extend(_pem(cert) for cert in certs)
    return b"".join(parts).decode("ascii")
