import io
import secrets
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import docker
import docker.errors
import pytest

from gaia_core.config import Config
from gaia_core.roles import NodeContext
from gaia_runner_docker import DockerRunner, DockerSettings
from gaia_runner_docker.engine import EngineUnavailable, connect
from gaia_runner_docker.images import ImageError, busybox_image, busybox_rootfs, import_rootfs

pytest_plugins = ["gaia_core.testing.fixtures"]


@pytest.fixture(scope="session")
def client() -> Iterator[docker.DockerClient]:
    """A client of the local Docker engine; the tests skip, naming why, when none answers."""
    try:
        found = connect(DockerSettings())
    except EngineUnavailable as exc:
        pytest.skip(f"no Docker engine: {exc}")
    yield found
    found.close()


@pytest.fixture(scope="session")
def busybox(client: docker.DockerClient) -> str:
    """The id (sha256:...) of the locally built busybox image."""
    try:
        return busybox_image(client)
    except ImageError as exc:
        pytest.skip(str(exc))


def allowing(context: NodeContext, *images: str, **settings: object) -> NodeContext:
    """``context`` with a config whose [runner_docker] allows ``images``."""
    return attrs.evolve(context, config=Config(extra={"runner_docker": {"allow": list(images), **settings}}))


@pytest.fixture
def make_runner(node_context: NodeContext) -> Iterator[Callable[..., DockerRunner]]:
    """Build runners allowing the given images on the isolated home; closed after the test."""
    made: list[DockerRunner] = []

    def make(*images: str, **settings: object) -> DockerRunner:
        made.append(DockerRunner(allowing(node_context, *images, **settings)))
        return made[-1]

    yield make
    for runner in made:
        runner.close()


@pytest.fixture(scope="session")
def suid_image(client: docker.DockerClient) -> str:
    """busybox plus /opt/suid/cat: a copy of busybox owned by root with the setuid bit."""
    import hashlib
    import io
    import tarfile

    from gaia_runner_docker.images import busybox_path, busybox_rootfs, import_rootfs

    buffer = io.BytesIO(busybox_rootfs())
    with tarfile.open(fileobj=buffer, mode="a") as tar:
        data = busybox_path().read_bytes()
        for directory in ("opt", "opt/suid"):
            folder = tarfile.TarInfo(directory)
            folder.type, folder.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(folder)
        info = tarfile.TarInfo("opt/suid/cat")
        info.mode, info.size, info.uid, info.gid = 0o4755, len(data), 0, 0
        tar.addfile(info, io.BytesIO(data))
    rootfs = buffer.getvalue()
    return import_rootfs(client, "busybox-suid", hashlib.sha256(rootfs).hexdigest(),
                         lambda path: path.write_bytes(rootfs))


def save(client: docker.DockerClient, image: str, path: Path) -> Path:
    """``docker save IMAGE > path`` (by id: an archive without tags)."""
    with path.open("wb") as out:
        for chunk in client.api.get_image(image):
            out.write(chunk)
    return path


def drop(client: docker.DockerClient, image: str) -> None:
    """Remove ``image`` from the engine, if it is there."""
    try:
        client.api.remove_image(image, force=True)
    except docker.errors.NotFound:
        pass


@pytest.fixture(scope="session")
def shipped(client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """An image of this session's own (busybox and a 16-character /marker), saved by id to an archive and
    removed from the engine: (its id, the archive)."""
    marker = secrets.token_hex(8)
    buffer = io.BytesIO(busybox_rootfs())
    with tarfile.open(fileobj=buffer, mode="a") as tar:
        info = tarfile.TarInfo("marker")
        info.size, info.mode = len(marker), 0o644
        tar.addfile(info, io.BytesIO(marker.encode()))
    rootfs = buffer.getvalue()
    image = import_rootfs(client, "blob-test", marker * 4, lambda path: path.write_bytes(rootfs))
    archive = save(client, image, tmp_path_factory.mktemp("shipped") / "image.tar")
    drop(client, image)
    yield image, archive
    drop(client, image)


@pytest.fixture
def absent(client: docker.DockerClient, shipped: tuple[str, Path]) -> Iterator[tuple[str, Path]]:
    """:func:`shipped`, not on the engine when the test starts, removed again after it."""
    drop(client, shipped[0])
    yield shipped
    drop(client, shipped[0])


@pytest.fixture(scope="session")
def volume_image(client: docker.DockerClient, busybox: str) -> Iterator[str]:
    """busybox with a world-writable /data that the image declares a VOLUME (an anonymous volume on the
    engine's disk, were it not for the runner)."""
    made = client.api.create_container(busybox, command=["sh", "-c", "mkdir -p /data && chmod 1777 /data"],
                                       network_disabled=True)
    try:
        client.api.start(made["Id"])
        assert client.api.wait(made["Id"], timeout=30)["StatusCode"] == 0
        image = str(client.api.commit(made["Id"], conf={"Volumes": {"/data": {}}})["Id"])
    finally:
        client.api.remove_container(made["Id"], force=True)
    yield image
    drop(client, image)
