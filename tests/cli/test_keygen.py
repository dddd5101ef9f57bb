"""`labelkit keygen`: key files, their modes, and never overwriting a key by accident."""

from __future__ import annotations

import os
import stat

import pytest

from labelkit import signing


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("algorithm", ["ed25519", "es256"])
def test_keygen_writes_pair_with_modes(cli, tmp_path, algorithm):
    key = tmp_path / "provider.key"
    r = cli("keygen", "-o", key, "--algorithm", algorithm)
    assert r.code == 0, r.err
    pub = tmp_path / "provider.key.pub"
    assert _mode(key) == 0o600
    assert not _mode(pub) & 0o022  # public, but not writable by others
    loaded = signing.load_key(key)
    assert loaded.algorithm == algorithm
    assert signing.load_public_key(pub).key_id == loaded.key_id
    assert loaded.key_id.hex() in r.out and str(pub) in r.out


def test_keygen_refuses_overwrite_then_force(cli, tmp_path):
    key = tmp_path / "provider.key"
    assert cli("keygen", "-o", key).code == 0
    before = key.read_bytes(), (tmp_path / "provider.key.pub").read_bytes()
    r = cli("keygen", "-o", key)
    assert r.code == 1
    assert "exists" in r.err and "--force" in r.err and str(key) in r.err
    assert (key.read_bytes(), (tmp_path / "provider.key.pub").read_bytes()) == before
    os.chmod(key, 0o644)  # an old key file left readable: --force must not keep that mode
    r = cli("keygen", "-o", key, "--force")
    assert r.code == 0, r.err
    assert key.read_bytes() != before[0]
    assert _mode(key) == 0o600
    assert signing.load_public_key(str(key) + ".pub").key_id == signing.load_key(key).key_id


def test_keygen_refuses_when_only_pub_exists(cli, tmp_path):
    (tmp_path / "k.pub").write_text("someone else's public key")
    r = cli("keygen", "-o", tmp_path / "k")
    assert r.code == 1 and "k.pub" in r.err
    assert not (tmp_path / "k").exists()


def test_keygen_unwritable_folder_is_a_failure_not_a_crash(cli, tmp_path):
    r = cli("keygen", "-o", tmp_path / "missing" / "provider.key")
    assert r.code == 1
    assert "cannot write key" in r.err and "internal error" not in r.err


def test_keygen_usage_errors(cli, tmp_path):
    r = cli("keygen")
    assert r.code == 2 and "-o/--output" in r.err
    r = cli("keygen", "-o", tmp_path / "k", "--algorithm", "rsa")
    assert r.code == 2 and "invalid choice" in r.err
    assert not (tmp_path / "k").exists()


def test_keygen_onto_a_folder_fails_cleanly(cli, tmp_path):
    folder = tmp_path / "keys"
    folder.mkdir()
    for extra in ((), ("--force",)):
        r = cli("keygen", "-o", folder, *extra)
        assert r.code == 1 and "internal error" not in r.err
    assert _mode(folder) & 0o700 == 0o700  # still a usable folder
