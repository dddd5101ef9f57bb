"""C2PA credentials: dev certificates c2pa-rs trusts, load refuses what it refuses, files, CLI."""

from __future__ import annotations

import datetime as dt
import io
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from PIL import Image

from labelkit.credentials import certs
from labelkit.credentials.certs import (
    Credentials,
    credential_paths,
    credentials_from_pem,
    load_credentials,
    load_trust_anchors,
    make_dev_credentials,
    write_dev_credentials,
)
from labelkit.errors import KeyFileError

try:
    import c2pa
except ImportError as exc:  # the optional dependency: only the signing round trips need it
    c2pa = None
    _C2PA_MISSING = f"c2pa-python cannot be imported ({exc}); pip install 'c2pa-python>=0.38'"
else:
    _C2PA_MISSING = ""

needs_c2pa = pytest.mark.skipif(c2pa is None, reason=_C2PA_MISSING or "c2pa-python present")

# NOTES section 1: no thumbnail, never fetch anything over the network.
SETTINGS = {"builder": {"thumbnail": {"enabled": False}},
            "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
MANIFEST = {
    "claim_generator_info": [{"name": "labelkit-tests", "version": "0"}],
    "title": "generated.jpg",
    "assertions": [{"label": "c2pa.actions.v2", "created": True, "data": {"actions": [{
        "action": "c2pa.created",
        "digitalSourceType":
            "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia",
    }]}}],
}
NOW = dt.datetime.now(dt.timezone.utc)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(scope="module")
def jpeg() -> bytes:
    out = io.BytesIO()
    Image.effect_mandelbrot((96, 64), (-2, -1.2, 1, 1.2), 64).convert("RGB").save(
        out, "JPEG", quality=90)
    return out.getvalue()


def sign(creds: Credentials, data: bytes) -> bytes:
    """Sign ``data`` (a JPEG) with c2pa-python's own Builder and Signer."""
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(
        getattr(c2pa.C2paSigningAlg, creds.alg.upper()), creds.chain_pem, creds.key_pem, None))
    out = io.BytesIO()
    builder = c2pa.Builder(MANIFEST, context=c2pa.Context.from_dict(SETTINGS))
    builder.sign(signer, "image/jpeg", io.BytesIO(data), out)
    return out.getvalue()


def read_state(signed: bytes, anchors: str | None = None) -> tuple[str, list[str]]:
    """(validation state, failure codes of the active manifest) as c2pa's Reader sees them."""
    settings = dict(SETTINGS)
    if anchors is not None:
        settings["trust"] = {"trust_anchors": anchors}
    reader = c2pa.Reader.try_create("image/jpeg", io.BytesIO(signed),
                                    context=c2pa.Context.from_dict(settings))
    assert reader is not None, "the signed file holds no manifest"
    results = reader.get_validation_results() or {}
    failures = [f["code"] for f in results.get("activeManifest", {}).get("failure", [])]
    return reader.get_validation_state(), failures


# --- certificates made by hand, one rule broken at a time ----------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ku(*, digital_signature=False, key_cert_sign=False, crl_sign=False) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature, False, False, False, False, key_cert_sign, crl_sign,
                         False, False)


def _ca(key=None):
    key = key or ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name("test CA")).issuer_name(_name("test CA"))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=1))
            .not_valid_after(NOW + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_ku(key_cert_sign=True, crl_sign=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256()))
    return key, cert


def _pem(*certs_: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs_)


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def hand_made(*, leaf_key=None, ku=True, key_cert_sign=False,
              eku=(ExtendedKeyUsageOID.EMAIL_PROTECTION,), aki=True, ca=False,
              not_before=None, not_after=None):
    """(chain PEM, key PEM, CA PEM) for a leaf with the c2pa profile except what is changed."""
    ca_key, ca_cert = _ca()
    leaf_key = leaf_key or ec.generate_private_key(ec.SECP256R1())
    b = (x509.CertificateBuilder().subject_name(_name("test leaf")).issuer_name(_name("test CA"))
         .public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(not_before or NOW - dt.timedelta(days=1))
         .not_valid_after(not_after or NOW + dt.timedelta(days=30))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), False))
    if ku:
        b = b.add_extension(_ku(digital_signature=True, key_cert_sign=key_cert_sign), True)
    if eku:
        b = b.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    if aki:
        b = b.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False)
    leaf = b.sign(ca_key, hashes.SHA256())
    return _pem(leaf, ca_cert), _key_pem(leaf_key), _pem(ca_cert)


# Each breaks exactly one rule of the profile; (what the message must say, hand_made args).
BROKEN = {
    "no KeyUsage": ("digitalSignature", dict(ku=False)),
    "keyCertSign on the leaf": ("keyCertSign", dict(key_cert_sign=True)),
    "no EKU": ("emailProtection", dict(eku=())),
    "serverAuth only": ("emailProtection", dict(eku=(ExtendedKeyUsageOID.SERVER_AUTH,))),
    "no AKI": ("AuthorityKeyIdentifier", dict(aki=False)),
    "leaf is a CA": ("CA certificate", dict(ca=True)),
    "expired": ("expired", dict(not_before=NOW - dt.timedelta(days=60),
                                not_after=NOW - dt.timedelta(days=1))),
    "not yet valid": ("not valid before", dict(not_before=NOW + dt.timedelta(days=1),
                                               not_after=NOW + dt.timedelta(days=60))),
}


# --- development credentials: c2pa-rs trusts them with the CA, and only with it -------------


@needs_c2pa
@pytest.mark.parametrize("alg", certs.ALGORITHMS)
def test_dev_credentials_read_trusted_with_root_valid_without(alg, jpeg):
    creds, root = make_dev_credentials(alg)
    assert creds.alg == alg
    signed = sign(creds, jpeg)
    assert read_state(signed, root.decode()) == ("Trusted", [])
    state, failures = read_state(signed)
    assert state == "Valid" and "signingCredential.untrusted" in failures
    other_root = make_dev_credentials(alg)[1]
    assert read_state(signed, other_root.decode())[0] == "Valid"  # only its own CA trusts it


@needs_c2pa
@pytest.mark.parametrize("alg", ["es256", "ed25519"])
def test_written_then_loaded_credentials_sign_trusted(alg, tmp_path, jpeg):
    key_path, chain_path, root_path = write_dev_credentials(tmp_path / "p.key", alg)
    creds = load_credentials(chain_path, key_path)
    assert creds.alg == alg
    assert read_state(sign(creds, jpeg), load_trust_anchors([root_path])) == ("Trusted", [])


@needs_c2pa
def test_hand_made_baseline_is_accepted_by_both(jpeg):
    chain, key, root = hand_made()  # so that each BROKEN case breaks only its own rule
    creds = credentials_from_pem(chain, key)
    assert read_state(sign(creds, jpeg), root.decode()) == ("Trusted", [])


@needs_c2pa
@pytest.mark.parametrize("case", sorted(BROKEN))
def test_what_load_refuses_c2pa_refuses_too(case, jpeg):
    """labelkit's checks stand in for c2pa-rs's bare "the certificate is invalid"."""
    chain, key, _ = hand_made(**BROKEN[case][1])
    unchecked = Credentials(key, chain, "es256")
    with pytest.raises(c2pa.C2paError):
        sign(unchecked, jpeg)


def test_dev_credentials_profile():
    creds, root_pem = make_dev_credentials(days=100)
    leaf, ca = creds.leaf, x509.load_pem_x509_certificate(root_pem)
    chain = x509.load_pem_x509_certificates(creds.chain_pem)
    assert [c.subject for c in chain] == [leaf.subject, ca.subject]
    assert leaf.issuer == ca.subject and ca.issuer == ca.subject
    org = x509.NameAttribute(NameOID.ORGANIZATION_NAME, "labelkit development")
    assert org in list(leaf.subject) and org in list(ca.subject)
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == \
        "labelkit development signer"
    ext = leaf.extensions
    assert ext.get_extension_for_class(x509.KeyUsage).critical
    assert ext.get_extension_for_class(x509.KeyUsage).value.digital_signature
    assert not ext.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert ExtendedKeyUsageOID.EMAIL_PROTECTION in ext.get_extension_for_class(
        x509.ExtendedKeyUsage).value
    assert not ext.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier == \
        ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    ext.get_extension_for_class(x509.SubjectKeyIdentifier)
    ca_bc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert ca_bc.critical and ca_bc.value.ca
    ca_ku = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert ca_ku.critical and ca_ku.value.key_cert_sign and ca_ku.value.crl_sign
    assert leaf.not_valid_after_utc - NOW >= dt.timedelta(days=99)
    assert leaf.not_valid_before_utc <= NOW
    assert isinstance(creds.leaf.public_key(), ec.EllipticCurvePublicKey)  # es256 by default
    assert isinstance(make_dev_credentials("ed25519")[0].leaf.public_key(),
                      ed25519.Ed25519PublicKey)
    assert make_dev_credentials(days=3650)[0].leaf.not_valid_after_utc - NOW > \
        dt.timedelta(days=3649)


def test_repr_never_shows_the_key():
    creds, _ = make_dev_credentials()
    text = repr(creds) + str(creds)
    body = b"".join(creds.key_pem.splitlines()[1:-1]).decode()
    assert "PRIVATE" not in text and body[:16] not in text and body[-16:] not in text
    assert "es256" in text and "labelkit development signer" in text
    with pytest.raises(AttributeError):
        creds.alg = "ed25519"  # frozen


def test_unknown_algorithm():
    with pytest.raises(KeyFileError, match="es256"):
        make_dev_credentials("rsa")


# --- load_credentials: each refusal names the file and the problem -------------------------


def _files(tmp_path: Path, chain: bytes, key: bytes) -> tuple[Path, Path]:
    chain_path, key_path = tmp_path / "signer.chain.pem", tmp_path / "signer.key.pem"
    chain_path.write_bytes(chain)
    key_path.write_bytes(key)
    return chain_path, key_path


def _refusal(chain_path, key_path) -> KeyFileError:
    with pytest.raises(KeyFileError) as info:
        load_credentials(chain_path, key_path)
    return info.value


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_load_refuses_broken_profile(case, tmp_path):
    needle, kwargs = BROKEN[case]
    chain_path, key_path = _files(tmp_path, *hand_made(**kwargs)[:2])
    err = _refusal(chain_path, key_path)
    assert err.source == str(chain_path)
    assert str(chain_path) in str(err) and needle in err.reason


def test_load_accepts_hand_made_baseline(tmp_path):
    chain_path, key_path = _files(tmp_path, *hand_made()[:2])
    creds = load_credentials(chain_path, key_path)
    assert creds.alg == "es256" and creds.leaf.subject == _name("test leaf")


def test_document_signing_alone_is_explained(tmp_path):
    chain, key, _ = hand_made(eku=(x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36"),))
    assert credentials_from_pem(chain, key).alg == "es256"  # the profile allows it
    err = _refusal(*_files(tmp_path, *hand_made(eku=(ExtendedKeyUsageOID.CODE_SIGNING,))[:2]))
    assert "documentSigning" in err.reason and "trust_config" in err.reason


def test_load_refuses_mismatched_key(tmp_path):
    creds, _ = make_dev_credentials()
    other, _ = make_dev_credentials()
    chain_path, key_path = _files(tmp_path, creds.chain_pem, other.key_pem)
    err = _refusal(chain_path, key_path)
    assert err.source == str(key_path) and "does not belong" in err.reason


def test_load_refuses_ca_certificate_as_leaf(tmp_path):
    ca_key, ca_cert = _ca()
    chain_path, key_path = _files(tmp_path, _pem(ca_cert), _key_pem(ca_key))
    err = _refusal(chain_path, key_path)
    assert err.source == str(chain_path) and "CA certificate" in err.reason


def test_load_refuses_garbage(tmp_path):
    creds, _ = make_dev_credentials()
    junk = b"\x00\xffnot a certificate at all\n" * 10
    err = _refusal(*_files(tmp_path, junk, creds.key_pem))
    assert err.source.endswith("signer.chain.pem") and "not PEM" in err.reason
    err = _refusal(*_files(tmp_path, creds.chain_pem, junk))
    assert err.source.endswith("signer.key.pem") and "private key" in err.reason
    broken = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    err = _refusal(*_files(tmp_path, broken, creds.key_pem))
    assert err.source.endswith("signer.chain.pem") and "does not parse" in err.reason


def test_load_refuses_swapped_files(tmp_path):
    creds, _ = make_dev_credentials()
    err = _refusal(*_files(tmp_path, creds.key_pem, creds.chain_pem))
    assert err.source.endswith("signer.chain.pem") and "private key, not" in err.reason


def test_load_refuses_missing_file(tmp_path):
    creds, _ = make_dev_credentials()
    chain_path, key_path = _files(tmp_path, creds.chain_pem, creds.key_pem)
    err = _refusal(chain_path, tmp_path / "absent.pem")
    assert err.source == str(tmp_path / "absent.pem") and "cannot read" in err.reason


def test_load_refuses_encrypted_key(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    chain, _, _ = hand_made(leaf_key=key)
    encrypted = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.BestAvailableEncryption(b"secret"))
    err = _refusal(*_files(tmp_path, chain, encrypted))
    assert err.source.endswith("signer.key.pem") and "encrypted" in err.reason


def test_load_refuses_rsa_1024_and_accepts_rsa_2048_as_ps256(tmp_path):
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    chain_path, key_path = _files(tmp_path, *hand_made(leaf_key=weak)[:2])
    err = _refusal(chain_path, key_path)
    assert err.source == str(key_path) and "1024" in err.reason and "2048" in err.reason
    ok = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert credentials_from_pem(*hand_made(leaf_key=ok)[:2]).alg == "ps256"


@pytest.mark.parametrize("curve,alg", [(ec.SECP256R1, "es256"), (ec.SECP384R1, "es384"),
                                       (ec.SECP521R1, "es512")])
def test_ec_curves_map_to_algorithms(curve, alg):
    assert credentials_from_pem(*hand_made(leaf_key=ec.generate_private_key(curve()))[:2]).alg \
        == alg


def test_unsupported_curve(tmp_path):
    chain_path, key_path = _files(
        tmp_path, *hand_made(leaf_key=ec.generate_private_key(ec.SECP256K1()))[:2])
    err = _refusal(chain_path, key_path)
    assert err.source == str(key_path) and "secp256k1" in err.reason


def test_loaded_chain_is_clean_pem():
    creds, _ = make_dev_credentials()
    noisy = b"subject=whatever openssl printed\n" + creds.chain_pem + b"\ntrailing words\n"
    loaded = credentials_from_pem(noisy, creds.key_pem)
    assert loaded.chain_pem == creds.chain_pem
    assert loaded.leaf == creds.leaf


# --- trust anchors ---------------------------------------------------------------------------


def test_load_trust_anchors(tmp_path):
    roots = [make_dev_credentials()[1] for _ in range(2)]
    paths = []
    for i, pem in enumerate(roots):
        paths.append(tmp_path / f"root{i}.pem")
        paths[-1].write_bytes(pem)
    text = load_trust_anchors(paths)
    assert text.encode() == roots[0] + roots[1]
    assert load_trust_anchors(paths[0]).encode() == roots[0]  # one path, not a list
    assert load_trust_anchors([]) == ""
    bad = tmp_path / "notes.txt"
    bad.write_text("this is not a certificate\n")
    with pytest.raises(KeyFileError) as info:
        load_trust_anchors([paths[0], bad])
    assert info.value.source == str(bad) and "not a CA certificate" in info.value.reason


# --- files -----------------------------------------------------------------------------------


def test_credential_paths():
    assert credential_paths("/keys/p.key") == (
        Path("/keys/p.key.c2pa-key.pem"), Path("/keys/p.key.c2pa-chain.pem"),
        Path("/keys/p.key.c2pa-root.pem"))


def test_write_dev_credentials_modes_and_content(tmp_path):
    paths = write_dev_credentials(tmp_path / "p.key")
    assert paths == credential_paths(tmp_path / "p.key")
    key_path, chain_path, root_path = paths
    assert _mode(key_path) == 0o600
    assert not _mode(chain_path) & 0o022 and not _mode(root_path) & 0o022
    creds = load_credentials(chain_path, key_path)
    root = x509.load_pem_x509_certificate(root_path.read_bytes())
    assert creds.leaf.issuer == root.subject
    assert x509.load_pem_x509_certificates(chain_path.read_bytes())[-1] == root
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".lk-tmp")]


@pytest.mark.parametrize("which", [0, 1, 2])
def test_write_dev_credentials_all_or_nothing(tmp_path, which):
    paths = credential_paths(tmp_path / "p.key")
    paths[which].write_bytes(b"someone else's file")
    with pytest.raises(KeyFileError) as info:
        write_dev_credentials(tmp_path / "p.key")
    assert info.value.source == str(paths[which]) and "refusing" in info.value.reason
    assert [p.exists() for p in paths] == [i == which for i in range(3)]
    assert paths[which].read_bytes() == b"someone else's file"


def test_write_dev_credentials_overwrite(tmp_path):
    first = [p.read_bytes() for p in write_dev_credentials(tmp_path / "p.key")]
    key_path = credential_paths(tmp_path / "p.key")[0]
    os.chmod(key_path, 0o644)  # an old key left readable: overwriting must not keep that mode
    paths = write_dev_credentials(tmp_path / "p.key", "ed25519", overwrite=True)
    assert all(p.read_bytes() != old for p, old in zip(paths, first))
    assert _mode(key_path) == 0o600
    assert load_credentials(paths[1], paths[0]).alg == "ed25519"


def test_write_dev_credentials_missing_folder(tmp_path):
    with pytest.raises(KeyFileError, match="does not exist"):
        write_dev_credentials(tmp_path / "missing" / "p.key")
    assert not (tmp_path / "missing").exists()


# --- labelkit keygen --c2pa ------------------------------------------------------------------


FIVE = ("p.key", "p.key.pub", "p.key.c2pa-key.pem", "p.key.c2pa-chain.pem",
        "p.key.c2pa-root.pem")


def test_keygen_c2pa_writes_five_files(cli_run, tmp_path):
    code, out, err = cli_run("keygen", "-o", tmp_path / "p.key", "--c2pa")
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(FIVE)
    key_path, chain_path, root_path = credential_paths(tmp_path / "p.key")
    assert _mode(tmp_path / "p.key") == 0o600 and _mode(key_path) == 0o600
    creds = load_credentials(chain_path, key_path)
    assert creds.alg == "es256"
    assert f"--c2pa-trust {root_path}" in out and "development" in out
    assert "C2PA trust list" in out and str(chain_path) in out and str(key_path) in out


def test_keygen_c2pa_alg_ed25519(cli_run, tmp_path):
    code, _, err = cli_run("keygen", "-o", tmp_path / "p.key", "--c2pa", "--c2pa-alg", "ed25519",
                       "-q")
    assert code == 0, err
    key_path, chain_path, _ = credential_paths(tmp_path / "p.key")
    assert load_credentials(chain_path, key_path).alg == "ed25519"


def test_keygen_c2pa_usage(cli_run, tmp_path):
    code, _, err = cli_run("keygen", "-o", tmp_path / "p.key", "--c2pa-alg", "ed25519")
    assert code == 2 and "--c2pa" in err
    code, _, err = cli_run("keygen", "-o", tmp_path / "p.key", "--c2pa", "--c2pa-alg", "ps256")
    assert code == 2 and "invalid choice" in err
    assert not list(tmp_path.iterdir())


def test_keygen_c2pa_existing_file_writes_nothing_then_force(cli_run, tmp_path):
    root_path = credential_paths(tmp_path / "p.key")[2]
    root_path.write_bytes(b"an old root")
    code, _, err = cli_run("keygen", "-o", tmp_path / "p.key", "--c2pa")
    assert code == 1 and str(root_path) in err and "--force" in err
    assert [p.name for p in tmp_path.iterdir()] == [root_path.name]  # not even the key pair
    code, _, err = cli_run("keygen", "-o", tmp_path / "p.key", "--c2pa", "--force")
    assert code == 0, err
    assert root_path.read_bytes() != b"an old root"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(FIVE)


def test_keygen_c2pa_failure_after_key_pair_is_reported(cli_run, tmp_path):
    chain_path = credential_paths(tmp_path / "p.key")[1]
    chain_path.mkdir()  # cannot be replaced by a file, even with --force
    code, _, err = cli_run("keygen", "-o", tmp_path / "p.key", "--c2pa", "--force")
    assert code == 1 and "internal error" not in err
    assert (tmp_path / "p.key").exists() and (tmp_path / "p.key.pub").exists()
    assert "C2PA credentials were not" in err and str(chain_path) in err
    assert not credential_paths(tmp_path / "p.key")[0].exists()


def test_keygen_without_c2pa_writes_no_c2pa_files(cli_run, tmp_path):
    code, out, err = cli_run("keygen", "-o", tmp_path / "p.key")
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.key", "p.key.pub"]
    assert "C2PA" not in out
