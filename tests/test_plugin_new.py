"""``gaia plugin new``: each role's generated plugin passes its own tests and ``gaia plugins --check`` as written."""

from __future__ import annotations

import fnmatch
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from gaia_core.cli import cli, main
from gaia_core.commands import plugin_new
from gaia_core.errors import UsageError
from gaia_core.roles import ROLES

#: Seconds one generated test suite may take.
SUITE_TIMEOUT_S = 300


def _install_metadata(root: Path, site: Path) -> None:
    """Make the generated distribution visible to importlib.metadata, from its own pyproject (no pip)."""
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n",
                                   encoding="utf-8")
    entry_points = "".join(f"{name} = {value}\n" for name, value in project["entry-points"]["gaia"].items())
    (info / "entry_points.txt").write_text(f"[gaia]\n{entry_points}", encoding="utf-8")


def _run(args: list[str], cwd: Path, pythonpath: list[Path], home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, pythonpath)), "GAIA_HOME": str(home),
           "GAIA_LOAD_PLUGINS": ""}
    env.pop("GAIA_STRICT_PLUGINS", None)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=SUITE_TIMEOUT_S, check=False)


@pytest.mark.parametrize("role", ROLES)
def test_a_generated_plugin_passes_its_conformance_suite_and_the_check(role: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["plugin", "new", "--role", role, "example", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    root = tmp_path / f"gaia-{role}-example"
    assert f"wrote {root}" in result.output
    tests = _run(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore::RuntimeWarning"], root, [root],
                 tmp_path / "home-tests")
    assert tests.returncode == 0, tests.stdout[-4000:] + tests.stderr[-2000:]
    assert " passed" in tests.stdout and "skipped" not in tests.stdout
    site = tmp_path / "site"
    _install_metadata(root, site)
    check = _run(["-m", "gaia_core", "plugins", "--check", f"gaia-{role}-example"], tmp_path, [root, site],
                 tmp_path / "home-check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "FAIL" not in check.stdout and f"protocol {role}:example: satisfies" in check.stdout


def test_the_distribution_has_the_documented_layout(tmp_path: Path) -> None:
    root = plugin_new.generate("runner", "gaia-runner-echo", tmp_path)
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert files == ["README.md", "gaia_runner_echo/__init__.py", "gaia_runner_echo/plugin.py",
                     "gaia_runner_echo/provider.py", "gaia_runner_echo/py.typed", "pyproject.toml",
                     "tests/conftest.py", "tests/test_conformance.py", "tests/test_plugin.py"]
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["entry-points"]["gaia"] == {"gaia-runner-echo": "gaia_runner_echo.plugin"}
    assert project["tool"]["setuptools"]["package-data"]["gaia_runner_echo"] == ["py.typed"]
    sources = "\n".join(p.read_text(encoding="utf-8") for p in root.rglob("*.py"))
    assert "gaia_core." not in sources.replace("gaia_core.plugin_api", "").replace("gaia_core.testing", "")


@pytest.mark.parametrize(("role", "name", "dist", "cls"), [
    ("runner", "echo", "gaia-runner-echo", "EchoRunner"),
    ("runner", "gaia-runner-echo", "gaia-runner-echo", "EchoRunner"),
    ("queue", "Fair_Share", "gaia-queue-fair-share", "FairShareQueue"),
    ("prover", "gaia-sig", "gaia-sig", "SigProver"),
])
def test_names_follow_the_distribution_naming_rule(role: str, name: str, dist: str, cls: str) -> None:
    values = plugin_new.names(role, name)
    assert (values["dist"], values["package"], values["cls"]) == (dist, dist.replace("-", "_"), cls)


@pytest.mark.parametrize("name", ["", "1abc", "a b", "a--b", "ä", "x" * 65, "../up", "gaia-runner-3d"])
def test_a_name_that_cannot_be_a_distribution_is_refused(name: str, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is not a distribution name|must start with a letter"):
        plugin_new.generate("runner", name, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_directory_is_never_overwritten(tmp_path: Path) -> None:
    root = plugin_new.generate("runner", "echo", tmp_path)
    (root / "README.md").write_text("mine", encoding="utf-8")
    with pytest.raises(UsageError, match="already exists"):
        plugin_new.generate("runner", "echo", tmp_path)
    assert (root / "README.md").read_text(encoding="utf-8") == "mine"


def test_an_unwritable_directory_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory", encoding="utf-8")
    with pytest.raises(SystemExit) as exit_:
        main(["plugin", "new", "--role", "queue", "fair", "--dir", str(blocker / "below")])
    err = capsys.readouterr().err
    assert exit_.value.code == UsageError.exit_code and "cannot write the plugin" in err and "Traceback" not in err


def test_an_unknown_role_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["plugin", "new", "--role", "miner", "x", "--dir", str(tmp_path)])
    assert result.exit_code == 2 and "'miner' is not one of" in result.output


def test_the_kernel_wheel_ships_every_template() -> None:
    root = Path(__file__).resolve().parents[1]
    globs = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"][
        "package-data"]["gaia_core"]
    templates = [p.relative_to(root / "gaia_core").as_posix() for p in (root / "gaia_core" / "templates").rglob("*")
                 if p.is_file()]
    assert templates and all(any(fnmatch.fnmatch(t, g) for g in globs) for t in templates)
