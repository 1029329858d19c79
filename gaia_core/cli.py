"""The ``gaia`` command line.

Exit codes: 0 success; 1 unexpected failure; 2 usage error; 3 config error;
4 identity error; 5 plugin error; 6 invalid input; 7 task failed;
8 node not running or unreachable. See docs/cli.md.

Nothing heavy loads at start, so ``gaia --version`` and ``gaia --help`` answer
fast: built-in commands are imported when run (their one-line summaries are in
:data:`BUILTIN_COMMANDS`), and plugins load when a command needs them. Plugin
commands come from the modules plugins name under :data:`COMMANDS_GROUP`;
a command found nowhere else loads every selected plugin and asks again.
"""

from __future__ import annotations

import os
import sys
import unicodedata
from importlib import import_module, metadata
from typing import TYPE_CHECKING

import click

from gaia_core import __version__
from gaia_core.errors import GaiaError, UsageError

if TYPE_CHECKING:
    from gaia_core.state import State

#: The global options, which may also follow the command (``gaia node --plugins a,b``),
#: and whether each takes a value.
GLOBAL_OPTIONS = {"--home": True, "--plugins": True, "--debug": False}

#: Built-in commands of ``gaia_core.commands``: name -> ("module:attribute", the command's one-line help).
#: Imported only when run or asked for their own help, as pip's ``commands_dict``; tests/test_layering.py
#: checks each summary against the command's docstring.
BUILTIN_COMMANDS = {
    "bench": ("gaia_core.commands.bench:bench", "Measure what this machine can do: CPU, RAM, GPU, disk and energy."),
    "blob": ("gaia_core.commands.blob:blob",
             "Store large files (model weights, datasets, images) as content-addressed blobs that tasks name by id."),
    "config": ("gaia_core.commands.config_cmd:config",
               "Show, read and change the node's configuration (config.toml)."),
    "dashboard": ("gaia_core.commands.dashboard:dashboard",
                  "Serve a live web page of the running node: status, charts, jobs, peers, rewards, log."),
    "demo": ("gaia_core.commands.demo:demo",
             "Train a digits classifier by federated averaging on a local devnet of real nodes, then score it."),
    "devnet": ("gaia_core.commands.devnet:devnet",
               "A local network of real node processes on 127.0.0.1 (each with its own home, keys and port)."),
    "doctor": ("gaia_core.commands.doctor:doctor",
               "Explain why this node gets no work or cannot reach peers, and what to do."),
    "logs": ("gaia_core.commands.logs:logs",
             "Show the log of the node run in the background for this home (`gaia node --detach`, devnet nodes)."),
    "monitor": ("gaia_core.commands.bench:monitor",
                "Show live resource use of this machine: CPU, RAM, process RSS, GPU, power."),
    "model": ("gaia_core.commands.model:model", "Import ONNX models and run them as inference tasks on the network."),
    "node": ("gaia_core.commands.node:node",
             "Run this node: benchmark, join peers, take tasks, run them sandboxed, prove and return them."),
    "pause": ("gaia_core.commands.pause:pause",
              "Pause the running node: it takes and starts no task (running ones finish) until `gaia resume`."),
    "peers": ("gaia_core.commands.node:peers",
              "List the peers the running node knows: state, last seen, RTT, load, score, refusals by reason."),
    "plugin": ("gaia_core.commands.plugin_new:plugin", "Tools for plugin authors."),
    "proof": ("gaia_core.commands.proof:proof", "Show and verify proofs of work (files written with gaia's codec)."),
    "prune": ("gaia_core.commands.prune:prune",
              "Delete the task inputs, modules and outputs of finished jobs, keeping ids, statuses and the ledger."),
    "register": ("gaia_core.commands.node:register",
                 "Announce this node's signed NodeRecord to its peers and show what the network knows of it."),
    "resume": ("gaia_core.commands.pause:resume", "Resume a paused node: it takes and runs tasks again."),
    "rewards": ("gaia_core.commands.node:rewards",
                "Show the reward ledger: credit granted to workers and earned from submitters (docs/rewards.md)."),
    "service": ("gaia_core.commands.service:service", "Run the node as a systemd user service."),
    "status": ("gaia_core.commands.node:status",
               "Show the running node: uptime, peers, queue, refusals, outbox, tasks, benchmark and rewards."),
    "stop": ("gaia_core.commands.node:stop", "Stop the running node (it drains in-flight tasks first)."),
    "task": ("gaia_core.commands.task:task", "Run tasks on this machine, or send them to the network."),
}

#: Entry-point group where a plugin distribution names (under its own name) the light module that
#: implements ``gaia_register_commands``; ``gaia --help`` imports only these (docs/architecture.md, Layers).
COMMANDS_GROUP = "gaia.commands"


def hoist_global_options(args: list[str]) -> list[str]:
    """``args`` with every global option moved before the command, wherever it was given (up to ``--``)."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        name = args[i].split("=", 1)[0]
        if args[i] == "--":
            rest.extend(args[i:])
            break
        width = 2 if GLOBAL_OPTIONS.get(name) and "=" not in args[i] else 1
        (front if name in GLOBAL_OPTIONS else rest).extend(args[i:i + width])
        i += width
    return front + rest


class GaiaGroup(click.Group):
    """The ``gaia`` group: global options are accepted before or after the command."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Parse ``args`` with the global options moved first."""
        args = hoist_global_options(args)
        ctx.meta["gaia.args"] = list(args)  # the parser consumes args
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Built-in commands and those of plugins that declare a commands module, sorted."""
        return sorted({*self.commands, *BUILTIN_COMMANDS, *_plugin_commands(ctx, declared_only=True)})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """A built-in command (imported now), else a plugin's: declared ones first, then every selected plugin's."""
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name in BUILTIN_COMMANDS:
            module, _, attribute = BUILTIN_COMMANDS[cmd_name][0].partition(":")
            command: click.Command = getattr(import_module(module), attribute)
            return command
        return (_plugin_commands(ctx, declared_only=True).get(cmd_name)
                or _plugin_commands(ctx, declared_only=False).get(cmd_name))

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of ``gaia --help``, without importing the built-in commands."""
        plugin_commands = _plugin_commands(ctx, declared_only=True)
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(map(len, names))
        rows = []
        for name in names:
            stand_in = click.Command(name, help=BUILTIN_COMMANDS[name][1]) if name in BUILTIN_COMMANDS else None
            command = self.commands.get(name) or stand_in or plugin_commands[name]
            if not command.hidden:
                rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=GaiaGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="gaia")
@click.option("--home", type=click.Path(file_okay=False), envvar="GAIA_HOME",
              help="Node home (config, keys, cache, state). Default: $GAIA_HOME or the platform's data dir.")
@click.option("--plugins", "plugin_list", metavar="A,B",
              help="Load only these plugins (comma-separated; '' for none). Default: $GAIA_LOAD_PLUGINS, "
                   "then [plugins] load in config.toml, then every installed plugin.")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, home: str | None, plugin_list: str | None, debug: bool) -> None:
    """GAIA contributes this machine's CPU, GPU and memory to a decentralized AI network.

    \b
    Get started:
      gaia init                 create this node's identity and config
      gaia bench                measure what this machine can do
      gaia node                 run the node (joins peers, takes tasks)
      gaia demo                 federated training on a local 3-node devnet
    \b
    Inspect:
      gaia plugins              which plugins are installed and active
      gaia version --verbose    versions and the active native backend
      gaia config show          the effective configuration
    """
    from gaia_core.state import State

    ctx.obj = State(home=home, plugin_list=plugin_list, debug=debug)


@cli.command()
@click.option("--verbose", "-v", is_flag=True, help="Also show Python, platform and the hashing backend.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_obj
def version(state: State, verbose: bool, as_json: bool) -> None:
    """Show the GAIA version (and, with --verbose, the native backend in use)."""
    import platform

    from gaia_core import hashing, scheduling
    from gaia_core.console import print_json

    info: dict[str, object] = {"gaia-core": __version__}
    if verbose:
        try:
            native_version = metadata.version("gaia-native")
        except metadata.PackageNotFoundError:
            native_version = "not installed"
        info.update({
            "gaia-native": native_version,
            "hashing backend": hashing.BACKEND,
            "scheduling backend": scheduling.BACKEND,
            "python": f"{platform.python_implementation()} {platform.python_version()}",
            "platform": platform.platform(),
        })
        if hashing.BACKEND_ERROR:
            info["native error"] = hashing.BACKEND_ERROR
        info["plugins"] = {i.name: i.version for i in state.plugins().infos.values() if i.status == "active"}
    if as_json:
        print_json(info)
        return
    for key, value in info.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items()) or "none"
        click.echo(f"{key}: {value}")


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--all", "show_all", is_flag=True, help="Also list blocked and failed plugins.")
@click.option("--check", "check_name", metavar="NAME",
              help="Load plugin NAME strictly and check its entry point, hooks, providers and config "
                   "(exit 5 on any failure).")
@click.pass_obj
def plugins_cmd(state: State, as_json: bool, show_all: bool, check_name: str | None) -> None:
    """List installed plugins: name, version, roles, hooks and status."""
    from gaia_core.console import print_json, print_table

    if check_name is not None:
        _check_plugin(state, check_name, as_json)
        return
    loaded = state.plugins()
    loaded.specs("runner")  # collect role specs, marking plugins whose role hooks fail
    infos = [i for i in loaded.infos.values() if show_all or i.status != "blocked"]
    if as_json:
        print_json([{"name": i.name, "version": i.version, "status": i.status, "roles": list(i.roles),
                     "provides": list(i.provides), "hooks": list(i.hooks), "error": i.error,
                     "remedy": i.remedy} for i in infos])
        return
    if not infos and loaded.infos:
        click.echo(f"No plugins active ({len(loaded.infos)} installed, none selected; see `gaia plugins --all`).")
        return
    if not infos:
        click.echo("No plugins installed. Assemble a node with e.g. `pip install gaia-runner-wasm gaia-queue-memory`.")
        return
    print_table(None, ["name", "version", "status", "provides", "hooks"],
                [(i.name, i.version, i.status, ", ".join(i.provides), ", ".join(i.hooks)) for i in infos],
                flex=("provides", "hooks"))
    for i in infos:
        if i.status == "failed":
            click.echo(f"{i.name} failed: {i.error}\n  remedy: {i.remedy}", err=True)


def _check_plugin(state: State, name: str, as_json: bool) -> None:
    """``gaia plugins --check NAME``: one line per check, exit 5 when any fails."""
    from gaia_core import plugin_check
    from gaia_core.console import print_json
    from gaia_core.errors import ConfigError, PluginError

    try:
        config, problem = state.config(), ""
    except ConfigError as exc:
        config, problem = None, str(exc)
    checks = plugin_check.run(name, config, state.home, config_error=problem)
    if as_json:
        print_json([c.to_dict() for c in checks])
    else:
        for c in checks:
            click.echo(f"{'ok  ' if c.ok else 'FAIL'}  {c.name}: {c.detail}")
            if c.remedy and not c.ok:
                click.echo(f"      remedy: {c.remedy}")
    if not all(c.ok for c in checks):
        raise SystemExit(PluginError.exit_code)


@cli.command()
@click.option("--name", default="", help="A human-readable node name shown to peers.")
@click.option("--force", is_flag=True, help="Replace existing keys (the node id changes).")
@click.pass_obj
def init(state: State, name: str, force: bool) -> None:
    """Create this node's identity (its Ed25519 signing key, mode 0600) and config.toml."""
    from gaia_core import config as config_mod
    from gaia_core.identity import Identity

    bad = [char for char in name if unicodedata.category(char).startswith("C")]
    if bad:
        raise UsageError(f"--name {name!r} contains the control character {bad[0]!r}",
                         hint="give a name of printable characters on one line")
    home = state.home.make_private()
    identity = Identity.generate()
    identity.save(home.identity_dir, force=force)
    if force or not home.config_file.exists():
        config_mod.write_default(home, name=name)
    click.echo(f"node id:  {identity.node_id}")
    click.echo(f"keys:     {home.identity_dir}")
    click.echo(f"config:   {home.config_file}")


def _plugin_commands(ctx: click.Context, *, declared_only: bool) -> dict[str, click.Command]:
    """Commands of the plugins selected by the --home and --plugins given (cached on the context).

    ``declared_only``: only from the modules plugins name under :data:`COMMANDS_GROUP` (nothing is
    imported when none does); else from every selected plugin, loaded whole.
    """
    key = f"gaia.plugin_commands.{declared_only}"
    if key not in ctx.meta:
        ctx.meta[key] = {}
        if not declared_only or metadata.entry_points(group=COMMANDS_GROUP):
            ctx.meta[key] = _load_plugin_commands(ctx.meta.get("gaia.args", []), declared_only)
    commands: dict[str, click.Command] = ctx.meta[key]
    return commands


def _load_plugin_commands(args: list[str], declared_only: bool) -> dict[str, click.Command]:
    """Call ``gaia_register_commands`` of the selected plugins on a scratch group; its commands."""
    from gaia_core import plugins as plugins_mod
    from gaia_core.state import State

    group = click.Group("gaia")
    try:
        state = State(home=_option(args, "--home"), plugin_list=_option(args, "--plugins"), debug=False)
        if declared_only:
            config = state.config().plugins if state.home.config_file.exists() else None
            selection = plugins_mod.resolve_selection(state.plugin_list, config.load if config else None)
            loaded = plugins_mod.load(selection, block=config.block if config else (), only_from=COMMANDS_GROUP)
        else:
            loaded = state.plugins()
        loaded.register_commands(group)
    except GaiaError:
        return {}  # reported by the command that needs plugins
    for info in loaded.infos.values():
        if info.status == "failed":
            click.echo(f"Warning: the commands of plugin {info.name} are left out: {info.error} "
                       f"(remedy: {info.remedy})", err=True)
    return {name: command for name, command in group.commands.items() if name not in BUILTIN_COMMANDS}


def _option(argv: list[str], name: str) -> str | None:
    """The value of a global option in ``argv`` (``--name VALUE`` or ``--name=VALUE``)."""
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``gaia`` script: one-line errors, tracebacks only with --debug."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or os.environ.get("GAIA_DEBUG") == "1"
    try:
        cli.main(args=args, prog_name="gaia", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except GaiaError as exc:
        if debug:
            raise
        from gaia_core.console import error

        error(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
