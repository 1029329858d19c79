"""State: what a ``gaia`` command resolves once (config, plugins, identity)."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

from gaia_core.state import State


def test_config_and_plugins_are_loaded_once_and_do_not_keep_the_state_alive(tmp_path: Path) -> None:
    state = State(str(tmp_path / "home"), "", debug=False)
    assert state.config() is state.config()
    assert state.plugins() is state.plugins()
    ref = weakref.ref(state)
    del state
    gc.collect()
    assert ref() is None, "a State stays alive after its command: something caches it"
