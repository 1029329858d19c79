"""Images that come with a task as a verified blob: a ``docker save`` archive, checked before it is loaded.

An image's id is the SHA-256 of its config file, which names the digest of every layer. So the id an
archive holds is read from the archive itself: its ``manifest.json`` names one image and its config
file, whose digest must be the task's image. An archive that carries tags is refused: loading it would
move those names (say ``python:3.11-slim``) on the operator's engine; make one by id,
``docker save sha256:<id> -o image.tar``.

The engine never sees the archive as it came: the tar format lets one archive say two things (a second
``./manifest.json`` after ``manifest.json``, read by the engine but not by a name look-up). So
:func:`load` writes a fresh archive of only what was checked: a manifest without tags, the config file,
and each layer whose SHA-256 is the one the config names (``docker save`` writes layers uncompressed),
read through Python's tarfile, which resolves links inside the archive and never touches the disk.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import tempfile
from pathlib import Path
from typing import IO, Any

import docker
from attrs import define, field

#: Bytes of an archive's manifest.json or config file read at most (an image's are a few kilobytes).
MAX_MANIFEST_BYTES = 1 << 20
#: Files an archive may hold: ``docker save`` writes a few per layer, and an image has at most 127 layers.
MAX_MEMBERS = 10_000
#: What the engine says for each image it loaded.
_LOADED = re.compile(r"Loaded image ID: (sha256:[0-9a-f]{64})")


class ArchiveError(Exception):
    """A blob that is not a ``docker save`` archive of one untagged image; the message says why."""


def archive_image(path: Path) -> str:
    """The id (``sha256:<64 hex>``) of the one image the ``docker save`` archive at ``path`` holds, computed
    from its config file; ArchiveError when it is not such an archive."""
    try:
        with _open(path) as tar:
            return _image(_config(tar, _manifest(tar)))
    except (tarfile.TarError, OSError, ValueError, KeyError, RecursionError) as exc:  # ValueError: bad UTF-8, JSON;
        # KeyError: a link to no member
        raise ArchiveError(f"it is not a docker save archive ({type(exc).__name__}: {exc})") from None


def load(client: docker.DockerClient, path: Path, image: str) -> None:
    """Load ``image`` from the archive at ``path`` into the engine, as a fresh archive of only its checked
    parts (see the module docstring); ArchiveError when the archive does not hold exactly ``image``, or the
    engine reports loading another."""
    with tempfile.TemporaryFile() as clean:
        try:
            with _open(path) as tar:
                _rebuild(tar, image, clean)
        except (tarfile.TarError, OSError, ValueError, KeyError, RecursionError) as exc:
            raise ArchiveError(f"it is not a docker save archive ({type(exc).__name__}: {exc})") from None
        clean.seek(0)
        answer = client.api.load_image(clean)
    loaded = {match for chunk in answer for match in _LOADED.findall(str(chunk.get("stream", "")))}
    if loaded - {image}:  # cannot happen with the rebuilt archive; the runner then checks the engine holds image
        raise ArchiveError(f"the engine loaded {', '.join(sorted(loaded))}, not {image}")


def _open(path: Path) -> tarfile.TarFile:
    """The tar archive at ``path`` with its index read, once it is known to hold at most MAX_MEMBERS files
    (an index of millions of empty files would take minutes and gigabytes)."""
    tar = tarfile.open(path, "r:")
    try:
        for count, _ in enumerate(iter(tar.next, None)):
            if count >= MAX_MEMBERS:
                raise ArchiveError(f"it holds more than {MAX_MEMBERS} files; a docker save archive holds a few "
                                   "per layer")
    except BaseException:
        tar.close()
        raise
    return tar


def _rebuild(tar: tarfile.TarFile, image: str, out: IO[bytes]) -> None:
    """Write to ``out`` an archive of ``image``'s config and layers from ``tar``, each checked by digest."""
    entry = _manifest(tar)
    config = _config(tar, entry)
    if _image(config) != image:
        raise ArchiveError(f"it holds {_image(config)}, not {image}")
    spec = json.loads(config.decode("utf-8"))
    diff_ids = spec.get("rootfs", {}).get("diff_ids") if isinstance(spec, dict) else None
    layers = entry.get("Layers")
    if not isinstance(diff_ids, list) or not isinstance(layers, list) or len(layers) != len(diff_ids):
        raise ArchiveError("its manifest.json does not name one layer for each of its config's diff_ids")
    with tarfile.open(fileobj=out, mode="w") as clean:
        names = []
        for layer, diff_id in zip(layers, diff_ids, strict=True):
            name = f"{str(diff_id).removeprefix('sha256:')}.tar"
            if name not in names:
                _copy_layer(tar, str(layer), str(diff_id), clean, name)
            names.append(name)
        _add(clean, "config.json", config)
        _add(clean, "manifest.json", json.dumps([{"Config": "config.json", "RepoTags": None,
                                                  "Layers": names}]).encode())


def _copy_layer(tar: tarfile.TarFile, layer: str, diff_id: str, clean: tarfile.TarFile, name: str) -> None:
    """Copy ``layer`` into ``clean`` as ``name``; ArchiveError unless its SHA-256 is ``diff_id``."""
    member = _member(tar, layer)
    reader = tar.extractfile(member) if member is not None else None
    if member is None or reader is None:
        raise ArchiveError(f"the layer {layer[:80]!r} its manifest names is not in it")
    hashed = _Hashed(reader)
    info = tarfile.TarInfo(name)
    info.size = reader.seek(0, io.SEEK_END)  # the size of what a link leads to, not the link's 0
    reader.seek(0)
    clean.addfile(info, hashed)
    if f"sha256:{hashed.digest.hexdigest()}" != diff_id:
        raise ArchiveError(f"the layer {layer[:80]!r} does not hash to {diff_id[:80]} its config names")


@define
class _Hashed:
    """A reader that hashes what passes through it."""

    reader: IO[bytes]
    digest: Any = field(factory=hashlib.sha256)

    def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes, hashing them."""
        data = self.reader.read(size)
        self.digest.update(data)
        return data


def _add(clean: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    clean.addfile(info, io.BytesIO(data))


def _manifest(tar: tarfile.TarFile) -> dict[str, Any]:
    """The one entry of the archive's manifest.json; ArchiveError unless it names one untagged image."""
    manifest = json.loads(_small(tar, "manifest.json").decode("utf-8"))
    if not isinstance(manifest, list) or len(manifest) != 1 or not isinstance(manifest[0], dict):
        raise ArchiveError("its manifest.json does not name exactly one image")
    entry: dict[str, Any] = manifest[0]
    if entry.get("RepoTags") or _member(tar, "repositories") is not None:
        raise ArchiveError("it carries tags, which loading would move on this engine; save the image "
                           "by id: docker save sha256:<id>")
    return entry


def _config(tar: tarfile.TarFile, entry: dict[str, Any]) -> bytes:
    """The bytes of the config file the manifest ``entry`` names."""
    try:
        return _small(tar, str(entry.get("Config", "")))
    except ArchiveError:
        raise ArchiveError("the config file its manifest names is not in it") from None


def _image(config: bytes) -> str:
    return f"sha256:{hashlib.sha256(config).hexdigest()}"


def _member(tar: tarfile.TarFile, name: str) -> tarfile.TarInfo | None:
    try:
        found = tar.getmember(name)
    except KeyError:
        return None
    return found if found.isfile() or found.issym() or found.islnk() else None


def _small(tar: tarfile.TarFile, name: str) -> bytes:
    """The bytes of the file ``name`` in ``tar`` (a link is followed inside the archive), at most
    MAX_MANIFEST_BYTES."""
    member = _member(tar, name)
    reader = tar.extractfile(member) if member is not None else None
    if reader is None:
        raise ArchiveError(f"it has no {name[:80]} (of at most {MAX_MANIFEST_BYTES} bytes)")
    data = reader.read(MAX_MANIFEST_BYTES + 1)
    if len(data) > MAX_MANIFEST_BYTES:
        raise ArchiveError(f"it has no {name[:80]} (of at most {MAX_MANIFEST_BYTES} bytes)")
    return data
