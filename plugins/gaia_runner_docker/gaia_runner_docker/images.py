"""Images built on this machine, without a registry: a busybox image for tests and benchmarks.

An image is imported from a root filesystem tar (``docker import``) and labelled with the digest of
the recipe it came from, so the same recipe is built once per engine and found again by that label.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from collections.abc import Iterable
from pathlib import Path

import docker

#: Label holding the digest of the recipe an image was built from.
RECIPE_LABEL = "org.gaia.recipe"
#: A passwd and group naming the unprivileged user tasks run as.
PASSWD = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = b"root:x:0:\nnogroup:x:65534:\n"


class ImageError(Exception):
    """An image could not be built here; the message says what is missing."""


def busybox_path() -> Path:
    """The host's statically linked busybox (Debian's busybox-static package)."""
    found = shutil.which("busybox") or "/bin/busybox"
    path = Path(found)
    if not path.is_file():
        raise ImageError("busybox is not installed; apt-get install busybox-static")
    return path


def busybox_rootfs() -> bytes:
    """A root filesystem tar: busybox with a link per applet in /bin, /etc/passwd, /tmp, /gaia."""
    binary = busybox_path()
    applets = subprocess.run([str(binary), "--list"], capture_output=True, text=True, check=True, timeout=30)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in ("bin", "etc", "tmp", "gaia"):
            _add(tar, name, mode=0o1777 if name == "tmp" else 0o755, kind=tarfile.DIRTYPE)
        _add(tar, "bin/busybox", data=binary.read_bytes(), mode=0o755)
        for applet in sorted(set(applets.stdout.split()) - {"busybox"}):
            _add(tar, f"bin/{applet}", kind=tarfile.SYMTYPE, link="busybox")
        _add(tar, "etc/passwd", data=PASSWD)
        _add(tar, "etc/group", data=GROUP)
    return buffer.getvalue()


def import_rootfs(client: docker.DockerClient, rootfs: bytes, *, changes: Iterable[str] = ()) -> str:
    """The id (``sha256:...``) of an image of ``rootfs``, imported once per recipe and found again by label."""
    recipe = hashlib.sha256(rootfs + json.dumps(sorted(changes)).encode()).hexdigest()
    found = client.api.images(filters={"label": f"{RECIPE_LABEL}={recipe}"}, quiet=True)
    if found:
        return str(found[0])
    answer = client.api.import_image_from_data(rootfs, changes=[*changes, f"LABEL {RECIPE_LABEL}={recipe}"])
    for line in str(answer).splitlines():
        status = json.loads(line).get("status", "") if line.strip().startswith("{") else ""
        if status.startswith("sha256:"):
            return str(status)
    raise ImageError(f"docker import did not answer an image id: {str(answer)[:200]}")


def busybox_image(client: docker.DockerClient) -> str:
    """The id of the local busybox image (built on first use)."""
    return import_rootfs(client, busybox_rootfs())


def _add(tar: tarfile.TarFile, name: str, *, data: bytes = b"", mode: int = 0o644,
         kind: bytes = tarfile.REGTYPE, link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime, info.linkname = kind, mode, 0, link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
