"""The plugin API reference: every name of :mod:`gaia_core.plugin_api` with its signature.

The comment lines inside ``plugin_api.__all__`` group the names; each group becomes a ``###``
heading and each name a ``####`` heading: a protocol with its methods, a record with its fields
and public methods, an error with its exit code, a function with its signature, a namespace
(``codec``, ``admission``) with its public functions and constants. Annotations are shown as
written in the source. Functions of the native module are documented from their pure-Python
reference (same signature, typed), so the text does not depend on the active backend.
"""

from __future__ import annotations

import ast
import enum
import functools
import inspect
import re
import textwrap
import types
from collections.abc import Callable, Iterator
from typing import Any

import attrs

from gaia_core import plugin_api
from gaia_core._reference import hashing as reference_hashing, scheduling as reference_scheduling

_GROUP = re.compile(r"^\s*#\s*(?P<title>.+?)\s*$")
_NAME = re.compile(r'^\s*"(?P<name>\w+)",\s*$')
_REFERENCES = (reference_hashing, reference_scheduling)


class _Annotation(str):
    """An annotation string that ``inspect`` prints without quotes."""

    def __repr__(self) -> str:
        return str(self)


def groups() -> list[tuple[str, list[str]]]:
    """(title, names) in the order of ``plugin_api.__all__``, titled by its comment lines."""
    source = inspect.getsource(plugin_api)
    block = source[source.index("__all__ = ["):]
    block = block[:block.index("\n]") + 2]
    found: list[tuple[str, list[str]]] = []
    for line in block.splitlines()[1:-1]:
        if group := _GROUP.match(line):
            title = group["title"]
            found.append((title[0].upper() + title[1:], []))
        elif name := _NAME.match(line):
            found[-1][1].append(name["name"])
    return found


def _documented(obj: Any) -> Any:
    """``obj``, or its typed pure-Python reference when it comes from the native module."""
    if getattr(obj, "__module__", "").startswith("gaia_native"):
        name = getattr(obj, "__name__", "")
        for module in _REFERENCES:
            if hasattr(module, name):
                return getattr(module, name)
    return obj


def _summary(obj: Any) -> str:
    """The first paragraph of ``obj``'s docstring, as Markdown on one line."""
    doc = inspect.getdoc(obj) or ""
    first = doc.split("\n\n", 1)[0]
    return _inline(" ".join(first.split()))


def _body(obj: Any) -> str:
    """The whole docstring of ``obj`` as Markdown (reST roles and literals made plain)."""
    return "\n".join(_inline(line) for line in (inspect.getdoc(obj) or "").splitlines()).strip()


def _inline(text: str) -> str:
    text = re.sub(r":(?:class|func|meth|attr|mod|data|exc):`~?(?:[\w.]+\.)?(?P<name>[^`.]+)`", r"`\g<name>`", text)
    return text.replace("``", "`")


def signature(func: Callable[..., Any], *, drop_first: bool = False) -> str:
    """``(args) -> return`` of ``func`` with annotations as written in the source."""
    sig = inspect.signature(func)
    params = list(sig.parameters.values())[1 if drop_first else 0:]

    def plain(annotation: Any) -> Any:
        return _Annotation(annotation) if isinstance(annotation, str) else annotation

    sig = sig.replace(parameters=[p.replace(annotation=plain(p.annotation)) for p in params],
                      return_annotation=plain(sig.return_annotation))
    return str(sig)


def _default(field: attrs.Attribute[Any]) -> str:
    default: Any = field.default  # a value, NOTHING or a Factory (which attrs' stubs do not type as a class)
    if default is attrs.NOTHING:
        return ""
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        factory = default.factory
        return f" = {factory.__name__}()" if isinstance(factory, type) else " = <factory>"
    if isinstance(default, (set, frozenset)):
        return f" = {type(default).__name__}({sorted(default)!r})" if default else f" = {type(default).__name__}()"
    return f" = {default!r}"


def _slotted_properties(cls: type) -> Iterator[str]:
    """Items for the cached properties that attrs turned into slots (read from the class source)."""
    if not attrs.has(cls):
        return
    fields = {f.name for f in attrs.fields(cls)}
    wanted = [n for n in getattr(cls, "__annotations__", {}) if n not in fields and not n.startswith("_")]
    if not wanted:
        return
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    defs = {node.name: node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
    for name in wanted:
        node = defs[name]
        returns = f": {ast.unparse(node.returns)}" if node.returns else ""
        yield f"- `.{name}{returns}` (property): {_inline(' '.join((ast.get_docstring(node) or '').split()))}"


def _members(cls: type) -> Iterator[str]:
    """Markdown list items for the public methods and properties ``cls`` defines itself."""
    yield from _slotted_properties(cls)
    for name, member in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(member, classmethod):
            yield f"- `{cls.__name__}.{name}{signature(member.__func__, drop_first=True)}`: {_summary(member)}"
        elif isinstance(member, staticmethod):
            yield f"- `{cls.__name__}.{name}{signature(member.__func__)}`: {_summary(member)}"
        elif isinstance(member, (property, functools.cached_property)):
            func = member.fget if isinstance(member, property) else member.func
            if func is None:
                continue
            returns = inspect.signature(func).return_annotation
            kind = "" if returns is inspect.Signature.empty else f": {returns}"
            yield f"- `.{name}{kind}` (property)" + (f": {_summary(member)}" if _summary(member) else "")
        elif inspect.isfunction(member):
            yield f"- `.{name}{signature(member, drop_first=True)}`: {_summary(member)}"


def _protocol(name: str, cls: type) -> str:
    lines = [f"#### {name} (protocol)", "", _body(cls), ""]
    for attr, annotation in getattr(cls, "__annotations__", {}).items():
        lines.append(f"- `.{attr}: {annotation}`")
    lines += list(_members(cls))
    return "\n".join(lines)


def _written(cls: type, field: attrs.Attribute[Any]) -> Any:
    """A field's annotation as written in the source (cattrs resolves ``field.type`` in place)."""
    for klass in cls.__mro__:
        written = vars(klass).get("__annotations__", {}).get(field.name)
        if written is not None:
            return written
    return field.type


def _record(name: str, cls: type) -> str:
    fields = ", ".join(f"{f.name}: {_written(cls, f)}{_default(f)}" for f in attrs.fields(cls))
    lines = [f"#### {name}({fields})", "", _body(cls)]
    members = list(_members(cls))
    return "\n".join([*lines, "", *members] if members else lines)


def _error(name: str, cls: type[BaseException]) -> str:
    base = cls.__bases__[0].__name__
    init = cls.__dict__.get("__init__")
    args = signature(init, drop_first=True) if init else ""
    return f"#### {name}{args}\n\nSubclass of `{base}`, exit code {getattr(cls, 'exit_code', 1)}. {_summary(cls)}"


def _enum(name: str, cls: type[enum.Enum]) -> str:
    values = ", ".join(f"`{m.value}`" for m in cls)
    return f"#### {name} (enum)\n\n{_body(cls)}\n\nValues: {values}."


def _class(name: str, cls: type) -> str:
    init = cls.__init__  # type: ignore[misc]  # the guide documents this very class's __init__
    lines = [f"#### {name}{signature(init, drop_first=True)}", "", _body(cls)]
    members = list(_members(cls))
    return "\n".join([*lines, "", *members] if members else lines)


def _constant(name: str, value: object) -> str:
    shown = sorted(value) if isinstance(value, (set, frozenset)) else value
    return f"#### {name}\n\n`{name} = {shown!r}`"


def _namespace(name: str, module: types.ModuleType) -> str:
    lines = [f"#### {name} (namespace)", "", _summary(module), ""]
    for attr, value in vars(module).items():
        if attr.startswith("_"):
            continue
        if inspect.isfunction(value) and value.__module__ == module.__name__:
            lines.append(f"- `{name}.{attr}{signature(value)}`: {_summary(value)}")
        elif attr.isupper() and isinstance(value, (int, str, tuple)):
            lines.append(f"- `{name}.{attr} = {value!r}`")
    return "\n".join(lines)


def describe(name: str) -> str:
    """The Markdown entry of one name of the plugin API."""
    obj = _documented(getattr(plugin_api, name))
    if isinstance(obj, types.ModuleType):
        return _namespace(name, obj)
    if name == "hookimpl":
        return ("#### hookimpl\n\nThe marker of hook implementations: decorate a module-level function named "
                "after a hook (see the [hook reference](#hook-reference)). Never import pluggy's own marker.")
    if isinstance(obj, type) and issubclass(obj, enum.Enum):
        return _enum(name, obj)
    if isinstance(obj, type) and getattr(obj, "_is_protocol", False):
        return _protocol(name, obj)
    if isinstance(obj, type) and attrs.has(obj):
        return _record(name, obj)
    if isinstance(obj, type) and issubclass(obj, BaseException):
        return _error(name, obj)
    if isinstance(obj, type):
        return _class(name, obj)
    if callable(obj):
        return f"#### {name}{signature(obj)}\n\n{_body(obj)}"
    return _constant(name, obj)


def reference() -> str:
    """The generated plugin API reference (what goes between the api markers)."""
    parts = ["<!-- Generated by `python -m gaia_core.docgen` from gaia_core/plugin_api.py; do not edit. -->"]
    for title, names in groups():
        parts.append(f"### {title}")
        parts += [describe(name) for name in names]
    return "\n\n".join(parts)
