"""Node identity: key generation, 0600 files, refusal to overwrite, and every unreadable key."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gaia_core.errors import IdentityError
from gaia_core.identity import SIGNING_FILE, Identity, load_private_key, save_private_key, verify_signature


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_save_writes_the_signing_key_owner_only(tmp_path: Path, identity: Identity) -> None:
    directory = tmp_path / "identity"
    identity.save(directory)
    assert _mode(directory) == 0o700
    assert [p.name for p in directory.iterdir()] == [SIGNING_FILE]  # a transport's keys are the transport's
    assert _mode(directory / SIGNING_FILE) == 0o600
    assert Identity.exists(directory)


def test_load_round_trips_the_identity(tmp_path: Path, identity: Identity) -> None:
    identity.save(tmp_path)
    loaded = Identity.load(tmp_path)
    assert loaded.node_id == identity.node_id
    assert loaded.sign(b"x") == identity.sign(b"x")


def test_node_id_has_the_documented_shape(identity: Identity) -> None:
    assert len(identity.node_id) == 64 and int(identity.node_id, 16) >= 0
    assert Identity.generate().node_id != identity.node_id


def test_a_plugin_key_round_trips_through_the_key_file_helpers(tmp_path: Path) -> None:
    key = X25519PrivateKey.generate()
    path = tmp_path / "plugin" / "key.pem"
    save_private_key(path, key)
    assert _mode(path.parent) == 0o700 and _mode(path) == 0o600
    raw = (serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    assert load_private_key(path, X25519PrivateKey).private_bytes(*raw) == key.private_bytes(*raw)
    with pytest.raises(IdentityError, match="holds a .*X25519.*not a Ed25519PrivateKey"):
        load_private_key(path, Ed25519PrivateKey)


def test_save_refuses_to_overwrite_without_force(tmp_path: Path, identity: Identity) -> None:
    identity.save(tmp_path)
    with pytest.raises(IdentityError, match="already exists") as info:
        Identity.generate().save(tmp_path)
    assert "--force" in str(info.value)
    assert Identity.load(tmp_path).node_id == identity.node_id


def test_save_with_force_replaces_the_keys(tmp_path: Path, identity: Identity) -> None:
    identity.save(tmp_path)
    fresh = Identity.generate()
    fresh.save(tmp_path, force=True)
    assert Identity.load(tmp_path).node_id == fresh.node_id


def test_missing_key_file_says_run_init(tmp_path: Path) -> None:
    assert not Identity.exists(tmp_path)
    with pytest.raises(IdentityError, match="no key file") as info:
        Identity.load(tmp_path)
    assert "gaia init" in str(info.value)
    assert info.value.exit_code == 4


def test_corrupt_key_file_is_refused(tmp_path: Path, identity: Identity) -> None:
    identity.save(tmp_path)
    (tmp_path / SIGNING_FILE).write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot a key\n")
    with pytest.raises(IdentityError, match="is corrupt") as info:
        Identity.load(tmp_path)
    assert "gaia init --force" in str(info.value)


def test_key_of_the_wrong_type_is_refused(tmp_path: Path, identity: Identity) -> None:
    identity.save(tmp_path)
    save_private_key(tmp_path / SIGNING_FILE, X25519PrivateKey.generate())
    with pytest.raises(IdentityError, match="holds a .*X25519.*not a Ed25519PrivateKey"):
        Identity.load(tmp_path)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_key_readable_by_others_is_refused(tmp_path: Path, identity: Identity, mode: int) -> None:
    identity.save(tmp_path)
    (tmp_path / SIGNING_FILE).chmod(mode)
    with pytest.raises(IdentityError, match=f"accessible by other users \\(mode {mode:o}\\)") as info:
        Identity.load(tmp_path)
    assert f"chmod 600 {tmp_path / SIGNING_FILE}" in str(info.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_key_file_is_refused(tmp_path: Path, identity: Identity) -> None:
    identity.save(tmp_path)
    (tmp_path / SIGNING_FILE).chmod(0o000)
    with pytest.raises(IdentityError, match="cannot read key file"):
        Identity.load(tmp_path)


def test_a_pkcs8_key_written_by_another_tool_loads(tmp_path: Path, identity: Identity) -> None:
    identity.save(tmp_path)
    other = Ed25519PrivateKey.generate()
    pem = other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    (tmp_path / SIGNING_FILE).write_bytes(pem)
    expected = other.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert Identity.load(tmp_path).node_id == expected.hex()


def test_signatures_verify_only_for_the_signer_and_the_data(identity: Identity) -> None:
    signature = identity.sign(b"payload")
    assert verify_signature(identity.node_id, signature, b"payload")
    assert not verify_signature(identity.node_id, signature, b"payload!")
    assert not verify_signature(Identity.generate().node_id, signature, b"payload")
    assert not verify_signature(identity.node_id, signature[:-1], b"payload")
    assert not verify_signature("zz" * 32, signature, b"payload")
    assert not verify_signature("ab", signature, b"payload")
