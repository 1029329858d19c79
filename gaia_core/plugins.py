"""Plugin discovery, loading and selection.

Plugins are distributions with an entry point in group ``gaia`` whose name is
the distribution name (``gaia-runner-wasm = "gaia_runner_wasm.plugin"``). Each
loads on its own: one that fails to import, has a misspelt hook or a hook
with a wrong signature, or raises from a role hook is reported as ``failed``
(with a remedy) and skipped, unless ``GAIA_STRICT_PLUGINS=1``.

Which installed plugins load: ``--plugins a,b`` beats ``$GAIA_LOAD_PLUGINS``
(``''`` loads none, as llm's ``LLM_LOAD_PLUGINS``), which beats
``[plugins] load`` in the config; by default all installed plugins load.

Plugins load when a command needs them, not when ``gaia`` starts. A plugin
may name a light module of its own under a second entry-point group (the
command line's ``gaia.commands``); ``load(only_from=...)`` imports just those
modules, so ``gaia --help`` lists plugin commands without importing runtimes.
"""

from __future__ import annotations

import os
import re
import traceback
from collections.abc import Iterable, Sequence
from importlib import metadata
from typing import TYPE_CHECKING, Any

import attrs
import pluggy
from attrs import frozen

from gaia_core import hookspecs
from gaia_core.errors import PluginError
from gaia_core.roles import ROLES, SPEC_TYPES

if TYPE_CHECKING:
    import click

ENTRY_POINT_GROUP = "gaia"
ROLE_HOOKS = {role: f"gaia_{role}s" for role in ROLES}
ROLE_HOOKS["benchmark"] = "gaia_benchmarks"


def canonical_name(name: str) -> str:
    """PEP 503 normalisation, so ``Gaia_Runner.WASM`` names ``gaia-runner-wasm``."""
    return re.sub(r"[-_.]+", "-", name).lower().strip()


def parse_selection(text: str) -> list[str]:
    """Split a comma-separated plugin list; the empty string selects none."""
    return [canonical_name(p) for p in text.split(",") if p.strip()]


@frozen
class PluginInfo:
    """One installed plugin as ``gaia plugins`` shows it."""

    name: str
    version: str
    status: str  # active | blocked | failed
    module: str = ""
    hooks: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    error: str | None = None
    remedy: str | None = None


class Plugins:
    """The loaded plugins: a pluggy manager plus what happened to every installed plugin."""

    def __init__(self, pm: pluggy.PluginManager, infos: dict[str, PluginInfo], strict: bool = False) -> None:
        self.pm = pm
        self.infos = infos
        self.strict = strict
        self._specs: dict[str, list[tuple[str, Any]]] | None = None

    @property
    def hook(self) -> pluggy.HookRelay:
        """Call hooks of the active plugins."""
        return self.pm.hook

    def register(self, plugin: object, name: str, version: str = "") -> None:
        """Register an in-process plugin object (the node's own, or a test's)."""
        self.pm.register(plugin, name=name)
        self.pm.check_pending()
        self.infos[name] = PluginInfo(name, version, "active", getattr(plugin, "__name__", type(plugin).__name__),
                                      hooks=hooks_of(self.pm, plugin))
        self._specs = None

    def register_commands(self, group: click.Group) -> None:
        """Call each active plugin's ``gaia_register_commands`` on ``group``.

        A plugin whose hook raises is failed, and the commands it added are taken out again.
        """
        for impl in self.pm.hook.gaia_register_commands.get_hookimpls():
            before = dict(group.commands)
            try:
                impl.function(cli=group)
            except Exception as exc:
                group.commands = before
                self._fail(impl.plugin_name, f"gaia_register_commands() raised {describe_error(exc)}")

    def specs(self, role: str) -> list[tuple[str, Any]]:
        """(plugin name, spec) pairs registered for ``role`` by active plugins."""
        if self._specs is None:
            self._specs = self._collect()
        return self._specs[role]

    def one(self, role: str) -> Any:
        """The single active provider spec for a one-only role, or a PluginError saying how to fix it."""
        found = self.specs(role)
        if not found:
            raise PluginError(
                f"no {role} plugin is active",
                hint=f"install one (e.g. `pip install gaia-{_first_party(role)}`) or check `gaia plugins --all`",
            )
        if len(found) > 1:
            names = ", ".join(f"{plugin} ({spec.name})" for plugin, spec in found)
            raise PluginError(
                f"more than one {role} plugin is active: {names}",
                hint="choose one with --plugins, $GAIA_LOAD_PLUGINS, or [plugins] block in config.toml",
            )
        return found[0][1]

    def runners_by_kind(self) -> dict[str, Any]:
        """Map each task kind to the one runner spec that runs it."""
        owner: dict[str, tuple[str, Any]] = {}
        for plugin, spec in self.specs("runner"):
            for kind in spec.task_kinds:
                if kind in owner:
                    raise PluginError(
                        f"task kind {kind!r} is claimed by two runners: {owner[kind][0]} and {plugin}",
                        hint="load only one of them with --plugins",
                    )
                owner[kind] = (plugin, spec)
        return {kind: spec for kind, (_, spec) in owner.items()}

    def prover(self, scheme: str) -> Any:
        """The spec of the prover registered for ``scheme``."""
        for _plugin, spec in self.specs("prover"):
            if spec.scheme == scheme:
                return spec
        known = ", ".join(spec.scheme for _, spec in self.specs("prover")) or "none"
        raise PluginError(f"no active prover for scheme {scheme!r} (active: {known})",
                          hint="install gaia-zk-mock or set [prover] scheme in config.toml")

    def _collect(self) -> dict[str, list[tuple[str, Any]]]:
        found: dict[str, list[tuple[str, Any]]] = {role: [] for role in ROLES}
        for role, hook_name in ROLE_HOOKS.items():
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                try:
                    specs = list(impl.function() or ())
                    wrong = [s for s in specs if not isinstance(s, SPEC_TYPES[role])]
                    if wrong:
                        raise TypeError(f"{hook_name} yielded {type(wrong[0]).__name__}, "
                                        f"expected {SPEC_TYPES[role].__name__}")
                except Exception as exc:
                    self._fail(impl.plugin_name, f"{hook_name}() raised {type(exc).__name__}: {exc}")
                    continue
                found[role].extend((impl.plugin_name, spec) for spec in specs)
        failed = {name for name, info in self.infos.items() if info.status == "failed"}
        found = {role: [(p, s) for p, s in pairs if p not in failed] for role, pairs in found.items()}
        for role, pairs in found.items():
            self._annotate(role, pairs)
        return found

    def _annotate(self, role: str, pairs: list[tuple[str, Any]]) -> None:
        for plugin, spec in pairs:
            info = self.infos.get(plugin)
            if info is not None:
                label = f"{role}:{getattr(spec, 'name', None) or spec.scheme}"
                self.infos[plugin] = attrs.evolve(info, roles=tuple(sorted({*info.roles, role})),
                                                  provides=(*info.provides, label))

    def _fail(self, name: str, error: str) -> None:
        if self.strict:
            raise PluginError(f"plugin {name} failed: {error}")
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin)
        info = self.infos.get(name) or PluginInfo(name, "", "failed")
        self.infos[name] = attrs.evolve(info, status="failed", error=error, remedy=_remedy(name))


def _first_party(role: str) -> str:
    return {"runner": "runner-wasm", "benchmark": "bench-psutil", "prover": "zk-mock",
            "transport": "comm-zmq", "queue": "queue-memory"}[role]


def _remedy(name: str) -> str:
    return (f"upgrade or reinstall it (`pip install -U {name}`), report it to its author, "
            f"or leave it out with --plugins / $GAIA_LOAD_PLUGINS")


def hooks_of(pm: pluggy.PluginManager, plugin: object) -> tuple[str, ...]:
    """The names of the hooks ``plugin`` implements, sorted."""
    return tuple(sorted(caller.name for caller in pm.get_hookcallers(plugin) or ()))


def new_manager() -> pluggy.PluginManager:
    """A plugin manager with GAIA's hook specs and no plugins."""
    pm = pluggy.PluginManager("gaia")
    pm.add_hookspecs(hookspecs)
    return pm


def installed(group: str = ENTRY_POINT_GROUP) -> list[metadata.EntryPoint]:
    """Entry points in ``group`` (default ``gaia``), one per distribution, sorted by name."""
    seen: dict[str, metadata.EntryPoint] = {}
    for ep in metadata.entry_points(group=group):
        seen.setdefault(canonical_name(ep.name), ep)
    return [seen[k] for k in sorted(seen)]


def resolve_selection(cli: str | None = None, config_load: Sequence[str] | None = None) -> list[str] | None:
    """The plugin names to load (``None`` = all installed) by the documented precedence."""
    if cli is not None:
        return parse_selection(cli)
    env = os.environ.get("GAIA_LOAD_PLUGINS")
    if env is not None:
        return parse_selection(env)
    if config_load is not None:
        return [canonical_name(n) for n in config_load]
    return None


def load(selection: Iterable[str] | None = None, *, block: Iterable[str] = (), strict: bool | None = None,
         only_from: str | None = None) -> Plugins:
    """Discover installed plugins and load the selected ones, isolating failures.

    With ``only_from``, load instead the module each selected plugin names
    under that entry-point group (same name), leaving out plugins that name
    none. Raises :class:`PluginError` only for a selected name that is not
    installed (or for any failure when ``strict``).
    """
    strict = os.environ.get("GAIA_STRICT_PLUGINS") == "1" if strict is None else strict
    pm = new_manager()
    eps = installed()
    wanted = None if selection is None else {canonical_name(n) for n in selection}
    blocked = {canonical_name(n) for n in block}
    names = {canonical_name(ep.name) for ep in eps}
    if wanted is not None and wanted - names:
        unknown = ", ".join(sorted(wanted - names))
        raise PluginError(
            f"unknown plugin(s): {unknown}; installed: {', '.join(sorted(names)) or 'none'}",
            hint="check the spelling, or install it with pip",
        )
    plugins = Plugins(pm, {}, strict)
    if only_from is not None:
        substitutes = {canonical_name(ep.name): ep for ep in installed(only_from)}
        eps = [substitutes[canonical_name(ep.name)] for ep in eps if canonical_name(ep.name) in substitutes]
    for ep in eps:
        name = canonical_name(ep.name)
        version = ep.dist.version if ep.dist else ""
        info = PluginInfo(name, version, "active", ep.value)
        if name in blocked or (wanted is not None and name not in wanted):
            plugins.infos[name] = attrs.evolve(info, status="blocked")
            continue
        plugins.infos[name] = info
        try:
            module = ep.load()
            pm.register(module, name=name)
            pm.check_pending()
        except Exception as exc:
            detail = describe_error(exc)
            plugins._fail(name, detail)
            continue
        plugins.infos[name] = attrs.evolve(info, hooks=hooks_of(pm, module))
    return plugins


def describe_error(exc: BaseException) -> str:
    """One line for a plugin's exception: type, message and the line that raised it."""
    if isinstance(exc, pluggy.PluginValidationError):
        return f"invalid hook: {exc}"
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" at {last[0].filename}:{last[0].lineno}" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"
