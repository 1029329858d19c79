"""A background thread that takes a ResourceSample at a fixed rate and keeps a bounded history."""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable

from gaia_core.plugin_api import ResourceSample


class Sampler:
    """Calls ``read`` every ``interval_s`` seconds on a daemon thread; thread-safe readers."""

    def __init__(self, read: Callable[[], ResourceSample], interval_s: float = 1.0, keep: int = 3600) -> None:
        if interval_s <= 0:
            raise ValueError(f"sampling interval must be positive, got {interval_s}")
        self.read = read
        self.interval_s = interval_s
        self._samples: collections.deque[ResourceSample] = collections.deque(maxlen=keep)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Sampler:
        """Start sampling (idempotent); returns self."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="gaia-sampler", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and wait for it (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            sample = self.read()
            with self._lock:
                self._samples.append(sample)
            self._stop.wait(self.interval_s)

    @property
    def ident(self) -> int | None:
        """The sampling thread's ident (for ``time.pthread_getcpuclockid``), once started."""
        return self._thread.ident if self._thread is not None else None

    def latest(self) -> ResourceSample | None:
        """The newest sample, or None before the first."""
        with self._lock:
            return self._samples[-1] if self._samples else None

    def history(self, since: float = 0.0) -> list[ResourceSample]:
        """Samples taken at or after ``since`` (epoch seconds), oldest first."""
        with self._lock:
            return [s for s in self._samples if s.at >= since]

    def peak_rss(self, since: float, until: float) -> int:
        """The largest process RSS sampled between ``since`` and ``until`` (0 when none)."""
        peak = 0
        with self._lock:
            for sample in reversed(self._samples):  # newest first: stop at the window's start, not the history's
                if sample.at < since:
                    break
                if sample.at <= until:
                    peak = max(peak, sample.rss_bytes or 0)
        return peak
