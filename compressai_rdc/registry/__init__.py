"""Name tables of everything plugins register, and the specs they store.

One :class:`Registry` per kind (models, components, losses, quality-map
strategies, tasks, commands): plain tables that import nothing of the package.
Looking a name up first calls the loader that :mod:`compressai_rdc._plugins`
installs with :func:`set_loader` when the package is imported: it loads the
plugins and runs their hooks of that kind (lazily, once per kind), so
``MODELS.get("rdc-versatile")`` works in a fresh process and listing the CLI
commands imports no model code. Each entry records which plugin registered it,
for ``compressai-rdc plugins``.

Model entries are :class:`ModelSpec` records; the CompressAI bridge
(:mod:`compressai_rdc.registry._bridge`) writes every registered model into all
four of CompressAI's name tables from this one place.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Generic, Iterator, List, Mapping, Optional, Tuple, TypeVar

from compressai_rdc.errors import RegistrationError, UnknownNameError

T = TypeVar("T")

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")

#: called with the registry before every lookup (set by :mod:`compressai_rdc._plugins`:
#: fill that registry from the plugins' hooks, once)
_loader: Optional[Callable[["Registry"], Any]] = None


def set_loader(loader: Optional[Callable[["Registry"], Any]]) -> None:
    """Install the function every lookup calls first (the plugin loader)."""
    global _loader
    _loader = loader


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered item: its name, the object, and who registered it."""

    name: str
    obj: T
    plugin: str
    meta: Mapping[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """A name → object table filled by plugin hooks.

    Args:
        kind: human name of the kind ("model", "loss", ...), used in errors.
        build: optional ``(name, obj, meta) -> stored`` that validates and
            converts what a plugin passes to ``register``.
    """

    def __init__(self, kind: str, build: Optional[Callable[[str, Any, Dict[str, Any]], T]] = None):
        self.kind = kind
        self._build = build
        self._entries: Dict[str, Entry[T]] = {}

    # -- filling -----------------------------------------------------------------
    def register(self, name: str, obj: Any, *, plugin: str = "<direct>", **meta: Any) -> T:
        """Add ``obj`` under ``name``. Re-registering the same object is a no-op;
        registering a different object under a taken name raises
        :class:`RegistrationError` naming both plugins."""
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise RegistrationError(
                f"{self.kind} name {name!r} from plugin {plugin!r} is invalid: use lower-case "
                "letters, digits, '-', '_' and '.', starting with a letter or digit"
            )
        try:
            stored = self._build(name, obj, dict(meta)) if self._build else obj
        except RegistrationError as exc:
            raise RegistrationError(f"plugin {plugin!r} registered an invalid {self.kind}: {exc}") from exc
        old = self._entries.get(name)
        if old is not None:
            if old.plugin == plugin and _same(old.obj, stored):
                return old.obj
            raise RegistrationError(
                f"{self.kind} {name!r} is registered twice: by plugin {old.plugin!r} and by {plugin!r}"
            )
        self._entries[name] = Entry(name, stored, plugin, dict(meta))
        return stored

    def unregister(self, name: str) -> None:
        """Remove ``name`` (used by tests and by plugin blocking)."""
        self._entries.pop(name, None)

    def clear(self) -> None:
        self._entries.clear()

    # -- lookup ------------------------------------------------------------------
    def _loaded(self) -> Dict[str, Entry[T]]:
        if _loader is not None:
            _loader(self)  # runs the plugins' hooks of this kind, once
        return self._entries

    def get(self, name: str) -> T:
        entries = self._loaded()
        if name not in entries:
            raise UnknownNameError(self.kind, name, entries)
        return entries[name].obj

    def entry(self, name: str) -> Entry[T]:
        entries = self._loaded()
        if name not in entries:
            raise UnknownNameError(self.kind, name, entries)
        return entries[name]

    def names(self) -> List[str]:
        return sorted(self._loaded())

    def entries(self) -> List[Entry[T]]:
        return [self._loaded()[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        return name in self._loaded()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._loaded())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} entries)"


def _same(a: Any, b: Any) -> bool:
    if dataclasses.is_dataclass(a) and dataclasses.is_dataclass(b):
        return type(a) is type(b) and all(
            getattr(a, f.name) is getattr(b, f.name) or getattr(a, f.name) == getattr(b, f.name)
            for f in dataclasses.fields(a)
        )
    return a is b


# -----------------------------------------------------------------------------
# Model specs
# -----------------------------------------------------------------------------
@dataclass(frozen=True)
class WeightSpec:
    """Where the pretrained weights of one model (metric, quality) live, and how to decode with them.

    Like timm's ``pretrained_cfg``, the spec travels with the weights: whatever
    the weights need at decode time is recorded here, not in the callers.

    Attributes:
        file: file name (``*.safetensors``). Looked up inside ``package`` when it
            is set (a plugin shipping its own weights: ``package="my_pkg"``,
            ``file="weights/w.safetensors"``), else in compressai-rdc's
            ``zoo/weights`` folder; then in ``$COMPRESSAI_RDC_WEIGHTS``.
        sha256: hex digest the file must have.
        description: how the weights were trained (data, steps, recipe).
        decode_beta: the β these weights give their best images at, used as the
            model's default β (CLI ``decode``, ``demo``, ``eval``, CompressAI's
            ``eval_model`` through ``forward``) for models with a ``default_beta``.
            ``None`` keeps the model's own default. Weights whose residual branch
            is untrained say 1.0 (primary branch only).
        package: importable package whose folder holds ``file`` (``None`` = compressai-rdc's zoo).
    """

    file: str
    sha256: str
    description: str = ""
    decode_beta: Optional[float] = None
    package: Optional[str] = None

    def __post_init__(self):
        if not self.file.endswith(".safetensors"):
            raise RegistrationError(f"weights file {self.file!r} must be a .safetensors file")
        if not re.fullmatch(r"[0-9a-f]{64}", self.sha256):
            raise RegistrationError(
                f"sha256 of {self.file!r} must be 64 lower-case hex digits, got {self.sha256!r} "
                "(compute it with `sha256sum FILE` or compressai_rdc.zoo.sha256_file)"
            )
        b = self.decode_beta
        if b is not None and (isinstance(b, bool) or not isinstance(b, (int, float)) or not 0.0 <= b <= 1.0):
            raise RegistrationError(f"decode_beta of {self.file!r} must be None or a number in [0, 1], got {b!r}")


@dataclass(frozen=True)
class ModelSpec:
    """Everything the zoo needs to build a registered image codec.

    Attributes:
        name: registry key, paper-year style (``rdc-versatile``).
        cls: :class:`compressai.models.CompressionModel` subclass.
        kwargs: architecture keyword arguments for ``cls(**kwargs)``.
        qualities: valid values of CompressAI's ``quality`` argument.
        quality_kwargs: maps a quality to extra constructor kwargs (e.g. the
            default operating point of a variable-rate model); ``None`` = none.
        metrics: valid values of CompressAI's ``metric`` argument.
        weights: pretrained weights keyed ``"<metric>"`` (one file for every
            quality, variable-rate models) or ``"<metric>-<quality>"``.
        description: one line for listings.
        paper: citation of the method.
    """

    name: str
    cls: type
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    qualities: Tuple[int, ...] = (1,)
    quality_kwargs: Optional[Callable[[int], Mapping[str, Any]]] = None
    metrics: Tuple[str, ...] = ("mse",)
    weights: Mapping[str, WeightSpec] = field(default_factory=dict)
    description: str = ""
    paper: str = ""

    def weight_spec(self, metric: str, quality: int) -> Optional[WeightSpec]:
        return self.weights.get(f"{metric}-{quality}") or self.weights.get(metric)


def _build_model_spec(name: str, cls: Any, meta: Dict[str, Any]) -> ModelSpec:
    from compressai.models import CompressionModel

    if not (isinstance(cls, type) and issubclass(cls, CompressionModel)):
        raise RegistrationError(f"model {name!r}: {cls!r} is not a compressai.models.CompressionModel subclass")
    allowed = {f.name for f in dataclasses.fields(ModelSpec)} - {"name", "cls"}
    unknown = set(meta) - allowed
    if unknown:
        raise RegistrationError(f"model {name!r}: unknown spec fields {sorted(unknown)}; valid: {sorted(allowed)}")
    if "qualities" in meta:
        meta["qualities"] = tuple(int(q) for q in meta["qualities"])
        if not meta["qualities"]:
            raise RegistrationError(f"model {name!r}: qualities must not be empty")
    if "metrics" in meta:
        meta["metrics"] = tuple(meta["metrics"])
    return ModelSpec(name=name, cls=cls, **meta)


def _build_command(name: str, configure: Any, meta: Dict[str, Any]) -> "Command":
    run = meta.pop("run", None)
    if not callable(configure) or not callable(run):
        raise RegistrationError(f"command {name!r} needs callables configure(parser) and run(args)")
    return Command(name=name, configure=configure, run=run, help=meta.pop("help", ""))


def _subclass_of(base: Callable[[], type], what: str) -> Callable[[str, Any, Dict[str, Any]], type]:
    """A build function accepting only subclasses of ``base()`` (imported lazily)."""

    def build(name: str, cls: Any, meta: Dict[str, Any]) -> type:
        b = base()
        if not (isinstance(cls, type) and issubclass(cls, b)):
            raise RegistrationError(
                f"{name!r}: {cls!r} is not a subclass of {b.__module__}.{b.__qualname__} ({what})"
            )
        return cls

    return build


def _qmap_strategy_base() -> type:
    from compressai_rdc.qmap.strategies import QmapStrategy

    return QmapStrategy


def _task_base() -> type:
    from compressai_rdc.tasks.base import Task

    return Task


def _module_base() -> type:
    from torch import nn

    return nn.Module


@dataclass(frozen=True)
class Command:
    """A CLI sub-command: ``configure(parser)`` then ``run(args) -> int``."""

    name: str
    configure: Callable
    run: Callable
    help: str = ""


MODELS: Registry[ModelSpec] = Registry("model", _build_model_spec)
COMPONENTS: Registry[type] = Registry("component", _subclass_of(_module_base, "a building block is an nn.Module"))
LOSSES: Registry[type] = Registry("loss", _subclass_of(_module_base, "a loss is an nn.Module"))
QMAP_STRATEGIES: Registry[type] = Registry(
    "quality-map strategy",
    _subclass_of(_qmap_strategy_base, "implement importance(x); calling it lifts zeros as HEVRC §4.3 requires"),
)
TASKS: Registry[type] = Registry("task", _subclass_of(_task_base, "see compressai_rdc.tasks.base.Task"))
COMMANDS: Registry[Command] = Registry("command", _build_command)

#: hook name -> registry it fills
REGISTRIES: Dict[str, Registry] = {
    "register_models": MODELS,
    "register_components": COMPONENTS,
    "register_losses": LOSSES,
    "register_qmap_strategies": QMAP_STRATEGIES,
    "register_tasks": TASKS,
    "register_commands": COMMANDS,
}


def list_models() -> List[str]:
    """Names of every registered image codec (built-in and plugins)."""
    return MODELS.names()


__all__ = [
    "COMMANDS",
    "COMPONENTS",
    "Command",
    "Entry",
    "LOSSES",
    "MODELS",
    "ModelSpec",
    "QMAP_STRATEGIES",
    "REGISTRIES",
    "Registry",
    "TASKS",
    "WeightSpec",
    "list_models",
    "set_loader",
]
