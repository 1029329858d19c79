"""What a ``gaia`` command works with: home, config, plugins and identity, built lazily."""

from __future__ import annotations

import functools
import logging
from typing import Literal, overload

from gaia_core import config as config_mod, plugins as plugins_mod
from gaia_core.config import Config, Home
from gaia_core.identity import Identity
from gaia_core.roles import NodeContext


class State:
    """Resolved once per command from ``--home``, ``--plugins`` and the environment."""

    def __init__(self, home: str | None, plugin_list: str | None, debug: bool) -> None:
        self._home = home
        self.plugin_list = plugin_list
        self.debug = debug
        self._config: Config | None = None
        self._plugins: plugins_mod.Plugins | None = None

    @functools.cached_property
    def home(self) -> Home:
        return Home.resolve(self._home)

    def config(self) -> Config:
        """The effective configuration (ConfigError when config.toml is malformed), loaded once."""
        if self._config is None:
            self._config = config_mod.load(self.home)
        return self._config

    def plugins(self) -> plugins_mod.Plugins:
        """The loaded plugins, selected by --plugins, $GAIA_LOAD_PLUGINS or config, loaded once."""
        if self._plugins is None:
            selection_cfg = self.config().plugins if self.home.config_file.exists() else None
            selection = plugins_mod.resolve_selection(self.plugin_list, selection_cfg.load if selection_cfg else None)
            block = selection_cfg.block if selection_cfg else ()
            self._plugins = plugins_mod.load(selection, block=block)
        return self._plugins

    @overload
    def identity(self, *, required: Literal[True] = True) -> Identity: ...

    @overload
    def identity(self, *, required: bool) -> Identity | None: ...

    def identity(self, *, required: bool = True) -> Identity | None:
        """The node's identity; IdentityError when ``required`` and missing."""
        if not required and not Identity.exists(self.home.identity_dir):
            return None
        return Identity.load(self.home.identity_dir)

    def context(self, *, identity_required: bool = False) -> NodeContext:
        """A NodeContext for providers built by a command."""
        loaded = self.plugins()
        return NodeContext(
            config=self.config(), home=self.home, identity=self.identity(required=identity_required),
            hook=loaded.hook, log=logging.getLogger("gaia"), task_kinds=frozenset(loaded.runners_by_kind()),
        )
