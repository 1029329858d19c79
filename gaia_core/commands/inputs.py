"""The inputs of ``gaia task submit``: files, stdin, directories, globs and list files, sized before reading.

Each ``--input`` is one of: a file; ``-`` (stdin, once); a directory (its regular files, not recursive,
sorted by name); a glob pattern (quoted so the shell leaves it, e.g. ``'data/*.txt'``; sorted); or
``@LIST``, a text file naming one input path per line (relative paths from the list file's directory,
blank lines and ``#`` comments skipped). Every file is sized before any is read.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from rich.progress import track

from gaia_core.commands.params import input_size
from gaia_core.config import AdmissionSection
from gaia_core.console import err_console
from gaia_core.errors import UsageError

#: The largest list file read (a million short paths).
MAX_LIST_BYTES = 64 << 20
_GLOB_CHARACTERS = frozenset("*?[")


def expand(sources: Sequence[str]) -> list[str]:
    """The input files (or ``-``) that ``sources`` name, in order; UsageError when one names none."""
    found: list[str] = []
    for source in sources:
        if source == "-" or Path(source).is_file():
            found.append(source)
        elif source.startswith("@"):
            found.extend(_listed(Path(source[1:])))
        elif Path(source).is_dir():
            with os.scandir(source) as entries:  # the kind of each entry comes with it: no stat per file
                files = sorted(entry.path for entry in entries if entry.is_file())
            if not files:
                raise UsageError(f"input directory {source!r} holds no files", hint="give a directory with files")
            found.extend(files)
        elif _GLOB_CHARACTERS & set(source):
            files = sorted(p for p in glob.glob(source) if Path(p).is_file())
            if not files:
                raise UsageError(f"input pattern {source!r} matches no file",
                                 hint="check the pattern and the directory")
            found.extend(files)
        else:
            problem = "is not a regular file" if Path(source).exists() else "does not exist"
            raise UsageError(f"input file {source!r} {problem}",
                             hint="give a file, a directory, a quoted glob, @LIST, or '-' for stdin")
    if found.count("-") > 1:
        raise UsageError("stdin ('-') can be given as an input only once")
    return found


def _listed(list_file: Path) -> list[str]:
    """The paths a list file names (relative ones from its directory)."""
    if not list_file.is_file():
        raise UsageError(f"input list {str(list_file)!r} does not exist", hint="give @FILE, a file of paths")
    if list_file.stat().st_size > MAX_LIST_BYTES:
        raise UsageError(f"input list {str(list_file)!r} is over {MAX_LIST_BYTES:,} bytes",
                         hint="split it across several jobs")
    try:
        lines = list_file.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise UsageError(f"input list {str(list_file)!r} is not UTF-8 text", hint="one path per line") from None
    paths = []
    for number, line in enumerate(lines, 1):
        name = line.strip()
        if not name or name.startswith("#"):
            continue
        path = list_file.parent / name
        if not path.is_file():
            raise UsageError(f"input list {str(list_file)!r}, line {number}: {name!r} is not a file",
                             hint="fix the line, or remove it")
        paths.append(str(path))
    if not paths:
        raise UsageError(f"input list {str(list_file)!r} names no file", hint="one path per line")
    return paths


def check_sizes(names: Sequence[str], limits: AdmissionSection) -> int:
    """The total bytes of the input files ``names`` (stdin counted as its limit), from their sizes alone;
    UsageError naming the first one over ``[admission] max_input_bytes``."""
    return sum(input_size(name, limits) for name in names)


def progress(names: Sequence[str], *, show: bool) -> Iterator[str]:
    """``names`` one by one, with a progress bar on stderr (on a terminal) when ``show`` and more than one."""
    if not show or len(names) < 2:
        yield from names
        return
    yield from track(names, description=f"reading {len(names)} inputs", console=err_console, transient=True)
