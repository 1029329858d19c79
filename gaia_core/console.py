"""Output helpers shared by every command: JSON, rich tables, one-line errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
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


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Render rows as a rich table."""
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if cell is None else escape(str(cell)) for cell in row))
    console.print(table)


def error(message: str) -> None:
    """Print a one-line error to stderr."""
    err_console.print(f"[bold red]Error:[/] {escape(message)}", highlight=False, soft_wrap=True)
