"""The plugin manager: lazy, idempotent loading of built-in and third-party plugins.

Third-party packages declare::

    [project.entry-points.compressai_rdc]
    myplugin = "my_pkg.plugin"

Environment variables (comma-separated entry-point names; they apply to
third-party plugins, built-ins always load):

``COMPRESSAI_RDC_PLUGINS``
    allow-list: when set, only these entry points are loaded (empty = none).
``COMPRESSAI_RDC_BLOCK_PLUGINS``
    block-list: these entry points are never loaded.
"""

from __future__ import annotations

import importlib
import os
import threading
from dataclasses import dataclass, field
from functools import partial
from importlib.metadata import entry_points
from typing import Dict, List, Optional

import pluggy

from compressai_rdc import hookspecs
from compressai_rdc.errors import PluginLoadError
from compressai_rdc.registry import REGISTRIES

ENTRY_POINT_GROUP = hookspecs.PROJECT_NAME
ALLOW_ENV = "COMPRESSAI_RDC_PLUGINS"
BLOCK_ENV = "COMPRESSAI_RDC_BLOCK_PLUGINS"

#: Built-in plugin modules, registered through the same hooks as third-party ones.
BUILTIN_PLUGINS = (
    "compressai_rdc._builtin.core",
    "compressai_rdc._builtin.rdc",
    "compressai_rdc._builtin.qmap",
    "compressai_rdc._builtin.losses",
    "compressai_rdc._builtin.evaluation",
)

_lock = threading.RLock()
_pm: Optional[pluggy.PluginManager] = None
_info: Dict[str, "PluginInfo"] = {}


@dataclass
class PluginInfo:
    """Who a plugin is and what it registered (``compressai-rdc plugins``)."""

    name: str
    module: str
    builtin: bool
    distribution: Optional[str] = None
    version: Optional[str] = None
    registered: Dict[str, List[str]] = field(default_factory=dict)


def _env_names(var: str) -> Optional[set]:
    value = os.environ.get(var)
    if value is None:
        return None
    return {v.strip() for v in value.split(",") if v.strip()}


def get_plugin_manager() -> pluggy.PluginManager:
    """The loaded plugin manager (loads plugins on first call)."""
    load_plugins()
    assert _pm is not None
    return _pm


def load_plugins() -> pluggy.PluginManager:
    """Load built-in and entry-point plugins and fill the registries, once."""
    global _pm
    if _pm is not None:
        return _pm
    with _lock:
        if _pm is not None:
            return _pm
        pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        pm.add_hookspecs(hookspecs)
        for modname in BUILTIN_PLUGINS:
            pm.register(importlib.import_module(modname), name=modname)

        allow, block = _env_names(ALLOW_ENV), _env_names(BLOCK_ENV) or set()
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in block or (allow is not None and ep.name not in allow):
                pm.set_blocked(ep.name)
        try:
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        except Exception as exc:  # re-raised with the plugin named and the way out
            raise PluginLoadError(
                f"a compressai_rdc plugin failed to load: {exc!r}. Block it with "
                f"{BLOCK_ENV}=<entry point name> or uninstall it."
            ) from exc

        dist_of = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
        info: Dict[str, PluginInfo] = {}
        for name, plugin in pm.list_name_plugin():
            if plugin is None:  # blocked
                continue
            dist = dist_of.get(id(plugin))
            info[name] = PluginInfo(
                name=name,
                module=getattr(plugin, "__name__", repr(plugin)),
                builtin=name in BUILTIN_PLUGINS,
                distribution=dist.project_name if dist else ("compressai-rdc" if name in BUILTIN_PLUGINS else None),
                version=dist.version if dist else (_own_version() if name in BUILTIN_PLUGINS else None),
            )

        # Call each hook implementation on its own, so every entry records its plugin.
        for hook_name, registry in REGISTRIES.items():
            for impl in getattr(pm.hook, hook_name).get_hookimpls():
                before = set(registry._entries)
                impl.function(register=partial(registry.register, plugin=impl.plugin_name))
                added = sorted(set(registry._entries) - before)
                if added:
                    info[impl.plugin_name].registered.setdefault(registry.kind, []).extend(added)

        _info.clear()
        _info.update(info)
        _pm = pm

        from compressai_rdc.registry._bridge import bridge_models_to_compressai

        bridge_models_to_compressai()
        return pm


def plugin_info() -> List[PluginInfo]:
    """Every loaded plugin with its distribution, version and registrations."""
    load_plugins()
    return sorted(_info.values(), key=lambda p: (not p.builtin, p.name))


def blocked_plugins() -> List[str]:
    """Entry-point names present but not loaded because of the environment."""
    pm = load_plugins()
    return sorted(name for name, plugin in pm.list_name_plugin() if plugin is None)


def reset_plugins() -> None:
    """Forget every loaded plugin and registration (tests, or after changing the env vars)."""
    global _pm
    with _lock:
        from compressai_rdc.registry._bridge import unbridge_models

        unbridge_models()
        for registry in REGISTRIES.values():
            registry.clear()
        _info.clear()
        _pm = None


def _own_version() -> str:
    from compressai_rdc import __version__

    return __version__
