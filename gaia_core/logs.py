"""Structured logs: one JSON object per line in files, a readable line on a terminal, never a task payload."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO

#: A log may name jobs, peers and paths: only the node's user reads it.
LOG_MODE = 0o600
#: Bytes read from the end of a log to find its last lines.
TAIL_BYTES = 1 << 20
#: Seconds between looks at a followed log.
FOLLOW_POLL_S = 0.25


class JsonLines(logging.Formatter):
    """Format records as JSON lines with time, level, logger, message and ``extra`` fields."""

    _STANDARD = set(vars(logging.makeLogRecord({})))

    def entry(self, record: logging.LogRecord) -> dict[str, Any]:
        """The fields of ``record`` that a line holds."""
        entry = {"ts": round(record.created, 3), "level": record.levelname.lower(), "logger": record.name,
                 "msg": record.getMessage()}
        entry.update({k: v for k, v in vars(record).items() if k not in self._STANDARD and not k.startswith("_")})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return entry

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(self.entry(record), default=str)


class HumanLines(JsonLines):
    """Format records as one readable line each (:func:`human`), for a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        return human(self.entry(record))


def human(entry: dict[str, Any]) -> str:
    """``HH:MM:SS LEVEL logger: message key=value ...`` (local time), then a traceback if the entry has one."""
    ts = entry.get("ts")
    when = time.strftime("%H:%M:%S", time.localtime(ts)) if isinstance(ts, (int, float)) else "--:--:--"
    extra = " ".join(f"{k}={v}" for k, v in entry.items() if k not in ("ts", "level", "logger", "msg", "exc"))
    line = f"{when} {str(entry.get('level', '')).upper():<7} {entry.get('logger', '')}: {entry.get('msg', '')}"
    line += f"  {extra}" if extra else ""
    return line + (f"\n{entry['exc']}" if entry.get("exc") else "")


def parse(line: str) -> dict[str, Any] | None:
    """A log file's line as a JSON entry (an object); None for any other line (text, damaged or hostile JSON)."""
    try:
        entry = json.loads(line)
    except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
        return None
    return entry if isinstance(entry, dict) else None


def render(line: str) -> str:
    """A log file's line as :func:`human` writes it; a line that is not a JSON entry as it is."""
    entry = parse(line)
    return human(entry) if entry is not None and "msg" in entry else line


def configure(level: str = "info", stream: IO[str] | None = None) -> None:
    """Send the ``gaia`` loggers to ``stream`` (stderr) at ``level``: readable lines on a terminal, else JSON."""
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    handler.setFormatter(HumanLines() if stream.isatty() else JsonLines())
    root = logging.getLogger("gaia")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    logging.Formatter.converter = time.gmtime


def open_log(path: Path) -> BinaryIO:
    """Open ``path`` for appending, created (or tightened) to mode 0600 whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, LOG_MODE)
    os.fchmod(fd, LOG_MODE)
    return os.fdopen(fd, "ab")


def tail(path: Path, count: int, *, since: int = 0, window: int = TAIL_BYTES) -> list[str]:
    """The last ``count`` lines of the log at ``path`` written after byte ``since`` (and within its last
    ``window`` bytes), oldest first."""
    with path.open("rb") as log:
        end = log.seek(0, os.SEEK_END)
        start = max(since, end - window)
        log.seek(start)
        data = log.read(window)
    lines = data.decode("utf-8", "replace").splitlines()
    if start > since:
        lines = lines[1:]  # the first one is cut
    return lines[-count:] if count else []


def follow(path: Path, *, poll_s: float = FOLLOW_POLL_S) -> Iterator[str]:
    """Each line appended to ``path`` from now on, as it comes (from the start again if the file is truncated;
    waiting for it when it is not there yet, or was just removed)."""
    while True:
        try:
            log = path.open("rb")
            break
        except FileNotFoundError:
            time.sleep(poll_s)
    with log:
        log.seek(0, os.SEEK_END)
        pending = b""
        while True:
            chunk = log.read(1 << 16)
            if not chunk:
                with contextlib.suppress(OSError):  # removed: keep reading what is open, until Ctrl-C
                    if log.tell() > path.stat().st_size:
                        log.seek(0)
                time.sleep(poll_s)
                continue
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line.decode("utf-8", "replace")


def last_error(path: Path, *, since: int = 0) -> str | None:
    """The last error the log at ``path`` holds after byte ``since``: an ``Error:`` line or an error entry's
    message; None if none."""
    try:
        lines = tail(path, 200, since=since)
    except OSError:
        return None
    for line in reversed(lines):
        if line.startswith("Error: "):
            return line.removeprefix("Error: ").strip()
        entry = parse(line)
        if entry is not None and entry.get("level") in ("error", "critical"):
            return str(entry.get("msg", ""))
    return None
