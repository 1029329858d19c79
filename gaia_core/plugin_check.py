"""``gaia plugins --check NAME``: load one plugin strictly and check it against the plugin contract.

The checks, in order (a failed step skips the steps that need it):

1. ``entry point``: the distribution is installed with one entry point in group ``gaia``, named
   after the distribution (PEP 503 normalised) and naming a module.
2. ``import``: the entry point's module imports.
3. ``hooks``: every ``gaia_*`` function is a known hook with known arguments (pluggy's
   ``check_pending``), and there is at least one.
4. ``<hook>``: each role hook returns spec records of its role; ``gaia_register_commands``
   adds its commands to a scratch group without raising.
5. ``config <role>:<name>``: the spec's factory builds a provider from this node's configuration
   (a ``ConfigError`` means the plugin's table does not parse).
6. ``protocol <role>:<name>``: the provider has every method and attribute of its role's protocol,
   each accepting the protocol's arguments (same names, kinds and optional ones).

Providers are built but never started; runners and queues are closed, transports stopped.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Any

import click
import pluggy
from attrs import frozen

from gaia_core import plugins
from gaia_core.config import Config, Home
from gaia_core.errors import ConfigError, GaiaError, PluginError
from gaia_core.identity import Identity
from gaia_core.roles import ROLES, SPEC_TYPES, Benchmark, NodeContext, Prover, Queue, Runner, Transport

#: The protocol each role's providers satisfy.
PROTOCOLS: dict[str, type] = {"runner": Runner, "benchmark": Benchmark, "prover": Prover,
                              "transport": Transport, "queue": Queue}
#: How a built provider is released after its check, by role.
_RELEASE = {"runner": "close", "queue": "close", "transport": "stop"}


@frozen
class Check:
    """One line of ``gaia plugins --check``: what was checked, whether it holds, and what to do if not."""

    name: str
    ok: bool
    detail: str
    remedy: str = ""

    def to_dict(self) -> dict[str, object]:
        """The check as JSON data."""
        return {"check": self.name, "ok": self.ok, "detail": self.detail, "remedy": self.remedy}


def run(name: str, config: Config | None, home: Home, *, config_error: str = "") -> list[Check]:
    """Every check of plugin ``name`` against ``config`` (None with ``config_error`` when config.toml is bad)."""
    checks: list[Check] = []
    ep = _entry_point(name, checks)
    if ep is None:
        return checks
    try:
        module = ep.load()
    except Exception as exc:
        checks.append(Check("import", False, plugins.describe_error(exc),
                            "fix the import error (see GAIA_DEBUG=1 gaia ...)"))
        return checks
    checks.append(Check("import", True, f"{ep.value} imported"))
    pm = plugins.new_manager()
    try:
        pm.register(module, name=plugins.canonical_name(name))
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        checks.append(Check("hooks", False, " ".join(str(exc).split()),
                            "spell each hook as in the hook reference, with only the arguments it lists"))
        return checks
    hooks = plugins.hooks_of(pm, module)
    if not hooks:
        checks.append(Check("hooks", False, f"{ep.value} implements no hook",
                            "decorate module-level gaia_* functions with @hookimpl from gaia_core.plugin_api"))
        return checks
    checks.append(Check("hooks", True, ", ".join(hooks)))
    if "gaia_register_commands" in hooks:
        checks.append(_commands(pm))
    if config is None:
        checks.append(Check("config", False, config_error, "fix config.toml (`gaia config show` shows the defaults)"))
        return checks
    context = NodeContext(config=config, home=home, identity=_identity(home), hook=pm.hook,
                          log=logging.getLogger("gaia"))
    for role in ROLES:
        hook_name = plugins.ROLE_HOOKS[role]
        if hook_name in hooks:
            checks += _role(pm, role, hook_name, context)
    return checks


def _entry_point(name: str, checks: list[Check]) -> metadata.EntryPoint | None:
    wanted = plugins.canonical_name(name)
    found = [ep for ep in metadata.entry_points(group=plugins.ENTRY_POINT_GROUP)
             if plugins.canonical_name(ep.dist.name if ep.dist else ep.name) == wanted
             or plugins.canonical_name(ep.name) == wanted]
    if not found:
        installed = ", ".join(plugins.canonical_name(ep.name) for ep in plugins.installed()) or "none"
        raise PluginError(f"no plugin named {name!r} is installed (installed: {installed})",
                          hint="check the spelling, or install it with pip")
    ep = found[0]
    dist = ep.dist.name if ep.dist else "?"
    problems = []
    if len({e.value for e in found}) > 1:
        problems.append(f"{len(found)} entry points in group gaia ({', '.join(e.name for e in found)}); keep one")
    if plugins.canonical_name(ep.name) != plugins.canonical_name(dist):
        problems.append(f"entry point is named {ep.name!r}, not after its distribution {dist!r}")
    if ep.attr:
        problems.append(f"entry point {ep.value!r} names an object; name the module that holds the hooks")
    version = ep.dist.version if ep.dist else "?"
    if problems:
        checks.append(Check("entry point", False, "; ".join(problems),
                            f'declare [project.entry-points.gaia] {dist} = "<package>.plugin" in pyproject.toml'))
    else:
        checks.append(Check("entry point", True, f"{ep.name} = {ep.value} (distribution {dist} {version})"))
    return ep


def _commands(pm: pluggy.PluginManager) -> Check:
    group = click.Group("gaia")
    try:
        pm.hook.gaia_register_commands(cli=group)
    except Exception as exc:
        return Check("gaia_register_commands", False, plugins.describe_error(exc),
                     "the hook must only attach click commands")
    return Check("gaia_register_commands", True, "adds " + (", ".join(sorted(group.commands)) or "no commands"))


def _role(pm: pluggy.PluginManager, role: str, hook_name: str, context: NodeContext) -> Iterator[Check]:
    spec_type = SPEC_TYPES[role]
    try:
        specs = [spec for result in getattr(pm.hook, hook_name)() for spec in (result or ())]
    except Exception as exc:
        yield Check(hook_name, False, plugins.describe_error(exc), "a role hook must only yield spec records")
        return
    wrong = [type(s).__name__ for s in specs if not isinstance(s, spec_type)]
    if wrong or not specs:
        detail = f"yielded {', '.join(wrong)}" if wrong else "yielded nothing"
        yield Check(hook_name, False, f"{detail}; expected {spec_type.__name__} records",
                    f"yield {spec_type.__name__}(...) from gaia_core.plugin_api")
        return
    yield Check(hook_name, True, ", ".join(_label(role, s) for s in specs))
    for spec in specs:
        yield from _provider(role, spec, context)


def _provider(role: str, spec: Any, context: NodeContext) -> Iterator[Check]:
    label = _label(role, spec)
    try:
        provider = spec.factory(context)
    except ConfigError as exc:
        yield Check(f"config {label}", False, str(exc), "fix this plugin's table in config.toml (see its README)")
        return
    except Exception as exc:
        yield Check(f"config {label}", False, f"factory raised {plugins.describe_error(exc)}",
                    "a factory must build its provider from a NodeContext; raise ConfigError for bad settings")
        return
    yield Check(f"config {label}", True, f"{type(provider).__name__} built from this node's configuration")
    protocol = PROTOCOLS[role]
    try:
        problems = protocol_problems(provider, protocol)
        if role == "prover" and getattr(provider, "scheme", spec.scheme) != spec.scheme:
            problems.append(f"scheme is {provider.scheme!r} but the spec registers {spec.scheme!r}")
    except Exception as exc:  # e.g. a property of the provider that raises when read
        problems = [f"inspecting it raised {plugins.describe_error(exc)}"]
    released = _release(role, provider)
    yield Check(f"protocol {label}", not problems, "; ".join(problems) or f"satisfies {protocol.__name__}",
                f"match the {protocol.__name__} protocol in docs/plugin-authoring.md" if problems else "")
    if released:
        yield Check(f"release {label}", False, released,
                    f"{_RELEASE[role]}() must succeed on a provider that was never started")


def _release(role: str, provider: object) -> str:
    """Close or stop a provider built for the check; what went wrong, or ""."""
    release = getattr(provider, _RELEASE.get(role, ""), None)
    if not callable(release):
        return ""
    try:
        release()
    except Exception as exc:
        return f"{_RELEASE[role]}() raised {plugins.describe_error(exc)}"
    return ""


def protocol_problems(provider: object, protocol: type) -> list[str]:
    """What ``provider`` lacks to satisfy ``protocol``: missing attributes, methods or arguments."""
    problems = []
    for attr in getattr(protocol, "__annotations__", {}):
        if not hasattr(provider, attr):
            problems.append(f"no attribute {attr!r}")
    for name, member in vars(protocol).items():
        if name.startswith("_") or not inspect.isfunction(member):
            continue
        method = getattr(provider, name, None)
        if not callable(method):
            problems.append(f"no method {name}()")
            continue
        problems += [f"{name}(): {p}" for p in _signature_problems(method, member)]
    return problems


def _signature_problems(method: Callable[..., Any], declared: Callable[..., Any]) -> list[str]:
    """How ``method`` (bound) fails to accept every call the protocol's ``declared`` method allows."""
    try:
        have = inspect.signature(method)
    except (TypeError, ValueError):
        return []  # a builtin without a signature: nothing to compare
    want = list(inspect.signature(declared).parameters.values())[1:]  # drop self
    params = have.parameters
    var_pos = any(p.kind is p.VAR_POSITIONAL for p in params.values())
    var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
    positional = [p for p in params.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    problems = []
    for index, p in enumerate(want):
        if p.kind is p.POSITIONAL_OR_KEYWORD:
            ok = (index < len(positional) and positional[index].name == p.name
                  and positional[index].kind is p.POSITIONAL_OR_KEYWORD) or (var_pos and var_kw)
            if not ok:
                problems.append(f"takes no positional argument {p.name!r} at position {index + 1}")
                continue
        elif p.kind is p.KEYWORD_ONLY:
            own = params.get(p.name)
            if (own is None or own.kind is own.POSITIONAL_ONLY) and not var_kw:
                problems.append(f"takes no keyword argument {p.name!r}")
                continue
        own = params.get(p.name)
        if p.default is not p.empty and own is not None and own.default is own.empty:
            problems.append(f"argument {p.name!r} must be optional (the protocol gives it a default)")
    names = {p.name for p in want}
    for own in params.values():
        if own.name not in names and own.default is own.empty and own.kind not in (own.VAR_POSITIONAL,
                                                                                    own.VAR_KEYWORD):
            problems.append(f"requires argument {own.name!r} that the protocol does not pass")
    return problems


def _identity(home: Home) -> Identity:
    """The node's identity when it has one, else a throwaway one (providers may need a node id)."""
    try:
        if Identity.exists(home.identity_dir):
            return Identity.load(home.identity_dir)
    except GaiaError:
        pass
    return Identity.generate()


def _label(role: str, spec: Any) -> str:
    return f"{role}:{getattr(spec, 'name', None) or spec.scheme}"
