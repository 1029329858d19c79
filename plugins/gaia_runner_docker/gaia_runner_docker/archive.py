"""Images that come with a task as a verified blob: a ``docker save`` archive, checked before it is loaded.

An image's id is the SHA-256 of its config file, which names the digest of every layer (the engine checks
the layers against it while loading). So the id an archive holds is read from the archive itself: its
``manifest.json`` names one image and its config file, whose digest must be the task's image. An archive
that carries tags is refused: loading it would move those names (say ``python:3.11-slim``) on the
operator's engine; make one by id, ``docker save sha256:<id> -o image.tar``.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
from pathlib import Path
from typing import Any

import docker

#: Bytes of an archive's manifest.json read at most (one image's manifest is a few hundred bytes).
MAX_MANIFEST_BYTES = 1 << 20
#: What the engine says for each image it loaded.
_LOADED = re.compile(r"Loaded image ID: (sha256:[0-9a-f]{64})")


class ArchiveError(Exception):
    """A blob that is not a ``docker save`` archive of one untagged image; the message says why."""


def archive_image(path: Path) -> str:
    """The id (``sha256:<64 hex>``) of the one image the ``docker save`` archive at ``path`` holds, computed
    from its config file; ArchiveError when it is not such an archive."""
    try:
        with tarfile.open(path, "r:") as tar:
            manifest = _json(tar, "manifest.json")
            if not isinstance(manifest, list) or len(manifest) != 1 or not isinstance(manifest[0], dict):
                raise ArchiveError("its manifest.json does not name exactly one image")
            entry = manifest[0]
            if entry.get("RepoTags") or _member(tar, "repositories") is not None:
                raise ArchiveError("it carries tags, which loading would move on this engine; save the image "
                                   "by id: docker save sha256:<id>")
            config = _member(tar, str(entry.get("Config", "")))
            reader = tar.extractfile(config) if config is not None else None
            if reader is None:
                raise ArchiveError("the config file its manifest names is not in it")
            digest = hashlib.sha256()
            for block in iter(lambda: reader.read(1 << 20), b""):
                digest.update(block)
            return f"sha256:{digest.hexdigest()}"
    except (tarfile.TarError, OSError, ValueError, RecursionError) as exc:  # ValueError: bad UTF-8 or JSON
        raise ArchiveError(f"it is not a docker save archive ({type(exc).__name__}: {exc})") from None


def load(client: docker.DockerClient, path: Path, image: str) -> None:
    """Load the archive at ``path`` (checked by :func:`archive_image` to hold ``image``) into the engine;
    any other image the engine reports loading is removed again, and ArchiveError says so."""
    with path.open("rb") as data:
        answer = client.api.load_image(data)
    loaded = {match for chunk in answer for match in _LOADED.findall(str(chunk.get("stream", "")))}
    others = loaded - {image}
    for other in others:
        client.api.remove_image(other, force=True)
    if others:
        raise ArchiveError(f"loading it gave {', '.join(sorted(others))}, not {image}; removed")


def _member(tar: tarfile.TarFile, name: str) -> tarfile.TarInfo | None:
    try:
        found = tar.getmember(name)
    except KeyError:
        return None
    return found if found.isfile() else None


def _json(tar: tarfile.TarFile, name: str) -> Any:
    member = _member(tar, name)
    if member is None or member.size > MAX_MANIFEST_BYTES:
        raise ArchiveError(f"it has no {name} (of at most {MAX_MANIFEST_BYTES} bytes)")
    reader = tar.extractfile(member)
    assert reader is not None  # a regular file
    return json.loads(reader.read().decode("utf-8"))
