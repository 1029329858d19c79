"""Layers: the library never imports the command line or a plugin; ``gaia --version`` and ``--help`` load no plugin."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from importlib.util import find_spec
from pathlib import Path

import click
import pytest

from gaia_core.cli import BUILTIN_COMMANDS, COMMANDS_GROUP, cli
from gaia_core.config import Home

ROOT = Path(__file__).resolve().parents[1]
KERNEL = ROOT / "gaia_core"
#: The command-line layer: click commands and the ``python -m`` tools built on them.
CLI_LAYER = {"gaia_core/cli.py", "gaia_core/__main__.py", "gaia_core/docgen.py"}
CLI_PACKAGES = ("gaia_core.cli", "gaia_core.commands")
#: Top-level packages of the first-party plugins (each plugins/<dir> holds one of that name).
PLUGIN_PACKAGES = tuple(sorted(p.name for p in (ROOT / "plugins").iterdir() if (p / p.name).is_dir()))


def library_modules() -> list[Path]:
    """Every kernel module outside the command-line layer."""
    return sorted(p for p in KERNEL.rglob("*.py")
                  if str(p.relative_to(ROOT)) not in CLI_LAYER and "commands" not in p.relative_to(KERNEL).parts)


def imported_names(source: str) -> set[str]:
    """Every module ``source`` imports: import statements (at any depth) and ``import_module("...")`` calls."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in
              {"import_module", "__import__"} and node.args and isinstance(node.args[0], ast.Constant)):
            names.add(str(node.args[0].value))
    return names


def forbidden(name: str) -> bool:
    """Whether a library module may not import ``name``: the CLI layer or a plugin package."""
    return any(name == p or name.startswith(p + ".") for p in (*CLI_PACKAGES, *PLUGIN_PACKAGES))


def test_the_walk_sees_every_kind_of_import() -> None:
    source = ("import gaia_runner_wasm.workloads\nfrom gaia_core import commands\n"
              "def f():\n    from gaia_core.commands.jobs import wait_for_job\n"
              "importlib.import_module('gaia_comm_zmq')\n")
    found = {n for n in imported_names(source) if forbidden(n)}
    assert found == {"gaia_runner_wasm.workloads", "gaia_core.commands", "gaia_core.commands.jobs",
                     "gaia_core.commands.jobs.wait_for_job", "gaia_comm_zmq"}
    assert not forbidden("gaia_core.config") and not forbidden("gaia_core.clients")


def test_the_walk_covers_the_library() -> None:
    names = {str(p.relative_to(ROOT)) for p in library_modules()}
    assert {"gaia_core/demo.py", "gaia_core/node.py", "gaia_core/plugins.py"} <= names
    assert not names & CLI_LAYER and not any("/commands/" in n for n in names)
    assert "gaia_runner_wasm" in PLUGIN_PACKAGES and "gaia_comm_zmq" in PLUGIN_PACKAGES


@pytest.mark.parametrize("path", library_modules(), ids=lambda p: str(p.relative_to(KERNEL)))
def test_no_library_module_imports_the_command_line_or_a_plugin(path: Path) -> None:
    wrong = sorted(n for n in imported_names(path.read_text(encoding="utf-8")) if forbidden(n))
    assert not wrong, f"{path.relative_to(ROOT)} imports {', '.join(wrong)}: library code must not"


# ---------------------------------------------------------------- lazy loading

#: Runtimes that only plugins need: a command that loads no plugin imports none of them.
RUNTIMES = ("wasmtime", "zmq", "psutil")

#: Runs ``gaia`` in process, then prints (last, on stderr, as JSON) which of the given modules it imported.
PROBE = """
import json, sys
from gaia_core.cli import main
code = 0
try:
    main(sys.argv[2:])
except SystemExit as exc:
    code = exc.code or 0
names = json.loads(sys.argv[1])
print(json.dumps(sorted(n for n in names if n in sys.modules)), file=sys.stderr)
sys.exit(code)
"""

#: The main module of a plugin with commands: heavy (it stands for one importing a runtime).
MAIN_MODULE = """
    import wasmtime
    from gaia_core import hookimpl


    @hookimpl
    def gaia_register_commands(cli):
        from gaia_fake_cmds_commands import hello
        cli.add_command(hello)
"""

#: Its light commands module, named under ``gaia.commands``.
COMMANDS_MODULE = """
    import click
    from gaia_core import hookimpl


    @click.command()
    @click.argument("who")
    def hello(who):
        "Say hello from a plugin."
        click.echo(f"hello {who}")


    @hookimpl
    def gaia_register_commands(cli):
        cli.add_command(hello)
"""


def probe(home: Home, *args: str, watch: tuple[str, ...] = RUNTIMES,
          site: Path | None = None) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run ``gaia args`` in a child process; its result and which ``watch`` modules it imported."""
    environ = {k: v for k, v in os.environ.items() if k not in {"GAIA_LOAD_PLUGINS", "PYTHONPATH"}}
    environ.update(GAIA_HOME=str(home.root), COLUMNS="200")
    if site is not None:
        environ["PYTHONPATH"] = str(site)
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(watch), *args], capture_output=True,
                          text=True, env=environ, timeout=120, check=False)
    return proc, json.loads(proc.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["version"], ["config", "show"], ["task", "--help"]])
def test_commands_that_need_no_plugin_import_no_runtime(gaia_home: Home, args: list[str]) -> None:
    proc, imported = probe(gaia_home, *args)
    assert proc.returncode == 0 and proc.stdout, proc.stderr
    assert imported == []


def test_gaia_plugins_still_loads_every_plugin(gaia_home: Home) -> None:
    installed = sorted(m for m in RUNTIMES if find_spec(m) is not None)
    proc, imported = probe(gaia_home, "plugins", "--json")
    assert proc.returncode == 0, proc.stderr
    assert imported == installed
    assert {p["name"] for p in json.loads(proc.stdout)} >= {"gaia-runner-wasm"}


@pytest.fixture
def command_plugin(fake_dists) -> Path:
    """A fake plugin distribution whose commands live in a light module named under ``gaia.commands``."""
    main = fake_dists.add("gaia-fake-cmds", MAIN_MODULE)
    (fake_dists.root / "gaia_fake_cmds_commands.py").write_text(textwrap.dedent(COMMANDS_MODULE), encoding="utf-8")
    fake_dists.modules.append("gaia_fake_cmds_commands")
    entry_points = next(fake_dists.root.glob("gaia_fake_cmds-*.dist-info")) / "entry_points.txt"
    with entry_points.open("a", encoding="utf-8") as out:
        out.write(f"[{COMMANDS_GROUP}]\ngaia-fake-cmds = gaia_fake_cmds_commands\n")
    assert main == "gaia_fake_cmds_plugin"
    return fake_dists.root


def test_help_lists_a_plugins_declared_commands_without_importing_the_plugin(gaia_home: Home,
                                                                            command_plugin: Path) -> None:
    watch = ("gaia_fake_cmds_plugin", "gaia_fake_cmds_commands", *RUNTIMES)
    proc, imported = probe(gaia_home, "--plugins", "gaia-fake-cmds", "--help", watch=watch, site=command_plugin)
    assert proc.returncode == 0, proc.stderr
    assert "  hello      Say hello from a plugin." in proc.stdout and "  version " in proc.stdout
    assert imported == ["gaia_fake_cmds_commands"]
    ran, imported = probe(gaia_home, "--plugins", "gaia-fake-cmds", "hello", "world", watch=watch,
                          site=command_plugin)
    assert ran.stdout == "hello world\n" and imported == ["gaia_fake_cmds_commands"]


def test_a_plugin_left_out_of_the_selection_adds_no_command(gaia_home: Home, command_plugin: Path) -> None:
    proc, imported = probe(gaia_home, "--plugins", "", "--help", watch=("gaia_fake_cmds_commands",),
                           site=command_plugin)
    assert proc.returncode == 0 and "hello" not in proc.stdout and imported == []
    ran, _ = probe(gaia_home, "--plugins", "", "hello", "world", site=command_plugin)
    assert ran.returncode == 2 and "No such command 'hello'" in ran.stderr


@pytest.mark.parametrize("name", sorted(BUILTIN_COMMANDS))
def test_each_builtin_summary_is_its_commands_own(name: str) -> None:
    command = cli.get_command(click.Context(cli), name)
    assert isinstance(command, click.Command) and command.name == name
    assert command.get_short_help_str(500) == BUILTIN_COMMANDS[name][1]


#: A commands module whose hook adds one command, then raises.
BROKEN_COMMANDS_MODULE = """
    import click
    from gaia_core import hookimpl


    @hookimpl
    def gaia_register_commands(cli):
        @cli.command()
        def half():
            "Half registered."
        raise RuntimeError("no commands today")
"""


def test_a_plugin_whose_commands_fail_is_one_warning_and_help_still_works(gaia_home: Home, command_plugin: Path,
                                                                          fake_dists) -> None:
    fake_dists.add("gaia-fake-broken-cmds", "")
    (fake_dists.root / "gaia_fake_broken_cmds_commands.py").write_text(textwrap.dedent(BROKEN_COMMANDS_MODULE),
                                                                       encoding="utf-8")
    fake_dists.modules.append("gaia_fake_broken_cmds_commands")
    entry_points = next(fake_dists.root.glob("gaia_fake_broken_cmds-*.dist-info")) / "entry_points.txt"
    with entry_points.open("a", encoding="utf-8") as out:
        out.write(f"[{COMMANDS_GROUP}]\ngaia-fake-broken-cmds = gaia_fake_broken_cmds_commands\n")
    proc, _ = probe(gaia_home, "--help", site=command_plugin)
    assert proc.returncode == 0 and "  hello " in proc.stdout and "half" not in proc.stdout
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("Warning:")]
    assert len(warnings) == 1, proc.stderr
    assert warnings[0].startswith("Warning: the commands of plugin gaia-fake-broken-cmds are left out: "
                                  "gaia_register_commands() raised RuntimeError: no commands today at ")
    assert "(remedy: upgrade or reinstall it (`pip install -U gaia-fake-broken-cmds`)" in warnings[0]
    assert "Traceback" not in proc.stderr
