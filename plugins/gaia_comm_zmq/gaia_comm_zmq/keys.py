"""This transport's CurveZMQ key: an X25519 key pair of its own, kept in the node's home.

The kernel's identity holds only the node's Ed25519 signing key; the Curve key belongs to this
plugin. It lives in ``<home>/comm_zmq/curve25519.pem`` (PKCS#8 PEM, mode 0600, directory 0700), is
created the first time the transport starts with CURVE on, and reaches peers in the signed
NodeRecord's transport extension (``{"curve": <32 bytes>}``) and in the dial address
(``tcp://host:port#<64 hex>``). A home made by an older GAIA keeps its key in
``<home>/identity/curve25519.pem``: it is moved here, so the node keeps its dial address.
"""

from __future__ import annotations

import os
from pathlib import Path

from attrs import frozen
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from gaia_core.plugin_api import Home, load_private_key, save_private_key

DIRECTORY = "comm_zmq"
FILE = "curve25519.pem"


@frozen
class CurveKey:
    """A Curve25519 key pair, raw 32-byte halves as ZeroMQ takes them (z85-encoded)."""

    public: bytes
    secret: bytes

    @classmethod
    def generate(cls) -> CurveKey:
        """A fresh key pair."""
        return cls.of(X25519PrivateKey.generate())

    @classmethod
    def of(cls, key: X25519PrivateKey) -> CurveKey:
        """The raw halves of ``key``."""
        public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        secret = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                   serialization.NoEncryption())
        return cls(public, secret)

    @classmethod
    def load_or_create(cls, home: Home) -> CurveKey:
        """The key of ``home`` (moved from an older home's identity directory), created when it has none.

        IdentityError, naming the file and what to do, when the file is readable by others or corrupt.
        """
        path = home.root / DIRECTORY / FILE
        legacy = home.identity_dir / FILE
        if not path.exists() and legacy.exists():
            key = _load(legacy)  # its mode and contents checked before it moves
            path.parent.mkdir(mode=0o700, exist_ok=True)
            os.replace(legacy, path)
            return cls.of(key)
        if path.exists():
            return cls.of(_load(path))
        key = X25519PrivateKey.generate()
        save_private_key(path, key)
        return cls.of(key)


def _load(path: Path) -> X25519PrivateKey:
    """The X25519 key in the PEM file at ``path`` (IdentityError when unsafe, corrupt or of another kind)."""
    return load_private_key(path, X25519PrivateKey)  # type: ignore[type-abstract]  # python/mypy#4717
