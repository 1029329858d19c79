"""Output helpers shared by every command: JSON, rich tables, one-line errors."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from typing import Any

from rich.console import Console, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


def _default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if hasattr(value, "value"):  # enums
        return value.value
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def dumps(data: Any) -> str:
    """JSON text for command output (bytes as hex, sets sorted)."""
    return json.dumps(data, default=_default, indent=2, sort_keys=False)


def print_json(data: Any, *, compact: bool = False) -> None:
    """Write ``data`` as JSON to stdout (one line when ``compact``, for streams)."""
    text = json.dumps(data, default=_default, separators=(",", ":")) if compact else dumps(data)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


#: Characters of a node or task id shown in tables; ``--to`` and job commands take such a prefix.
ID_PREFIX = 12
_SI = ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def short_id(value: str) -> str:
    """The first :data:`ID_PREFIX` characters of an id, as tables show it."""
    return value[:ID_PREFIX]


def human_number(value: float | None) -> str:
    """``value`` in at most 3 significant digits with an SI suffix (``1.23G``, ``45.6k``, ``0.5``); "" for None."""
    if value is None:
        return ""
    for scale, suffix in _SI:
        if abs(value) >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]], *,
                flex: Collection[str] = ()) -> None:
    """Print :func:`make_table`'s table."""
    console.print(make_table(title, columns, rows, flex=flex))


def make_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]], *,
               flex: Collection[str] = ()) -> Table:
    """Rows as a compact rich table that fits the terminal (80 columns when not one).

    Cells of the ``flex`` columns (names, free text) are cut with an ellipsis when the table would not fit;
    the others (ids, numbers) are never cut.
    """
    cells = [["" if cell is None else str(cell) for cell in row] for row in rows]
    widths = [max([len(column), *(len(row[i]) for row in cells)]) for i, column in enumerate(columns)]
    flexible = [i for i, column in enumerate(columns) if column in flex]
    room = console.width - 2 * (len(columns) - 1) - sum(w for i, w in enumerate(widths) if i not in flexible)
    for left, i in enumerate(sorted(flexible, key=lambda i: widths[i])):  # narrowest first: what it leaves
        widths[i] = min(widths[i], max(len(columns[i]), room // (len(flexible) - left)))  # goes to the rest
        room -= widths[i]
    table = Table(title=title, title_justify="left", box=None, pad_edge=False)
    for column, width in zip(columns, widths, strict=True):
        table.add_column(column, no_wrap=True, overflow="ellipsis", width=width)
    for row in cells:
        table.add_row(*(escape(cell) for cell in row))
    return table


def every(interval: float, count: int = 0) -> Iterator[int]:
    """1, 2, 3, ... with ``interval`` seconds between them, ``count`` of them (0: without end)."""
    shown = 0
    while True:
        shown += 1
        yield shown
        if count and shown >= count:
            return
        time.sleep(interval)


def watch(render: Callable[[], RenderableType], *, interval: float, count: int = 0) -> None:
    """Show ``render()`` and redraw it every ``interval`` seconds, ``count`` times (0: until Ctrl-C); when
    the output is not a terminal, each view is printed after the last."""
    if not console.is_terminal:
        with contextlib.suppress(KeyboardInterrupt):
            for _ in every(interval, count):
                console.print(render(), crop=False)
        return
    with Live(console=console, auto_refresh=False) as live:
        with contextlib.suppress(KeyboardInterrupt):
            for _ in every(interval, count):
                live.update(render(), refresh=True)


def stream_json(fetch: Callable[[], Any], *, interval: float, count: int = 0) -> None:
    """Print ``fetch()`` as one JSON line every ``interval`` seconds, ``count`` times (0: until Ctrl-C)."""
    with contextlib.suppress(KeyboardInterrupt):
        for _ in every(interval, count):
            print_json(fetch(), compact=True)


def error(message: str) -> None:
    """Print a one-line error to stderr."""
    err_console.print(f"[bold red]Error:[/] {escape(message)}", highlight=False, soft_wrap=True)
