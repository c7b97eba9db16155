"""The plugin manager: lazy, idempotent loading of built-in and third-party plugins.

Third-party packages declare::

    [project.entry-points.compressai_rdc]
    myplugin = "my_pkg.plugin"

Environment variables (comma-separated entries; they apply to third-party
plugins, built-ins always load). An entry is ``distribution:name`` (the
distribution that declares entry point ``name``, e.g.
``compressai-rdc-example:example``) or a bare entry-point ``name``:

``COMPRESSAI_RDC_PLUGINS``
    allow-list: when set, only these entry points are loaded (empty = none).
``COMPRESSAI_RDC_BLOCK_PLUGINS``
    block-list: these entry points are never loaded.

Entry-point names are not unique: any installed package may declare
``example``. Two distributions declaring the same name among the plugins to
load is refused with :class:`~compressai_rdc.errors.PluginLoadError` naming
both (nothing is imported), so a bare name can never load an impostor;
qualify it with the distribution, or block the other one.
"""

from __future__ import annotations

import importlib
import os
import threading
from dataclasses import dataclass, field
from functools import partial
from importlib.metadata import EntryPoint, distributions
from typing import Dict, List, Optional, Tuple

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


def _norm(dist: str) -> str:
    return dist.lower().replace("_", "-").replace(".", "-")


def _matches(entry: str, dist: str, name: str) -> bool:
    if ":" in entry:
        want_dist, want_name = entry.split(":", 1)
        return _norm(want_dist.strip()) == _norm(dist) and want_name.strip() == name
    return entry == name


def _declared_entry_points() -> List[Tuple[str, str, EntryPoint]]:
    """``(distribution, version, entry point)`` of every installed plugin, each once
    (a distribution found twice on ``sys.path`` counts once)."""
    seen, out = set(), []
    for dist in distributions():
        dname = dist.metadata["Name"] or "?"
        for ep in dist.entry_points:
            if ep.group == ENTRY_POINT_GROUP and (_norm(dname), ep.name) not in seen:
                seen.add((_norm(dname), ep.name))
                out.append((dname, dist.version, ep))
    return out


def select_entry_points(
    declared: List[Tuple[str, str, EntryPoint]], allow: Optional[set], block: set
) -> Tuple[List[Tuple[str, str, EntryPoint]], List[str]]:
    """Entry points to load under the allow/block lists, and the names left out.

    Raises:
        PluginLoadError: two distributions declare one selected name.
    """
    chosen, by_name = [], {}
    for dist, version, ep in declared:
        if any(_matches(b, dist, ep.name) for b in block):
            continue
        if allow is not None and not any(_matches(a, dist, ep.name) for a in allow):
            continue
        chosen.append((dist, version, ep))
        by_name.setdefault(ep.name, []).append(dist)
    for name, dists in sorted(by_name.items()):
        if len(dists) > 1:
            raise PluginLoadError(
                f"entry point {name!r} is declared by several distributions: {', '.join(sorted(dists))}; "
                f"none was loaded. Name the one you mean with {ALLOW_ENV}=<distribution>:{name} "
                f"(e.g. {ALLOW_ENV}={sorted(dists)[0]}:{name}) or block the others with "
                f"{BLOCK_ENV}=<distribution>:{name}"
            )
    left_out = sorted({ep.name for _, _, ep in declared} - set(by_name))
    return chosen, left_out


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
        chosen, left_out = select_entry_points(_declared_entry_points(), allow, block)
        for name in left_out:
            pm.set_blocked(name)
        dist_of: Dict[str, Tuple[str, str]] = {}
        for dist, version, ep in chosen:
            try:
                plugin = ep.load()
            except Exception as exc:  # re-raised with the plugin named and the way out
                raise PluginLoadError(
                    f"the compressai_rdc plugin {ep.name!r} ({ep.value}, from {dist} {version}) failed to load: "
                    f"{exc!r}. Block it with {BLOCK_ENV}={dist}:{ep.name} or uninstall it."
                ) from exc
            pm.register(plugin, name=ep.name)
            dist_of[ep.name] = (dist, version)

        info: Dict[str, PluginInfo] = {}
        for name, plugin in pm.list_name_plugin():
            if plugin is None:  # blocked
                continue
            builtin = name in BUILTIN_PLUGINS
            dist, version = dist_of.get(name, ("compressai-rdc", _own_version()) if builtin else (None, None))
            info[name] = PluginInfo(
                name=name,
                module=getattr(plugin, "__name__", repr(plugin)),
                builtin=builtin,
                distribution=dist,
                version=version,
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
