"""Option types of the commands: numbers that are finite and inside sane bounds, names, addresses, sized files.

click's ``FloatRange`` lets ``nan`` through (it compares false with every bound) and turns ``1e400``
into ``inf``; these types refuse both with one line that says what was wrong and what to give instead.
"""

from __future__ import annotations

import math
import os
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import click

from gaia_core.config import AdmissionSection, check_address
from gaia_core.errors import UsageError
from gaia_core.model import Limits
from gaia_core.wasm_exports import default_entry

#: Seconds in a day; the bounds below are whole days.
DAY_S = 86_400.0
#: The latest ``--deadline`` accepted, in seconds from now.
MAX_DEADLINE_S = 365 * DAY_S
#: The longest ``--timeout`` accepted for one task, in seconds.
MAX_TIMEOUT_S = 7 * DAY_S
#: The most fuel one task may be given (what a signed 64-bit counter holds).
MAX_FUEL = (1 << 63) - 1
#: The largest ``--memory`` accepted for one task, in MiB (1 TiB).
MAX_MEMORY_MIB = 1 << 20


def _seconds(value: float) -> str:
    """``value`` seconds for a message: ``0.001 s``, ``7 days``."""
    days = value / DAY_S
    return f"{days:g} day{'' if days == 1 else 's'}" if value >= DAY_S else f"{value:g} s"


class Seconds(click.FloatRange):
    """A finite number of seconds in ``[min, max]``; ``nan``, ``inf`` and values out of range are refused."""

    name = "seconds"

    def __init__(self, min: float, max: float) -> None:  # noqa: A002 - click's own parameter names
        super().__init__(min=min, max=max)
        self.bounds = (min, max)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """Parse ``value``; fail with a one-line message unless it is finite and within the bounds."""
        number = click.FLOAT.convert(value, param, ctx)
        low, high = self.bounds
        bounds = f"give a number of seconds from {_seconds(low)} to {_seconds(high)}"
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number; {bounds}", param, ctx)
        if not low <= number <= high:
            self.fail(f"{number:g} is out of range; {bounds}", param, ctx)
        return number


class Integer(click.IntRange):
    """A whole number in ``[min, max]``, refused with a one-line message that gives the bounds."""

    name = "integer"

    def __init__(self, min: int, max: int) -> None:  # noqa: A002
        super().__init__(min=min, max=max)
        self.bounds = (min, max)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """Parse ``value``; fail unless it is a whole number within the bounds."""
        low, high = self.bounds
        bounds = f"give a whole number from {low} to {high}"
        try:
            number = int(value)
        except (TypeError, ValueError, OverflowError):
            self.fail(f"{value!r} is not a whole number; {bounds}", param, ctx)
        if not low <= number <= high:
            self.fail(f"{number} is out of range; {bounds}", param, ctx)
        return number


_Command = TypeVar("_Command", bound=Callable[..., Any])


def limit_options(per: str = " per task") -> Callable[[_Command], _Command]:
    """The ``--fuel``, ``--timeout`` and ``--memory`` options of a command that runs tasks, with ``Limits``'
    defaults; ``per`` ends each help text's subject (``" per task"``, or ``""`` for a single run)."""
    options = [
        click.option("--fuel", type=Integer(1, MAX_FUEL), default=Limits().fuel, show_default=True,
                     help=f"Fuel budget{per}."),
        click.option("--timeout", type=Seconds(0.001, MAX_TIMEOUT_S), default=Limits().timeout_s, show_default=True,
                     help=f"Wall-clock seconds{per} (at most 7 days)."),
        click.option("--memory", type=Integer(1, MAX_MEMORY_MIB), default=Limits().memory_bytes >> 20,
                     show_default=True, help=f"Memory cap{per}, MiB."),
    ]

    def decorate(command: _Command) -> _Command:
        for option in reversed(options):  # as stacked decorators apply: the first listed shows first in --help
            command = option(command)
        return command

    return decorate


#: The longest ``--entry`` a task may name (``Task.entry`` holds at most this many characters).
MAX_ENTRY_CHARS = 128


class EntryName(click.ParamType):
    """The name of a module export to call: 1 to 128 characters."""

    name = "name"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """Fail with a one-line message when ``value`` is empty or too long."""
        text = str(value)
        if not 0 < len(text) <= MAX_ENTRY_CHARS:
            what = "is empty" if not text else f"is {len(text)} characters long"
            self.fail(f"the entry name {what}; give the name of an exported function of 1 to {MAX_ENTRY_CHARS} "
                      "characters (e.g. run), or leave --entry out to call the module's default", param, ctx)
        return text


class Address(click.ParamType):
    """An address peers can dial, ``SCHEME://HOST:PORT`` (checked as ``[node] listen`` is)."""

    name = "address"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """Fail with a one-line message unless ``value`` is such an address."""
        try:
            return check_address(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _read_at_most(stream: BinaryIO, limit: int) -> bytes:
    """Up to ``limit`` + 1 bytes of ``stream``, in reads of 1 MiB (no buffer of ``limit`` bytes up front)."""
    chunks: list[bytes] = []
    total = 0
    while total <= limit:
        chunk = stream.read(min(1 << 20, limit + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def _too_large(what: str, name: str, size: str, limit: int, setting: str, remedy: str) -> UsageError:
    return UsageError(f"{what} {name} is {size} bytes; this node takes at most {limit:,} ({setting})",
                      hint=f"{remedy}, or raise {setting} in config.toml")


def _file_size(source: str, limit: int, *, what: str, setting: str, remedy: str) -> int:
    """The size of file ``source``: UsageError when it is not a file or is over ``limit`` bytes (nothing read)."""
    path = Path(source)
    if not path.is_file():
        problem = "is not a regular file" if path.exists() else "does not exist"
        raise UsageError(f"{what} file {source!r} {problem}", hint="give a file path, or '-' for stdin")
    length = path.stat().st_size
    if length > limit:
        raise _too_large(what, repr(source), f"{length:,}", limit, setting, remedy)
    return length


def _read_limited(source: str, limit: int, *, what: str, setting: str, remedy: str) -> bytes:
    """The bytes of file ``source`` ('-': stdin), refused by size before reading when over ``limit`` bytes.

    UsageError naming the file, its size and ``setting`` (the config key holding ``limit``); no more than
    ``limit`` + 1 bytes are ever read (stdin, or a file that grows while it is read).
    """
    if source == "-":
        data = _read_at_most(sys.stdin.buffer, limit)
    else:
        try:  # non-blocking: a FIFO named here must not hang the command before it is refused
            fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK)
        except FileNotFoundError:
            raise UsageError(f"{what} file {source!r} does not exist",
                             hint="give a file path, or '-' for stdin") from None
        except OSError as exc:
            raise UsageError(f"cannot open {what} file {source!r}: {exc.strerror or exc}",
                             hint="give a readable file, or '-' for stdin") from None
        info = os.fstat(fd)  # the file opened, sized before it is read (and before fdopen refuses a directory)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise UsageError(f"{what} file {source!r} is not a regular file",
                             hint="give a file path, or '-' for stdin")
        with os.fdopen(fd, "rb") as fh:
            length = info.st_size
            if length > limit:
                raise _too_large(what, repr(source), f"{length:,}", limit, setting, remedy)
            data = _read_at_most(fh, limit)
    if len(data) > limit:
        name = "on stdin" if source == "-" else repr(source)
        raise _too_large(what, name, f"over {limit:,}", limit, setting, remedy)
    return data


def read_module(module: str | Path, limits: AdmissionSection) -> bytes:
    """A module file's bytes, refused by size before reading when over ``[admission] max_module_bytes``."""
    return _read_limited(str(module), limits.max_module_bytes, what="module",
                         setting="[admission] max_module_bytes", remedy="shrink the module")


_INPUT = {"what": "input", "setting": "[admission] max_input_bytes", "remedy": "split the input across several tasks"}


def input_size(source: str, limits: AdmissionSection) -> int:
    """The size of input file ``source`` ('-': its limit), refused before reading when over ``max_input_bytes``."""
    if source == "-":
        return limits.max_input_bytes
    return _file_size(source, limits.max_input_bytes, **_INPUT)


def read_input(source: str, limits: AdmissionSection) -> bytes:
    """An input file's bytes ('-': stdin), refused by size before reading when over ``max_input_bytes``."""
    return _read_limited(source, limits.max_input_bytes, **_INPUT)


def entry_or_default(entry: str | None, module: bytes, name: str) -> str:
    """``entry``, else the WASM module's default (its one task export, or ``_start``); UsageError when none."""
    if entry is not None:
        return entry
    try:
        return default_entry(module)
    except ValueError as exc:
        raise UsageError(f"{name} has no default entry: {exc}",
                         hint="give the export to call with --entry NAME") from None
