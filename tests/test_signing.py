"""Keys, key files, and the ReservedCode1 signature format."""

from __future__ import annotations

import os
import stat

import pytest

from labelkit import signing
from labelkit.errors import KeyFileError
from labelkit.record import AIGCRecord

from .conftest import PRODUCER

DIGEST = bytes(range(32))
FIELDS = {"Label": "1", "ContentProducer": PRODUCER, "ProduceID": "01ABC"}


@pytest.mark.parametrize("algorithm", signing.ALGORITHMS)
def test_rc1_round_trip_within_character_rule(algorithm):
    key = signing.generate_key(algorithm)
    rc1 = signing.sign_rc1(key, FIELDS, DIGEST, b"\x01" * 8)
    AIGCRecord(reserved_code1=rc1)  # the character rule holds
    parsed = signing.parse_rc1(rc1)
    assert parsed.algorithm == algorithm and parsed.key_id == key.key_id
    assert parsed.digest == DIGEST and parsed.fingerprint == b"\x01" * 8
    assert key.public.verify(parsed.signature, parsed.message(FIELDS))
    assert not key.public.verify(parsed.signature, parsed.message({**FIELDS, "Label": "2"}))
    assert not key.public.verify(parsed.signature, parsed.message(FIELDS, bytes(32)))
    other = signing.generate_key(algorithm)
    assert not other.public.verify(parsed.signature, parsed.message(FIELDS))


def test_propagator_fields_not_covered():
    key = signing.generate_key()
    parsed = signing.parse_rc1(signing.sign_rc1(key, FIELDS, DIGEST))
    later = {**FIELDS, "ContentPropagator": "P", "PropagateID": "Q", "ReservedCode2": "R"}
    assert key.public.verify(parsed.signature, parsed.message(later))
    assert parsed.fingerprint == b""


@pytest.mark.parametrize("value", ["", "abc", "lk1.rsa.a.b.c.d", "lk1.ed25519.!!.b.c.d",
                                   "lk1.ed25519.AAAAAAAAAAA.AAAA.0.AAAA"])
def test_foreign_rc1_is_not_parsed(value):
    assert signing.parse_rc1(value) is None


def test_key_files(tmp_path):
    key = signing.generate_key()
    path = tmp_path / "k"
    pub = signing.write_key_pair(path, key)
    assert pub == tmp_path / "k.pub"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert signing.load_key(path).key_id == key.key_id
    assert signing.load_public_key(pub).key_id == key.key_id
    assert signing.load_public_key(path).key_id == key.key_id
    with pytest.raises(KeyFileError, match="refusing to overwrite"):
        signing.write_key_pair(path, key)
    signing.write_key_pair(path, signing.generate_key(), overwrite=True)
    assert signing.load_key(path).key_id != key.key_id


def test_bad_key_files(tmp_path):
    with pytest.raises(KeyFileError, match="nope.*cannot read"):
        signing.load_key(tmp_path / "nope")
    junk = tmp_path / "junk"
    junk.write_text("hello")
    with pytest.raises(KeyFileError, match="junk.*not an unencrypted PEM private key"):
        signing.load_key(junk)
    with pytest.raises(KeyFileError, match="junk.*not a PEM public key"):
        signing.load_public_key(junk)


def test_derived_secrets_differ_by_purpose_and_key():
    a, b = signing.generate_key(), signing.generate_key()
    assert a.derive_secret("watermark-image") == a.derive_secret("watermark-image")
    assert a.derive_secret("watermark-image") != a.derive_secret("watermark-audio")
    assert a.derive_secret("watermark-image") != b.derive_secret("watermark-image")
