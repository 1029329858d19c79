"""Images built without a registry: what they hold, and the clear refusals when they cannot be built."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import pytest

from gaia_runner_docker import images


def test_busybox_rootfs_holds_the_applets_and_the_unprivileged_user() -> None:
    if not (shutil.which("busybox") or Path("/bin/busybox").exists()):
        pytest.skip("busybox is not installed (apt-get install busybox-static)")
    with tarfile.open(fileobj=io.BytesIO(images.busybox_rootfs())) as tar:
        members = {m.name: m for m in tar.getmembers()}
        passwd = tar.extractfile(members["etc/passwd"])
        assert passwd is not None and b"nobody:x:65534:65534" in passwd.read()
    assert members["bin/busybox"].isreg() and members["bin/sh"].issym() and members["bin/cat"].linkname == "busybox"
    assert members["tmp"].mode == 0o1777


def test_a_dynamically_linked_busybox_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images.shutil, "which", lambda name: "/bin/ls")
    with pytest.raises(images.ImageError, match="linked dynamically.*busybox-static"):
        images.busybox_path()


def test_a_missing_package_is_named() -> None:
    with pytest.raises(images.ImageError, match="package no_such_package_here is not installed"):
        images.python_files(["no_such_package_here"])


def test_built_images_are_tagged_so_a_prune_keeps_them(client: object, busybox: str) -> None:
    import docker

    assert isinstance(client, docker.DockerClient)
    tags = client.api.inspect_image(busybox)["RepoTags"]
    assert tags and all(tag.startswith("gaia/busybox:") for tag in tags)
    assert busybox in client.api.images(filters={"dangling": False}, quiet=True)
