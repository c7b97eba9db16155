"""The text grammar of ``compressai-rdc eval`` specs.

Codecs, models and datasets are given on the command line as one token each::

    SPEC    := NAME [":" PARAMS]                 # --model, --codec, --compressai
    DATASET := NAME "=" DIR [":" PARAMS]         # --dataset
    PARAMS  := KEY "=" VALUES ("," KEY "=" VALUES)*
    VALUES  := VALUE ("|" VALUE)*                # "|" sweeps a value: one operating point each

Values are read as ``int``, then ``float``, then ``true``/``false``/``none``,
else kept as strings (paths). Examples::

    jpeg:quality=10|30|50|70|90
    rdc-versatile:weights=rdc.safetensors,rate=0|2|4|6,beta=0|1
    mbt2018-mean:checkpoint=q1.safetensors|q3.safetensors
    imagenet-dev=../shared/data/imagenet-dev:task=classification
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Sequence, Tuple

from compressai_rdc.errors import InvalidArgumentError

_KEY = r"[A-Za-z_][A-Za-z0-9_-]*"
_PARAMS_RE = re.compile(rf"^{_KEY}=[^,]*(,{_KEY}=[^,]*)*$")


def parse_value(text: str) -> Any:
    """``"3"`` → 3, ``"0.5"`` → 0.5, ``"true"`` → True, ``"none"`` → None, else the string."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text.strip()


def parse_params(text: str, *, what: str) -> Dict[str, List[Any]]:
    """``"a=1|2,b=x"`` → ``{"a": [1, 2], "b": ["x"]}``."""
    params: Dict[str, List[Any]] = {}
    if not text:
        return params
    if not _PARAMS_RE.match(text):
        raise InvalidArgumentError(
            f"cannot parse the parameters {text!r} of {what}: expected KEY=VALUE[|VALUE...] pairs separated by ','"
        )
    for item in text.split(","):
        key, _, values = item.partition("=")
        key = key.strip().replace("-", "_")
        if key in params:
            raise InvalidArgumentError(f"parameter {key!r} is given twice in {what}")
        params[key] = [parse_value(v) for v in values.split("|")]
    return params


@dataclass(frozen=True)
class Spec:
    """A parsed ``NAME[:PARAMS]`` token: every parameter is a list of values."""

    name: str
    params: Mapping[str, List[Any]] = field(default_factory=dict)
    text: str = ""

    def single(self, key: str, default: Any = None) -> Any:
        """The one value of ``key`` (error if it is swept)."""
        values = self.params.get(key)
        if values is None:
            return default
        if len(values) != 1:
            raise InvalidArgumentError(f"{key!r} takes one value in {self.text!r}, got {len(values)}")
        return values[0]


def parse_spec(text: str) -> Spec:
    """Parse ``NAME[:KEY=V1|V2,...]`` (``--model``, ``--codec``, ``--compressai``)."""
    name, _, rest = text.partition(":")
    name = name.strip()
    if not name:
        raise InvalidArgumentError(f"spec {text!r} has no name; expected NAME[:KEY=VALUE,...]")
    return Spec(name=name, params=parse_params(rest, what=repr(text)), text=text)


@dataclass(frozen=True)
class DatasetSpec:
    """A parsed ``NAME=DIR[:PARAMS]`` token (``--dataset``)."""

    name: str
    root: str
    params: Mapping[str, Any] = field(default_factory=dict)


def parse_dataset(text: str) -> DatasetSpec:
    """Parse ``NAME=DIR[:KEY=VALUE,...]``; a bare ``DIR`` is named after its folder."""
    name, sep, rest = text.partition("=")
    if not sep or "/" in name or "\\" in name:
        name, rest = "", text
    root, params = rest, {}
    head, colon, tail = rest.rpartition(":")
    if colon and _PARAMS_RE.match(tail):
        root = head
        raw = parse_params(tail, what=repr(text))
        for k, v in raw.items():
            if len(v) != 1:
                raise InvalidArgumentError(f"dataset parameter {k!r} cannot be swept in {text!r}")
        params = {k: v[0] for k, v in raw.items()}
    root = root.strip()
    if not root:
        raise InvalidArgumentError(f"dataset {text!r} has no folder; expected NAME=DIR[:KEY=VALUE,...]")
    if not name:
        name = root.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1] or root
    return DatasetSpec(name=name.strip(), root=root, params=params)


@dataclass(frozen=True)
class OperatingPoint:
    """One setting of a codec: ``params`` such as ``{"quality": 50}`` or
    ``{"rate": 2, "beta": 0.5, "layers": 1}``; ``label`` names it in outputs."""

    params: Tuple[Tuple[str, Any], ...]

    @property
    def dict(self) -> Dict[str, Any]:
        return dict(self.params)

    @property
    def label(self) -> str:
        return ",".join(f"{k}={_short(v)}" for k, v in self.params) or "default"

    def get(self, key: str, default: Any = None) -> Any:
        return self.dict.get(key, default)


def _short(v: Any) -> str:
    s = str(v)
    return s.replace("\\", "/").rsplit("/", 1)[-1] if isinstance(v, str) else s


def grid(sweeps: Mapping[str, Sequence[Any]], order: Iterable[str] = ()) -> List[OperatingPoint]:
    """Cartesian product of swept values, keys in ``order`` first, as operating points."""
    keys = [k for k in order if k in sweeps] + [k for k in sweeps if k not in order]
    return [OperatingPoint(tuple(zip(keys, combo))) for combo in itertools.product(*(sweeps[k] for k in keys))]


__all__ = ["DatasetSpec", "OperatingPoint", "Spec", "grid", "parse_dataset", "parse_params", "parse_spec", "parse_value"]
