"""An image a node lacks, brought by the task as a verified blob (a ``docker save`` archive): loaded only when
the operator allows its id and the archive holds exactly that image (gaia_runner_docker.archive)."""

from __future__ import annotations

import io
import json
import secrets
import tarfile
from collections.abc import Callable
from pathlib import Path

import docker
import docker.errors
import pytest
from conftest import drop, save

from gaia_core.blobs.store import home_store
from gaia_core.model import Status, Task
from gaia_core.roles import NodeContext
from gaia_runner_docker import DockerRunner
from gaia_runner_docker.archive import ArchiveError, archive_image
from gaia_runner_docker.runner import Refusal, image_present


def _task(node_context: NodeContext, image: str, *files: Path) -> Task:
    store = home_store(node_context.home)
    try:
        blobs = tuple(store.add_file(f).id for f in files)
    finally:
        store.close()
    return Task(module_id=image.removeprefix("sha256:"), kind="oci", entry="cat /marker", blobs=blobs)


def test_a_missing_image_is_loaded_from_the_tasks_blob_and_runs(
        client: docker.DockerClient, absent: tuple[str, Path], make_runner: Callable[..., DockerRunner],
        node_context: NodeContext) -> None:
    image, archive = absent
    assert archive_image(archive) == image and not image_present(client, image)
    task = _task(node_context, image, archive)
    runner = make_runner(image)
    runner.check(task)  # admitted: the image may come with the task's blobs
    result = runner.run(task)
    assert result.status is Status.OK, result.message
    assert len(result.output) == 16 and image_present(client, image)


def test_an_image_the_operator_did_not_allow_is_never_loaded(
        client: docker.DockerClient, absent: tuple[str, Path], make_runner: Callable[..., DockerRunner],
        node_context: NodeContext, busybox: str) -> None:
    image, archive = absent
    task = _task(node_context, image, archive)
    with pytest.raises(Refusal, match="not allowed"):
        make_runner(busybox).check(task)
    assert make_runner(busybox).run(task).status is Status.REJECTED
    assert not image_present(client, image)


def test_an_archive_of_another_image_is_not_loaded(
        client: docker.DockerClient, absent: tuple[str, Path], make_runner: Callable[..., DockerRunner],
        node_context: NodeContext, busybox: str, tmp_path: Path) -> None:
    image, _ = absent
    other = save(client, busybox, tmp_path / "busybox.tar")  # a real archive, of busybox
    junk = tmp_path / "junk"
    junk.write_bytes(secrets.token_bytes(4096))
    result = make_runner(image).run(_task(node_context, image, junk, other))
    assert result.status is Status.REJECTED
    assert "not a docker save archive" in result.message and f"holds {busybox}" in result.message
    assert not image_present(client, image)


def test_a_tagged_archive_is_refused_before_loading(client: docker.DockerClient, busybox: str,
                                                    tmp_path: Path) -> None:
    tagged = save(client, client.api.inspect_image(busybox)["RepoTags"][0], tmp_path / "tagged.tar")
    with pytest.raises(ArchiveError, match="carries tags"):
        archive_image(tagged)


@pytest.mark.parametrize("manifest, words", [
    (b"[" * 100_000 + b"]" * 100_000, "not a docker save archive"),  # nested past Python's recursion limit
    (b'[{"Config": "absent.json"}]', "config file its manifest names is not in it"),
    (b"[]", "exactly one image"),
    (b"\xff", "not a docker save archive"),
])
def test_a_damaged_archive_is_one_reason(tmp_path: Path, manifest: bytes, words: str) -> None:
    path = tmp_path / "bad.tar"
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
    with pytest.raises(ArchiveError, match=words) as info:
        archive_image(path)
    assert "\n" not in str(info.value)


def _copy(source: Path, tar: tarfile.TarFile, rename: Callable[[str], str] = lambda name: name) -> None:
    with tarfile.open(source) as original:
        for member in original.getmembers():
            data = original.extractfile(member) if member.isfile() else None
            member.name = rename(member.name)
            tar.addfile(member, data)


def test_a_second_manifest_in_the_archive_never_reaches_the_engine(
        client: docker.DockerClient, absent: tuple[str, Path], make_runner: Callable[..., DockerRunner],
        node_context: NodeContext, busybox: str, tmp_path: Path) -> None:
    """A tar can say two things: ``manifest.json`` (the allowed image) then ``./manifest.json`` (another image,
    tagged), which the engine read while the check did not; loading it moved a tag on the operator's engine."""
    image, archive = absent
    tag = f"gaia-hijack:{secrets.token_hex(4)}"
    other = save(client, busybox, tmp_path / "other.tar")
    with tarfile.open(other) as original:
        manifest = json.loads(original.extractfile("manifest.json").read())  # type: ignore[union-attr]
    manifest[0]["RepoTags"] = [tag]
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        _copy(archive, tar)
        _copy(other, tar, lambda name: "other.json" if name == "manifest.json" else name)
        info = tarfile.TarInfo("./manifest.json")
        data = json.dumps(manifest).encode()
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    assert archive_image(evil) == image
    try:
        result = make_runner(image).run(_task(node_context, image, evil))
        assert result.status is Status.OK, result.message
        with pytest.raises(docker.errors.ImageNotFound):
            client.api.inspect_image(tag)
    finally:
        drop(client, tag)


def test_a_layer_that_is_not_the_one_its_config_names_is_not_loaded(
        client: docker.DockerClient, absent: tuple[str, Path], make_runner: Callable[..., DockerRunner],
        node_context: NodeContext, tmp_path: Path) -> None:
    image, archive = absent
    forged = tmp_path / "forged.tar"
    with tarfile.open(forged, "w") as tar:
        _copy(archive, tar, lambda name: name if name.endswith(".json") else f"x/{name}")
        with tarfile.open(archive) as original:  # each layer.tar another file of the same size
            for member in original.getmembers():
                if member.name.endswith("layer.tar"):
                    tar.addfile(member, io.BytesIO(secrets.token_bytes(member.size)))
    result = make_runner(image).run(_task(node_context, image, forged))
    assert result.status is Status.REJECTED and "does not hash to" in result.message, result.message
    assert not image_present(client, image)


def test_an_archive_of_too_many_files_is_refused_before_its_index_is_read(
        tmp_path: Path, absent: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Millions of empty files (half a kilobyte each) had the node read an index of gigabytes for minutes."""
    from gaia_runner_docker import archive

    image, saved = absent
    monkeypatch.setattr(archive, "MAX_MEMBERS", 8)
    path = tmp_path / "many.tar"
    with tarfile.open(path, "w") as tar:
        _copy(saved, tar)
        for i in range(8):
            tar.addfile(tarfile.TarInfo(f"empty-{i}"))
    with pytest.raises(ArchiveError, match="more than 8 files"):
        archive_image(path)
    assert archive_image(saved) == image


@pytest.mark.parametrize("kind, target", [(tarfile.SYMTYPE, "loop.json"), (tarfile.SYMTYPE, "/etc/hostname"),
                                          (tarfile.LNKTYPE, "dev"), (tarfile.SYMTYPE, "../../etc/hostname")])
def test_links_in_an_archive_stay_inside_it(tmp_path: Path, kind: bytes, target: str) -> None:
    """The config a manifest names as a link: to itself in a loop, out of the archive, or to a device node;
    never read from the disk, always one ArchiveError."""
    path = tmp_path / "links.tar"
    with tarfile.open(path, "w") as tar:
        manifest = json.dumps([{"Config": "config.json", "Layers": []}]).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
        device = tarfile.TarInfo("dev")
        device.type, device.devmajor, device.devminor = tarfile.CHRTYPE, 1, 3
        tar.addfile(device)
        for name, link in (("config.json", target), ("loop.json", "config.json")):
            member = tarfile.TarInfo(name)
            member.type, member.linkname = kind, link
            tar.addfile(member)
    with pytest.raises(ArchiveError) as info:
        archive_image(path)
    assert "\n" not in str(info.value)


def test_a_layer_named_through_a_link_is_loaded(client: docker.DockerClient, absent: tuple[str, Path],
                                                make_runner: Callable[..., DockerRunner], node_context: NodeContext,
                                                tmp_path: Path) -> None:
    """docker save writes a layer that appears twice once, the second as a link; and newer engines link the
    legacy layer paths to blobs/. A link's own size is 0: the layer copied must be what it leads to."""
    image, archive = absent
    linked = tmp_path / "linked.tar"
    with tarfile.open(archive) as original, tarfile.open(linked, "w") as tar:
        for member in original.getmembers():
            if member.name.endswith("layer.tar"):
                moved = tarfile.TarInfo(f"blobs/{member.name.replace('/', '-')}")
                moved.size = member.size
                tar.addfile(moved, original.extractfile(member))
                link = tarfile.TarInfo(member.name)
                link.type, link.linkname = tarfile.SYMTYPE, f"../{moved.name}"
                tar.addfile(link)
            else:
                tar.addfile(member, original.extractfile(member) if member.isfile() else None)
    result = make_runner(image).run(_task(node_context, image, linked))
    assert result.status is Status.OK, result.message
