"""Free disk space where the node caches modules and reports."""

from __future__ import annotations

from pathlib import Path

import psutil

from gaia_bench_psutil.facts import read
from gaia_core.plugin_api import Measurement


def existing_parent(path: Path) -> Path:
    """``path`` or its nearest existing ancestor (the cache dir may not exist yet)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return path


def facts(cache_dir: Path) -> list[Measurement]:
    """Free and total bytes of the file system holding ``cache_dir``."""
    where = existing_parent(cache_dir)
    return [
        read("disk.cache_free_bytes", "B", "reported", lambda: psutil.disk_usage(str(where)).free),
        read("disk.cache_total_bytes", "B", "reported", lambda: psutil.disk_usage(str(where)).total),
    ]
