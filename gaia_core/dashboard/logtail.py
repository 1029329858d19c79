"""The last lines of the node's JSON-lines log, for the dashboard's log panel."""

from __future__ import annotations

import logging
import threading
from collections import deque
from pathlib import Path
from typing import Protocol

from gaia_core.logs import JsonLines, tail

#: Log lines the dashboard shows.
TAIL_LINES = 50
#: Bytes read from the end of a log file to find them.
TAIL_BYTES = 64 << 10


class LogTail(Protocol):
    """Where the dashboard reads the node's latest log lines."""

    def lines(self) -> list[str]:
        """The latest lines, oldest first, at most :data:`TAIL_LINES`."""
        ...


class RingHandler(logging.Handler):
    """Keeps the latest records of the ``gaia`` loggers in memory, as JSON lines (a node in this process)."""

    def __init__(self, size: int = TAIL_LINES) -> None:
        super().__init__()
        self.setFormatter(JsonLines())
        self._lines: deque[str] = deque(maxlen=size)
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        """Keep ``record``, formatted."""
        try:
            line = self.format(record)
        except Exception:  # logging's rule: a handler never raises
            self.handleError(record)
            return
        with self._guard:
            self._lines.append(line)

    def lines(self) -> list[str]:
        """The latest lines, oldest first."""
        with self._guard:
            return list(self._lines)

    def attach(self) -> RingHandler:
        """Start receiving the ``gaia`` loggers' records (after ``logs.configure``, which replaces handlers)."""
        logging.getLogger("gaia").addHandler(self)
        return self

    def detach(self) -> None:
        """Stop receiving records."""
        logging.getLogger("gaia").removeHandler(self)


class FileTail:
    """The last lines of a log file (a background node's ``<home>/node.log``); none while it is absent."""

    def __init__(self, path: Path, size: int = TAIL_LINES) -> None:
        self.path = path
        self.size = size

    def lines(self) -> list[str]:
        """The last lines of the file, oldest first (read once per update: only its last :data:`TAIL_BYTES`)."""
        try:
            return tail(self.path, self.size, window=TAIL_BYTES)
        except OSError:
            return []
