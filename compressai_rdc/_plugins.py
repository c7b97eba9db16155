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

A third-party plugin that fails to import, or whose hook raises, is reported
(:class:`PluginLoadWarning`, and ``compressai-rdc plugins``) and skipped with
everything it registered; the rest keeps working. Registries validate what a
plugin registers, so a plugin registering an invalid object is skipped the same way.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import warnings
from dataclasses import dataclass, field
from functools import partial
from importlib.metadata import EntryPoint, distributions
from typing import TYPE_CHECKING, Dict, List, Optional, Set, Tuple

import pluggy

from compressai_rdc import hookspecs
from compressai_rdc.errors import PluginLoadError
from compressai_rdc.registry import REGISTRIES, set_loader

if TYPE_CHECKING:
    from compressai_rdc.registry import Registry

_HOOK_OF = {id(registry): hook for hook, registry in REGISTRIES.items()}

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
_info: Dict[str, "PluginInfo"] = {}
_filled: Set[str] = set()  # hook names whose registry holds every plugin's entries
_filling: Set[str] = set()  # hooks running now (re-entrant lookups see the partial table)
_broken: Dict[str, str] = {}  # plugin name -> why it was skipped


class PluginLoadWarning(UserWarning):
    """A third-party plugin failed to import or register and was skipped."""


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
    """Import the built-in and entry-point plugins, once.

    Hooks run lazily, one registry at a time, on its first lookup (so
    ``compressai-rdc --help`` only runs ``register_commands`` and imports no
    model code). A third-party plugin that fails to import is reported with a
    :class:`PluginLoadWarning` naming the way out and skipped; everything else
    keeps working.
    """
    global _pm
    if _pm is not None:
        return _pm
    with _lock:
        if _pm is not None:
            return _pm
        pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        pm.add_hookspecs(hookspecs)
        info: Dict[str, PluginInfo] = {}
        version = _own_version()
        for modname in BUILTIN_PLUGINS:
            pm.register(importlib.import_module(modname), name=modname)
            info[modname] = PluginInfo(modname, modname, True, "compressai-rdc", version)

        allow, block = _env_names(ALLOW_ENV), _env_names(BLOCK_ENV) or set()
        chosen, left_out = select_entry_points(_declared_entry_points(), allow, block)
        for name in left_out:
            pm.set_blocked(name)
        for dist, dist_version, ep in chosen:
            if pm.has_plugin(ep.name) or ep.name in _broken:
                continue
            try:
                plugin = ep.load()
                pm.register(plugin, name=ep.name)
            except Exception as exc:  # third-party code may raise anything: report it and go on without it
                _report_broken(ep.name, f"failed to load ({ep.value}, from {dist} {dist_version}): {exc!r}")
                continue
            info[ep.name] = PluginInfo(
                name=ep.name,
                module=getattr(plugin, "__name__", repr(plugin)),
                builtin=False,
                distribution=dist,
                version=dist_version,
            )
        _info.clear()
        _info.update(info)
        _filled.clear()
        _pm = pm
        return pm


def _report_broken(name: str, why: str) -> None:
    _broken[name] = why
    warnings.warn(
        f"compressai-rdc plugin {name!r} {why}; it is skipped. Fix or uninstall it, or silence this "
        f"with {BLOCK_ENV}={name}",
        PluginLoadWarning,
        stacklevel=3,
    )


def fill_registry(registry: "Registry") -> None:
    """Run every plugin's hook for ``registry`` (once); used by registry lookups."""
    pm = load_plugins()
    hook_name = _HOOK_OF.get(id(registry))
    if hook_name is None or hook_name in _filled or hook_name in _filling:
        return
    with _lock:
        if hook_name in _filled or hook_name in _filling:
            return
        _filling.add(hook_name)
        try:
            for name in list(_info):
                _run_hook(pm, name, hook_name)
        finally:
            _filling.discard(hook_name)
        _filled.add(hook_name)
        if hook_name == "register_models":
            from compressai_rdc import _interop
            from compressai_rdc.registry._bridge import bridge_models_to_compressai

            _interop.uninstall()  # done here: nothing left for the import hook to do
            bridge_models_to_compressai()


def _fill_all() -> None:
    for registry in REGISTRIES.values():
        fill_registry(registry)


def _run_hook(pm: pluggy.PluginManager, plugin_name: str, hook_name: str, *, strict: bool = False) -> None:
    """Call one plugin's implementation of one hook, recording what it registered.

    A third-party entry-point plugin whose hook raises is unregistered with
    everything it registered so far, reported and skipped; a built-in one (or
    any, with ``strict``) raises.
    """
    plugin = pm.get_plugin(plugin_name)
    info = _info[plugin_name]
    registry = REGISTRIES[hook_name]
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        if impl.plugin is not plugin:
            continue
        before = set(registry._entries)
        try:
            impl.function(register=partial(registry.register, plugin=plugin_name))
        except Exception as exc:  # third-party code may raise anything: report it and go on without it
            if info.builtin or strict:
                raise
            _forget(pm, plugin_name, info)
            _report_broken(plugin_name, f"failed in {hook_name}: {exc!r}")
            return
        added = sorted(set(registry._entries) - before)
        if added:
            info.registered.setdefault(registry.kind, []).extend(added)


def register_plugin(plugin: object, name: Optional[str] = None) -> PluginInfo:
    """Register a plugin object or module at run time (notebooks, tests, scripts).

    Its hooks run immediately and its models are bridged into CompressAI; errors
    raise (unlike entry-point plugins, which are skipped). Undo with
    :func:`unregister_plugin`.
    """
    pm = load_plugins()
    _fill_all()
    with _lock:
        name = pm.register(plugin, name=name)
        if name is None:
            raise PluginLoadError(f"plugin {plugin!r} is blocked or already registered")
        info = PluginInfo(name=name, module=getattr(plugin, "__name__", type(plugin).__name__), builtin=False)
        _info[name] = info
        try:
            for hook_name in REGISTRIES:
                _run_hook(pm, name, hook_name, strict=True)
            from compressai_rdc.registry._bridge import bridge_models_to_compressai

            bridge_models_to_compressai()
        except Exception:  # undo a half-registered plugin, then let the caller see the error
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
    for registry in REGISTRIES.values():
        for entry_name in [n for n, e in registry._entries.items() if e.plugin == name]:
            registry.unregister(entry_name)
            if registry is REGISTRIES["register_models"] and "compressai_rdc.registry._bridge" in sys.modules:
                from compressai_rdc.registry._bridge import unbridge_models

                unbridge_models(entry_name)
    _info.pop(name, None)
    if pm.get_plugin(name) is not None:
        pm.unregister(name=name)


def plugin_info() -> List[PluginInfo]:
    """Every loaded plugin with its distribution, version and registrations."""
    _fill_all()
    return sorted(_info.values(), key=lambda p: (not p.builtin, p.name))


def runtime_registrations() -> List[str]:
    """Entries registered in this process at run time (:func:`register_plugin`, a direct
    ``Registry.register``), as ``"kind 'name' (plugin)"``: a fresh process, which loads
    only the built-in and entry-point plugins, does not have them (``eval --jobs``)."""
    _fill_all()
    out = []
    for registry in REGISTRIES.values():
        for entry in registry.entries():
            info = _info.get(entry.plugin)
            if info is None or info.distribution is None:
                out.append(f"{registry.kind} {entry.name!r} ({entry.plugin})")
    return out


def blocked_plugins() -> List[str]:
    """Entry-point names present but not loaded because of the environment."""
    pm = load_plugins()
    return sorted(name for name, plugin in pm.list_name_plugin() if plugin is None)


def broken_plugins() -> Dict[str, str]:
    """Third-party plugins skipped because they failed, with the reason."""
    _fill_all()
    return dict(_broken)


def reset_plugins() -> None:
    """Forget every loaded plugin and registration (tests, or after changing the env vars)."""
    global _pm
    with _lock:
        if "compressai_rdc.registry._bridge" in sys.modules:
            from compressai_rdc.registry._bridge import unbridge_models

            unbridge_models()
        for registry in REGISTRIES.values():
            registry.clear()
        _info.clear()
        _filled.clear()
        _broken.clear()
        _pm = None


set_loader(fill_registry)


def _own_version() -> str:
    from compressai_rdc import __version__

    return __version__
