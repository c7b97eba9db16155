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
from compressai_rdc.errors import PluginLoadError, RegistrationError
from compressai_rdc.registry import REGISTRIES, set_loader

ENTRY_POINT_GROUP = hookspecs.PROJECT_NAME
ALLOW_ENV = "COMPRESSAI_RDC_PLUGINS"
BLOCK_ENV = "COMPRESSAI_RDC_BLOCK_PLUGINS"

#: Built-in plugin modules, registered through the same hooks as third-party ones.
BUILTIN_PLUGINS = (
    "compressai_rdc._builtin.core",
    "compressai_rdc._builtin.rdc",
    "compressai_rdc._builtin.qmap",
    "compressai_rdc._builtin.losses",
    "compressai_rdc._builtin.training",
    "compressai_rdc._builtin.evaluation",
)

_lock = threading.RLock()
_pm: Optional[pluggy.PluginManager] = None
_loading: Optional[pluggy.PluginManager] = None  # set while hooks run (re-entrant lookups see partial tables)
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


def load_plugins() -> pluggy.PluginManager:
    """Load built-in and entry-point plugins and fill the registries, once."""
    global _pm, _loading
    if _pm is not None:
        return _pm
    with _lock:
        if _pm is not None:
            return _pm
        if _loading is not None:  # a hook looked something up while plugins load
            return _loading
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

        _loading = pm
        try:
            for name in info:
                try:
                    _run_hooks(pm, name, info[name])
                except RegistrationError as exc:
                    if info[name].builtin:
                        raise
                    raise RegistrationError(f"{exc}. Update the plugin, or block it with {BLOCK_ENV}={name}") from exc
        finally:
            _loading = None
        _info.clear()
        _info.update(info)
        _pm = pm

        from compressai_rdc.registry._bridge import bridge_models_to_compressai

        bridge_models_to_compressai()
        return pm


def _run_hooks(pm: pluggy.PluginManager, plugin_name: str, info: "PluginInfo") -> None:
    """Call one plugin's hook implementations, recording what each registered."""
    plugin = pm.get_plugin(plugin_name)
    for hook_name, registry in REGISTRIES.items():
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            if impl.plugin is not plugin:
                continue
            before = set(registry._entries)
            impl.function(register=partial(registry.register, plugin=plugin_name))
            added = sorted(set(registry._entries) - before)
            if added:
                info.registered.setdefault(registry.kind, []).extend(added)


def register_plugin(plugin: object, name: Optional[str] = None) -> PluginInfo:
    """Register a plugin object or module at run time (notebooks, tests).

    Its hooks run immediately and its models are bridged into CompressAI.
    Undo with :func:`unregister_plugin`.
    """
    pm = load_plugins()
    with _lock:
        name = pm.register(plugin, name=name)
        if name is None:
            raise PluginLoadError(f"plugin {plugin!r} is blocked or already registered")
        info = PluginInfo(name=name, module=getattr(plugin, "__name__", type(plugin).__name__), builtin=False)
        try:
            _run_hooks(pm, name, info)
        except Exception:
            _forget(pm, name, info)
            raise
        _info[name] = info
        from compressai_rdc.registry._bridge import bridge_models_to_compressai

        try:
            bridge_models_to_compressai()
        except Exception:
            _forget(pm, name, info)
            raise
        return info


def unregister_plugin(name: str) -> None:
    """Remove a plugin registered with :func:`register_plugin` and everything it registered."""
    pm = load_plugins()
    with _lock:
        info = _info.pop(name, None)
        if info is None:
            raise PluginLoadError(f"no plugin named {name!r} is registered; registered: {', '.join(sorted(_info))}")
        _forget(pm, name, info)


def _forget(pm: pluggy.PluginManager, name: str, info: "PluginInfo") -> None:
    from compressai_rdc.registry._bridge import unbridge_models

    for registry in REGISTRIES.values():
        for entry_name in [n for n, e in registry._entries.items() if e.plugin == name]:
            registry.unregister(entry_name)
            if registry is REGISTRIES["register_models"]:
                unbridge_models(entry_name)
    _info.pop(name, None)
    if pm.get_plugin(name) is not None:
        pm.unregister(name=name)


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


set_loader(load_plugins)


def _own_version() -> str:
    from compressai_rdc import __version__

    return __version__
