"""Images built on this machine, without a registry: busybox (tests, benchmarks) and ONNX Runtime (AI tasks).

An image is imported from a root filesystem tar (``docker import``) and labelled with the digest of
the recipe it came from, so the same recipe is built once per engine and found again by that label.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sysconfig
import tarfile
import tempfile
from collections.abc import Callable, Iterable
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
    if _shared_libraries([path]):
        raise ImageError(f"{path} is linked dynamically and would not run alone in an image; "
                         "apt-get install busybox-static")
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


def import_rootfs(client: docker.DockerClient, name: str, recipe: str, build: Callable[[Path], object], *,
                  changes: Iterable[str] = ()) -> str:
    """The id (``sha256:...``) of the image of ``recipe`` (a digest naming what goes in): found by its label,
    else imported once from the rootfs tar that ``build`` writes to the path it is given, and tagged
    ``gaia/<name>:<recipe prefix>`` (so that ``docker image prune`` keeps it)."""
    found = client.api.images(filters={"label": f"{RECIPE_LABEL}={recipe}"}, quiet=True)
    if found:
        return str(found[0])
    with tempfile.TemporaryDirectory(prefix="gaia-rootfs-") as scratch:
        tar_path = Path(scratch) / "rootfs.tar"
        build(tar_path)
        with tar_path.open("rb") as stream:
            answer = client.api.import_image_from_data(stream, repository=f"gaia/{name}", tag=recipe[:16],
                                                        changes=[*changes, f"LABEL {RECIPE_LABEL}={recipe}"])
    for line in str(answer).splitlines():
        status = json.loads(line).get("status", "") if line.strip().startswith("{") else ""
        if status.startswith("sha256:"):
            return str(status)
    raise ImageError(f"docker import did not answer an image id: {str(answer)[:200]}")


def busybox_image(client: docker.DockerClient) -> str:
    """The id of the local busybox image (built on first use)."""
    rootfs = busybox_rootfs()
    return import_rootfs(client, "busybox", hashlib.sha256(rootfs).hexdigest(), lambda path: path.write_bytes(rootfs))


def onnx_image(client: docker.DockerClient) -> str:
    """The id of the local ONNX Runtime image (built on first use from this machine's Python and packages).

    Its command ``python3 /opt/gaia/infer.py`` reads ``/gaia/input``, an ``.npz`` holding ``model`` (the
    ONNX file's bytes as uint8) and ``x`` (float32 rows), and writes the model's first output to stdout
    as little-endian float32.
    """
    packages = ("numpy", "onnxruntime", "flatbuffers", "packaging", "google.protobuf")
    extra = {"opt/gaia/infer.py": INFER_SCRIPT.encode(), "etc/passwd": PASSWD, "etc/group": GROUP}
    recipe = hashlib.sha256(json.dumps([str(_python_binary()), *_stamp(_python_binary()),
                                        *(_version(p) for p in packages),
                                        sorted((k, v.decode()) for k, v in extra.items())]).encode()).hexdigest()

    def build(path: Path) -> None:
        files = python_files(packages)
        made = {"tmp", "gaia", "opt", "opt/gaia", "etc", "usr", "usr/local", "usr/local/bin"}
        with tarfile.open(path, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name in sorted(made):
                _add(tar, name, mode=0o1777 if name == "tmp" else 0o755, kind=tarfile.DIRTYPE)
            for name, data in extra.items():
                _add(tar, name, data=data, mode=0o644)
            _add(tar, "usr/local/bin/python3", kind=tarfile.SYMTYPE, link=str(_python_binary()))
            for source, arcname in files:
                _parents(tar, arcname, made)
                info = tar.gettarinfo(str(source), arcname)
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                info.mtime = 0
                if info.isreg():
                    info.mode |= 0o444
                    with source.open("rb") as stream:
                        tar.addfile(info, stream)
                else:
                    tar.addfile(info)

    return import_rootfs(client, "onnx", recipe, build, changes=["ENV PATH=/usr/local/bin:/bin",
                                                         "ENV PYTHONDONTWRITEBYTECODE=1"])


#: The inference script of :func:`onnx_image`.
INFER_SCRIPT = '''"""Run /gaia/input's ONNX model on its rows with ONNX Runtime; float32 outputs to stdout."""
import os
import sys

import numpy as np
import onnxruntime as ort

data = np.load(os.environ.get("GAIA_INPUT", "/gaia/input"), allow_pickle=False)
options = ort.SessionOptions()
options.intra_op_num_threads = 1
session = ort.InferenceSession(data["model"].tobytes(), options, providers=["CPUExecutionProvider"])
(output, *_) = session.run(None, {session.get_inputs()[0].name: data["x"].astype("<f4")})
sys.stdout.buffer.write(np.ascontiguousarray(output, dtype="<f4").tobytes())
'''
#: Parts of the standard library no task needs.
_STDLIB_SKIP = {"site-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3"}


def _python_binary() -> Path:
    return Path(sysconfig.get_config_var("BINDIR")) / f"python{sysconfig.get_python_version()}"


def python_files(packages: Iterable[str]) -> list[tuple[Path, str]]:
    """(host path, path in the image) of this Python, its standard library, the shared libraries they
    load, and ``packages`` (importable names) as installed here; the image mirrors the host's paths."""
    stdlib = Path(sysconfig.get_path("stdlib"))
    site = Path(sysconfig.get_path("purelib"))
    chosen: list[Path] = [_python_binary()]
    libpython = Path(sysconfig.get_config_var("LIBDIR")) / str(sysconfig.get_config_var("INSTSONAME") or "")
    if libpython.is_file():
        chosen.append(libpython)
    chosen += [p for p in _walk(stdlib) if p.relative_to(stdlib).parts[0] not in _STDLIB_SKIP
               and not p.name.startswith("config-")]
    image_site = stdlib / "site-packages"
    placed = [(p, str(p).lstrip("/")) for p in chosen]
    for package in packages:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ImageError(f"package {package} is not installed here; pip install it to build the image")
        root = Path(next(iter(spec.submodule_search_locations)))
        top = site / root.relative_to(site).parts[0] if root.is_relative_to(site) else root
        trees = [top, top.with_name(top.name + ".libs")]
        for tree in (t for t in trees if t.is_dir()):
            placed += [(p, str(image_site / p.relative_to(site)).lstrip("/")) for p in _walk(tree)]
    objects = [src for src, _ in placed if src.suffix == ".so" or ".so." in src.name or src == chosen[0]]
    inside = {src.resolve() for src, _ in placed}
    for library in sorted(_shared_libraries(objects)):
        if library.resolve() not in inside:  # the file itself, under the name the loader looks for
            placed.append((library.resolve(), str(library).lstrip("/")))
    unique = dict((arcname, source) for source, arcname in placed)  # one entry per path in the image
    return [(source, arcname) for arcname, source in unique.items()]


def _version(package: str) -> str:
    """``package``'s installed distribution version ('' when it is not installed)."""
    try:
        return importlib.metadata.version(package.split(".")[-1] if "." in package else package)
    except importlib.metadata.PackageNotFoundError:
        return ""


def _shared_libraries(objects: Iterable[Path]) -> set[Path]:
    """The shared libraries (as the loader finds them on this host) that ``objects`` load, and the loader."""
    found: set[Path] = set()
    for obj in objects:
        done = subprocess.run(["ldd", str(obj)], capture_output=True, text=True, timeout=30)
        for line in done.stdout.splitlines():
            parts = line.split()
            path = parts[2] if len(parts) >= 3 and parts[1] == "=>" else parts[0] if parts else ""
            if path.startswith("/"):
                found.add(Path(os.path.normpath(path)))
    return found


def _walk(tree: Path) -> list[Path]:
    """Every file and symlink under ``tree``, sorted."""
    return sorted(p for p in tree.rglob("*") if p.is_file() or p.is_symlink())


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def _parents(tar: tarfile.TarFile, arcname: str, made: set[str]) -> None:
    """Add the directories above ``arcname`` that are not in ``tar`` yet (world-readable)."""
    parts = arcname.split("/")[:-1]
    for depth in range(1, len(parts) + 1):
        folder = "/".join(parts[:depth])
        if folder not in made:
            made.add(folder)
            _add(tar, folder, mode=0o755, kind=tarfile.DIRTYPE)


def _add(tar: tarfile.TarFile, name: str, *, data: bytes = b"", mode: int = 0o644,
         kind: bytes = tarfile.REGTYPE, link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime, info.linkname = kind, mode, 0, link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
