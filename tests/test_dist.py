"""`make dist` builds a wheel of every distribution, and README's install command works from them alone.

The wheels are built once per run: by the Makefile's ``dist`` target into a temporary folder, or taken from
``$GAIA_DIST_DIR``, which ``make test-dist`` sets once it has built them into ``dist/``. The install runs in a
fresh venv with ``--no-index`` (nothing from the public index, where ``gaia-core`` is an unrelated project); the
third-party dependencies come from this interpreter's site-packages, seen through a folder of links that leaves out
every first-party distribution and its editable hook.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name, parse_wheel_filename

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: Seconds `make dist` may take: gaia-native's first build compiles the crate (about 70 s on two cores).
BUILD_TIMEOUT_S = 900
#: Seconds the install into the fresh venv may take.
INSTALL_TIMEOUT_S = 300
#: README's install command, from `pip` to the end of its line.
README_INSTALL = re.compile(r"^pip install --find-links dist (?P<names>[a-z0-9 -]+)$", re.M)


def _pyproject(folder: Path) -> dict[str, object]:
    """The ``[project]`` table of ``folder``'s pyproject.toml."""
    with (folder / "pyproject.toml").open("rb") as file:
        project: dict[str, object] = tomllib.load(file)["project"]
    return project


def distributions() -> dict[str, Path]:
    """Every first-party distribution (canonical name -> its folder): the kernel, gaia-native, each plugin."""
    folders = [ROOT, ROOT / "native", *sorted(p.parent for p in ROOT.glob("plugins/gaia_*/pyproject.toml"))]
    return {canonicalize_name(str(_pyproject(folder)["name"])): folder for folder in folders}


def release() -> str:
    """The one version of every first-party distribution: gaia-core's."""
    return str(_pyproject(ROOT)["version"])


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder holding the wheels: ``$GAIA_DIST_DIR`` when set, else one `make dist` builds now."""
    given = os.environ.get("GAIA_DIST_DIR")
    if given:
        folder = Path(given)
        if not list(folder.glob("*.whl")):
            pytest.fail(f"GAIA_DIST_DIR={given} holds no wheels: run `make dist` first, or unset it")
        return folder
    make = shutil.which("make")
    if make is None:
        pytest.fail("`make` is not on PATH: install it (the Makefile's dist target builds the wheels)")
    folder = tmp_path_factory.mktemp("dist")
    run = subprocess.run([make, "--no-print-directory", "dist", f"DIST={folder}", f"PYTHON={sys.executable}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False)
    assert run.returncode == 0, f"make dist failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return folder


def _wheels(folder: Path) -> dict[str, Path]:
    """The wheels in ``folder`` by canonical distribution name (a name with two wheels fails)."""
    found: dict[str, Path] = {}
    for wheel in sorted(folder.glob("*.whl")):
        name = str(parse_wheel_filename(wheel.name)[0])
        assert name not in found, f"two wheels of {name}: {found[name].name}, {wheel.name}"
        found[name] = wheel
    return found


def _members(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def test_make_dist_builds_one_wheel_of_every_distribution_at_the_one_version(wheelhouse: Path) -> None:
    wheels = _wheels(wheelhouse)
    assert set(wheels) == set(distributions())
    versions = {name: str(parse_wheel_filename(wheel.name)[1]) for name, wheel in wheels.items()}
    assert set(versions.values()) == {release()}, versions
    assert "abi3" in wheels["gaia-native"].name  # one native wheel serves every CPython >= 3.11


def test_each_wheel_holds_exactly_its_package_sources_and_data(wheelhouse: Path) -> None:
    wheels = _wheels(wheelhouse)
    for name, folder in distributions().items():
        if name == "gaia-native":
            continue
        package = name.replace("-", "_")
        members = _members(wheels[name])
        packed = {m for m in members if m.endswith(".py")}
        sources = {p.relative_to(folder).as_posix() for p in (folder / package).rglob("*.py")}
        # a module deleted from the tree but left in build/lib would be packed too: `make dist` removes build/
        assert packed == sources, f"{name}: only packed {sorted(packed - sources)}, only in the tree " \
                                  f"{sorted(sources - packed)}"
        assert f"{package}/py.typed" in members, name
        if name != "gaia-core":  # a plugin: found by its entry point in group gaia, named after the distribution
            with zipfile.ZipFile(wheels[name]) as archive:
                info = next(m for m in members if m.endswith(".dist-info/entry_points.txt"))
                assert f"[gaia]\n{name} = {package}.plugin" in archive.read(info).decode(), name
    core = _members(wheels["gaia-core"])
    assert any(m.startswith("gaia_core/templates/plugin/") and m.endswith(".tmpl") for m in core)
    wasm = _members(wheels["gaia-runner-wasm"])
    assert "gaia_runner_wasm/modules/echo.wasm" in wasm
    native = _members(wheels["gaia-native"])
    assert any(re.fullmatch(r"gaia_native/_gaia_native\.abi3\.(so|pyd)", m) for m in native), sorted(native)
    assert {"gaia_native/__init__.py", "gaia_native/py.typed"} <= native


@pytest.mark.parametrize(("args", "no_cargo", "says"), [
    (["DIST="], False, "make dist: DIST is empty; name the folder for the wheels, e.g. DIST=dist"),
    (["PYTHON=/nonexistent/python3"], False, "make dist: '/nonexistent/python3' is not Python >= 3.11"),
    ([], True, "make dist: cargo is not on PATH; gaia-native is compiled with the Rust toolchain"),
], ids=["empty-dist", "no-python", "no-cargo"])
def test_make_dist_refuses_what_it_cannot_build_with_one_line(tmp_path: Path, args: list[str], no_cargo: bool,
                                                              says: str) -> None:
    make = shutil.which("make")
    assert make is not None, "`make` is not on PATH"
    env = {**os.environ, "PATH": str(tmp_path)} if no_cargo else dict(os.environ)  # an empty folder: no cargo
    run = subprocess.run([make, "--no-print-directory", "dist", f"DIST={tmp_path / 'dist'}",
                          f"PYTHON={sys.executable}", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60, check=False)
    assert run.returncode != 0
    ours = [line for line in run.stderr.splitlines() if line.startswith("make dist:")]
    assert len(ours) == 1 and ours[0].startswith(says), run.stderr
    assert "Traceback" not in run.stderr and not (tmp_path / "dist").exists()


def readme_install_names() -> list[str]:
    """The distributions README.md's install command names (fails when README shows no such command)."""
    match = README_INSTALL.search(README.read_text(encoding="utf-8"))
    assert match, "README.md shows no `pip install --find-links dist NAME...` line"
    return match["names"].split()


def test_readme_installs_from_dist_and_says_the_names_are_not_published() -> None:
    names = readme_install_names()
    assert names[0] == "gaia-core"
    assert set(names) == set(distributions()) - {"gaia-native"}  # gaia-native comes as gaia-core's dependency
    text = " ".join(README.read_text(encoding="utf-8").split())
    assert "make dist" in text
    assert "not published" in text and "unrelated project" in text


def _third_party_view(into: Path) -> Path:
    """A folder of links to this interpreter's installed packages, less every first-party one and .pth hooks."""
    view = into / "third-party"
    view.mkdir()
    sites = dict.fromkeys(Path(sysconfig.get_paths()[key]) for key in ("purelib", "platlib"))
    for site in sites:
        for entry in site.iterdir():
            lowered = entry.name.lower()
            if lowered.startswith(("gaia", "_gaia", "__editable__", "__pycache__")) or lowered.endswith(".pth"):
                continue
            if not (view / entry.name).exists():
                (view / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    return view


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory, wheelhouse: Path) -> Iterator[Path]:
    """A new venv where README's command installed gaia-core and the plugins from the wheels, offline."""
    root = tmp_path_factory.mktemp("fresh")
    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "third_party.pth").write_text(f"{_third_party_view(root)}\n", encoding="utf-8")
    command = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-index", "--find-links",
               str(wheelhouse), *readme_install_names()]
    run = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False,
                         env=_clean_env(root))
    assert run.returncode == 0, f"{' '.join(command)}\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    yield env_dir


def _clean_env(root: Path) -> dict[str, str]:
    """This process's environment without what would point a child at this checkout or its venv."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHONPATH", "VIRTUAL_ENV", "GAIA_LOAD_PLUGINS", "PIP_REQUIRE_VIRTUALENV"}}
    env["GAIA_HOME"] = str(root / "home")
    return env


def _gaia(env_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(env_dir / "bin" / "gaia"), *args], capture_output=True, text=True, timeout=120,
                          check=False, cwd=env_dir.parent, env=_clean_env(env_dir.parent))


def test_the_installed_packages_come_from_the_wheels_not_this_checkout(fresh_venv: Path) -> None:
    modules = ["gaia_core", "gaia_native", *(n.replace("-", "_") for n in readme_install_names()[1:])]
    code = "import importlib, json, sys; print(json.dumps([importlib.import_module(m).__file__ for m in sys.argv[1:]]))"
    run = subprocess.run([str(fresh_venv / "bin" / "python"), "-c", code, *modules], capture_output=True, text=True,
                         cwd=fresh_venv.parent, env=_clean_env(fresh_venv.parent), timeout=120, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    for module, file in zip(modules, json.loads(run.stdout), strict=True):
        assert Path(file).is_relative_to(fresh_venv), f"{module} imported from {file}"


def test_the_installed_gaia_lists_the_installed_plugins_active_on_the_native_backend(fresh_venv: Path) -> None:
    listed = _gaia(fresh_venv, "plugins", "--json")
    assert listed.returncode == 0, listed.stderr
    plugins = {p["name"]: p for p in json.loads(listed.stdout)}
    assert set(plugins) == set(readme_install_names()[1:])
    assert {p["status"] for p in plugins.values()} == {"active"}, plugins
    assert all(p["version"] == release() for p in plugins.values())
    version = _gaia(fresh_venv, "version", "--verbose")
    assert version.returncode == 0, version.stderr
    assert f"gaia-native: {release()}" in version.stdout
    assert "hashing backend: native" in version.stdout and "scheduling backend: native" in version.stdout


def test_the_installed_runner_runs_a_task_module_shipped_in_its_wheel(fresh_venv: Path, tmp_path: Path) -> None:
    module = next(fresh_venv.glob("lib/python*/site-packages/gaia_runner_wasm/modules/echo.wasm"))
    data = tmp_path / "input.bin"
    data.write_bytes(b"from the wheel")
    run = _gaia(fresh_venv, "task", "run", str(module), "--entry", "echo", "--input", str(data), "--json")
    assert run.returncode == 0, run.stdout + run.stderr
    result = json.loads(run.stdout)
    assert (result["status"], result["output"]) == ("ok", "from the wheel")
