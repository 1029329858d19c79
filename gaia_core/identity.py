"""The node's identity: its Ed25519 signing key.

The node id is the hex of the Ed25519 public key. The key lives in a PKCS#8 PEM
file with mode 0600 under ``<home>/identity``; a key file that others can read is
refused, as ssh does. Keys a plugin keeps for itself (a transport's channel key)
use the same file helpers, :func:`save_private_key` and :func:`load_private_key`.
"""

from __future__ import annotations

import functools
import os
import stat
from pathlib import Path
from typing import TypeVar

from attrs import frozen
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from gaia_core.errors import IdentityError

SIGNING_FILE = "node_ed25519.pem"
_RAW = (serialization.Encoding.Raw, serialization.PublicFormat.Raw)
K = TypeVar("K")


@frozen
class Identity:
    """A node's private signing key. Never serialize it onto the wire."""

    signing_key: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> Identity:
        """A fresh identity (a new node id)."""
        return cls(Ed25519PrivateKey.generate())

    @functools.cached_property
    def node_id(self) -> str:
        """The hex of the Ed25519 public key: the node's name on the network."""
        return self.signing_key.public_key().public_bytes(*_RAW).hex()

    def sign(self, data: bytes) -> bytes:
        """An Ed25519 signature of ``data``."""
        return self.signing_key.sign(data)

    def save(self, directory: Path, *, force: bool = False) -> None:
        """Write the key with mode 0600; refuse to replace an existing key unless ``force``."""
        path = directory / SIGNING_FILE
        if path.exists() and not force:
            raise IdentityError(
                f"a node identity already exists in {directory}",
                hint="keep it, or pass --force to replace it"
                " (the node id changes and earned credit stays with the old id)",
            )
        save_private_key(path, self.signing_key)

    @classmethod
    def load(cls, directory: Path) -> Identity:
        """Read the identity in ``directory``, with an actionable error when it cannot."""
        # an abstract key class is what isinstance needs here (python/mypy#4717)
        return cls(load_private_key(directory / SIGNING_FILE, Ed25519PrivateKey))  # type: ignore[type-abstract]

    @classmethod
    def exists(cls, directory: Path) -> bool:
        """True when the key file is present."""
        return (directory / SIGNING_FILE).exists()


def save_private_key(path: Path, key: PrivateKeyTypes) -> None:
    """Write ``key`` to ``path`` as PKCS#8 PEM, mode 0600, replacing it atomically; the directory is made 0700."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.parent.chmod(0o700)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # whatever the umask, and over a leftover temporary file's mode
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    os.replace(tmp, path)


def load_private_key(path: Path, kind: type[K]) -> K:
    """The ``kind`` key in the PEM file at ``path``; IdentityError saying what to do when it is absent,
    readable by others, corrupt or of another kind."""
    if not path.exists():
        raise IdentityError(f"no key file at {path}", hint="run `gaia init` to create this node's identity")
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise IdentityError(f"cannot read key file {path}: {exc.strerror}",
                            hint="check its owner and permissions") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise IdentityError(
            f"key file {path} is accessible by other users (mode {stat.S_IMODE(mode):o})",
            hint=f"run `chmod 600 {path}`",
        )
    remedy = "restore it from a backup, or remove it for a new key (`gaia init --force` for a new identity)"
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise IdentityError(f"key file {path} is corrupt ({exc})", hint=remedy) from None
    if not isinstance(key, kind):
        raise IdentityError(f"key file {path} holds a {type(key).__name__}, not a {kind.__name__}", hint=remedy)
    return key


@functools.lru_cache(maxsize=4096)
def _public_key(node_id: str) -> Ed25519PublicKey | None:
    try:
        return Ed25519PublicKey.from_public_bytes(bytes.fromhex(node_id))
    except ValueError:
        return None


def verify_signature(node_id: str, signature: bytes, data: bytes) -> bool:
    """True when ``signature`` is ``node_id``'s Ed25519 signature of ``data``."""
    key = _public_key(node_id)
    if key is None or len(signature) != 64:
        return False
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True
