"""Every codec the evaluation compares, behind one interface.

==================  ==========================================================
``uncompressed``    the 8-bit RGB input itself (24 bpp): the task's ceiling
``jpeg/webp/avif``  Pillow's encoders over a quality sweep
``--compressai``    a CompressAI zoo architecture with safetensors checkpoints
                    (or random initialisation, for plumbing)
``--model``         any registered compressai-rdc model (built-in or plugin),
                    with its operating points: rate, target_bpp, qmap, layers, β
==================  ==========================================================

bpp is always counted from the bytes a real decoder reads: Pillow's file
bytes, or the container written by :func:`compressai_rdc.codec.encode` cut to
the substreams the operating point's decode reads
(:func:`compressai_rdc.codec.bytes_read`: fewer residual layers, none at β = 1).

Data flow for one image and one group of operating points sharing an encode::

    x (3,H,W) uint8 ─► encode(x, op₀) ─► bytes ─┬─► select(bytes, op₁) ─► decode ─► x̂₁ (uint8)
                                                 └─► select(bytes, op₂) ─► decode ─► x̂₂
"""

from __future__ import annotations

import io
import time
import warnings
from abc import ABC, abstractmethod
from typing import Any, Dict, Hashable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image

from compressai_rdc.errors import InvalidArgumentError, RDCError
from compressai_rdc.eval.spec import OperatingPoint, Spec, grid


class CodecError(RDCError, RuntimeError):
    """A codec failed to encode or decode an image."""


def synchronize(device: torch.device) -> None:
    """Wait for queued CUDA work so that timings measure the work itself."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Codec(ABC):
    """One codec and its operating points.

    Attributes:
        name: label in every output (JSON file name, CSV, legends).
        kind: ``"reference"``, ``"classical"`` or ``"learned"``.
        rate_keys: operating-point keys that move along a rate curve; the
            other keys (β, layers, qmap) select which curve a point is on.
    """

    name: str = ""
    kind: str = "classical"
    rate_keys: Tuple[str, ...] = ("quality",)

    def __init__(self) -> None:
        self.device = torch.device("cpu")

    @abstractmethod
    def operating_points(self) -> List[OperatingPoint]:
        """Every operating point to evaluate, in sweep order."""

    def encode_key(self, op: OperatingPoint) -> Hashable:
        """Operating points with equal keys share one encode (e.g. β and layers only change decoding)."""
        return op.params

    @abstractmethod
    def encode(self, x: torch.Tensor, op: OperatingPoint) -> bytes:
        """Encode one ``(3, H, W)`` uint8 CPU image."""

    def _needs_residual(self, model: torch.nn.Module) -> bool:
        """Whether a swept β < 1 reads residual layers that the model's default
        (β = 1 weights code none) would leave out of the stream."""
        betas = [float(b) for b in self.sweeps.get("beta", [])]
        return bool(betas) and min(betas) < 1.0 and hasattr(model, "residual_layers") and getattr(model, "default_beta", 0.0) == 1.0

    def select(self, data: bytes, op: OperatingPoint) -> bytes:
        """The part of ``data`` a decoder needs for ``op`` (default: all of it)."""
        return data

    @abstractmethod
    def decode(self, data: bytes, op: OperatingPoint, size: Tuple[int, int]) -> torch.Tensor:
        """Decode to a ``(3, H, W)`` uint8 CPU image of ``size`` = (H, W)."""

    def to(self, device: Union[str, torch.device]) -> "Codec":
        self.device = torch.device(device)
        return self

    def describe(self) -> Dict[str, Any]:
        """Settings written into the JSON result file."""
        return {"codec": self.name, "kind": self.kind}

    def timed(self, fn, *args) -> Tuple[Any, float]:
        """``fn(*args)`` and its wall time in seconds (CUDA-synchronised)."""
        synchronize(self.device)
        t0 = time.perf_counter()
        out = fn(*args)
        synchronize(self.device)
        return out, time.perf_counter() - t0


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """``(…, 3, H, W)`` float in [0, 1] → uint8 CPU, rounded as an 8-bit decoder output."""
    return x.detach().clamp(0, 1).mul(255).round().to(torch.uint8).cpu()


# -----------------------------------------------------------------------------
# Reference and classical codecs
# -----------------------------------------------------------------------------
class Uncompressed(Codec):
    """The raw 8-bit RGB input (24 bpp): the upper bound of every task metric."""

    name = "uncompressed"
    kind = "reference"
    rate_keys = ()

    def operating_points(self) -> List[OperatingPoint]:
        return [OperatingPoint(())]

    def encode(self, x: torch.Tensor, op: OperatingPoint) -> bytes:
        return x.permute(1, 2, 0).contiguous().numpy().tobytes()

    def decode(self, data: bytes, op: OperatingPoint, size: Tuple[int, int]) -> torch.Tensor:
        h, w = size
        return torch.frombuffer(bytearray(data), dtype=torch.uint8).view(h, w, 3).permute(2, 0, 1).contiguous()


class PillowCodec(Codec):
    """A Pillow image format over a quality sweep; other keys go to ``Image.save``.

    Args:
        fmt: ``"jpeg"``, ``"webp"`` or ``"avif"``.
        sweeps: ``{"quality": [...], <Pillow save option>: [...]}``.
        name: label (default: ``fmt``).
    """

    FORMATS = {"jpeg": "JPEG", "webp": "WEBP", "avif": "AVIF"}
    DEFAULT_QUALITIES = {"jpeg": [10, 20, 35, 55, 80], "webp": [5, 20, 40, 60, 80], "avif": [5, 15, 30, 45, 60]}

    def __init__(self, fmt: str, sweeps: Optional[Mapping[str, Sequence[Any]]] = None, name: Optional[str] = None):
        super().__init__()
        fmt = fmt.lower()
        if fmt not in self.FORMATS:
            raise InvalidArgumentError(f"classical codec {fmt!r} is unknown; valid: {', '.join(self.FORMATS)}")
        from PIL import features

        feature = {"jpeg": "jpg", "webp": "webp", "avif": "avif"}[fmt]
        if not features.check(feature):
            raise InvalidArgumentError(f"this Pillow build has no {fmt.upper()} support (PIL.features.check({feature!r}) is False)")
        self.fmt, self.pil_format = fmt, self.FORMATS[fmt]
        self.name = name or fmt
        self.sweeps = dict(sweeps or {})
        self.sweeps.setdefault("quality", self.DEFAULT_QUALITIES[fmt])
        for q in self.sweeps["quality"]:
            if not isinstance(q, int) or not 0 <= q <= 100:
                raise InvalidArgumentError(f"{fmt} quality {q!r} is invalid; valid: integers 0..100")

    def operating_points(self) -> List[OperatingPoint]:
        return grid(self.sweeps, order=("quality",))

    def encode(self, x: torch.Tensor, op: OperatingPoint) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(x.permute(1, 2, 0).contiguous().numpy()).save(buf, self.pil_format, **op.dict)
        return buf.getvalue()

    def decode(self, data: bytes, op: OperatingPoint, size: Tuple[int, int]) -> torch.Tensor:
        with Image.open(io.BytesIO(data)) as im:
            arr = np.asarray(im.convert("RGB"))
        if arr.shape[:2] != tuple(size):
            raise CodecError(f"{self.name} decoded a {arr.shape[1]}x{arr.shape[0]} image, expected {size[1]}x{size[0]}")
        return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()

    def describe(self) -> Dict[str, Any]:
        import PIL

        return {"codec": self.name, "kind": self.kind, "library": f"Pillow {PIL.__version__}", "format": self.pil_format}


# -----------------------------------------------------------------------------
# Learned codecs (through the generic container codec)
# -----------------------------------------------------------------------------
#: operating-point keys of learned codecs: encode-side, decode-side, and the stream truncation
ENCODE_CONTROLS = ("rate", "target_bpp", "qmap", "level")
DECODE_CONTROLS = ("beta",)
LAYER_CONTROL = "layers"


class LearnedCodec(Codec):
    """A CompressAI-contract model coded through :mod:`compressai_rdc.codec`.

    Operating-point keys:

    ``rate``        the model's continuous rate control (``rdc-versatile``: gain level in [0, L−1])
    ``target_bpp``  per-image rate control to a target (:func:`compressai_rdc.ratecontrol.encode_to_target`);
                    bpp is still counted from the bytes actually produced
    ``qmap``        quality-map strategy name (``QMAP_STRATEGIES``) for quality-map models
    ``level``       Γ level t ∈ [0, 2] turning the strategy's importance into the quality map
                    (default 1: q = importance); ignored with ``target_bpp``, which searches it
    ``layers``      residual layers kept: the stream is encoded once and truncated
                    (:func:`compressai_rdc.codec.truncate`); with ``target_bpp`` it is fixed during the search
    ``beta``        decode-time cognition–distortion interpolation x̄ = x̂₁ + (1 − β)·r̂

    Args:
        models: ``{checkpoint key: nn.Module}``; the key is ``None`` for a single model,
            else a checkpoint path or ``q<quality>`` (one model per rate point).
        sweeps: the swept keys above.
        name: label.
        description: free text for the result file.
    """

    kind = "learned"
    rate_keys = ("checkpoint", "quality", "rate", "target_bpp", "level")

    def __init__(self, models: Mapping[Optional[str], torch.nn.Module], sweeps: Mapping[str, Sequence[Any]], name: str, description: str = ""):
        super().__init__()
        valid = set(ENCODE_CONTROLS) | set(DECODE_CONTROLS) | {LAYER_CONTROL}
        unknown = set(sweeps) - valid
        if unknown:
            raise InvalidArgumentError(
                f"unknown operating-point key(s) {sorted(unknown)} for {name}; valid: {', '.join(sorted(valid))}"
            )
        if "level" in sweeps and "qmap" not in sweeps:
            raise InvalidArgumentError(f"level= needs a quality-map strategy qmap= in the spec of {name}")
        self.models = {k: m.eval() for k, m in models.items()}
        self.sweeps = {k: list(v) for k, v in sweeps.items()}
        self.name, self.description = name, description
        self._strategies: Dict[Tuple[str, int], Any] = {}
        #: (image, fixed controls, rate control) of the last rate sweep (see :meth:`_rate_sweep`)
        self._sweep: Optional[Tuple[torch.Tensor, Hashable, Any]] = None
        from compressai_rdc import codec as _codec  # the generic container codec (issue 3)

        self._codec = _codec

    def operating_points(self) -> List[OperatingPoint]:
        sweeps: Dict[str, Sequence[Any]] = {}
        if len(self.models) > 1 or None not in self.models:
            sweeps["checkpoint"] = list(self.models)
        sweeps.update(self.sweeps)
        return grid(sweeps, order=("checkpoint", "rate", "target_bpp", "qmap", "level", "layers", "beta"))

    def _model(self, op: OperatingPoint) -> torch.nn.Module:
        return self.models[op.get("checkpoint")]

    def encode_key(self, op: OperatingPoint) -> Hashable:
        keep = set(ENCODE_CONTROLS) | {"checkpoint"} | ({LAYER_CONTROL} if "target_bpp" in op.dict else set())
        return tuple((k, v) for k, v in op.params if k in keep)

    def to(self, device: Union[str, torch.device]) -> "LearnedCodec":
        super().to(device)
        for m in self.models.values():
            m.to(self.device)
        return self

    def _strategy(self, name: str, model: torch.nn.Module):
        key = (name, id(model))
        if key not in self._strategies:
            from compressai_rdc.qmap import create_strategy_for

            self._strategies[key] = create_strategy_for(model, name)
        return self._strategies[key]

    @torch.inference_mode()
    def encode(self, x: torch.Tensor, op: OperatingPoint) -> bytes:
        model = self._model(op)
        xf = x.to(self.device).float().div_(255.0).unsqueeze(0)
        controls: Dict[str, Any] = {k: v for k, v in op.params if k == "rate"}
        if op.get(LAYER_CONTROL) is None and self._needs_residual(model):
            controls[LAYER_CONTROL] = int(model.residual_layers)  # β < 1 points share this encode; select() cuts per point
        strategy = op.get("qmap")
        target = op.get("target_bpp")
        if target is not None:
            from compressai_rdc.ratecontrol import encode_to_target

            if strategy is not None:
                controls["qmap_strategy"] = strategy
            if op.get(LAYER_CONTROL) is not None:
                controls[LAYER_CONTROL] = op.get(LAYER_CONTROL)
            data, _report = encode_to_target(model, xf, float(target), **controls)
            return data
        if strategy is not None:
            from compressai_rdc.qmap.gamma import gamma_level

            importance = self._strategy(strategy, model)(xf)
            controls["qmap"] = gamma_level(importance.to(xf), float(op.get("level", 1.0)))
            return self._codec.encode(model, xf, **controls)
        if "rate" in controls and len(self.sweeps.get("rate", ())) > 1:
            return self._rate_sweep(model, x, xf, controls).encode(model, xf, float(controls["rate"]))
        return self._codec.encode(model, xf, **controls)

    def _rate_sweep(self, model: torch.nn.Module, x: torch.Tensor, xf: torch.Tensor, controls: Dict[str, Any]):
        """The model's rate control on this image, built once for all swept rates.

        Its ``rate_control`` hook reuses what does not depend on the rate
        (``rdc-versatile`` at β = 1: one primary analysis for every rate) and
        ``RateControl.encode`` writes the bytes :func:`compressai_rdc.codec.encode`
        writes at that rate.
        """
        fixed = {k: v for k, v in controls.items() if k != "rate"}
        key = (id(model), tuple(sorted(fixed.items())))
        if self._sweep is None or self._sweep[0] is not x or self._sweep[1] != key:
            from compressai_rdc.ratecontrol import rate_control

            self._sweep = (x, key, rate_control(model, xf, control="rate", **fixed))
        return self._sweep[2]

    def select(self, data: bytes, op: OperatingPoint) -> bytes:
        """The substreams this operating point's decode reads (its rate): fewer
        residual layers, and none at β = 1 (:func:`compressai_rdc.codec.bytes_read`)."""
        layers = op.get(LAYER_CONTROL)
        layers = None if layers is None or op.get("target_bpp") is not None else int(layers)
        controls = {k: v for k, v in op.params if k in DECODE_CONTROLS}
        return self._codec.bytes_read(data, self._model(op), layers=layers, **controls)

    @torch.inference_mode()
    def decode(self, data: bytes, op: OperatingPoint, size: Tuple[int, int]) -> torch.Tensor:
        controls = {k: v for k, v in op.params if k in DECODE_CONTROLS}
        x_hat = self._codec.decode(data, self._model(op), **controls)
        if tuple(x_hat.shape[-2:]) != tuple(size):
            raise CodecError(f"{self.name} decoded {tuple(x_hat.shape[-2:])}, expected {tuple(size)}")
        return to_uint8(x_hat[0])

    def describe(self) -> Dict[str, Any]:
        return {"codec": self.name, "kind": self.kind, "description": self.description}


class RandomInitialisationWarning(UserWarning):
    """An evaluated model has no weights (no ``weights=`` and no ``pretrained=true``): its
    numbers measure a randomly initialised network, good for plumbing only."""


def _random_init_note(model: torch.nn.Module, spec: str, fix: str) -> torch.nn.Module:
    warnings.warn(f"{spec}: the model is randomly initialised (plumbing only); {fix}", RandomInitialisationWarning, stacklevel=3)
    model.update(force=True)
    return model.eval()


def build_registered_codec(spec: Spec) -> LearnedCodec:
    """A registered compressai-rdc model from ``NAME:weights=...,quality=...,rate=...,beta=...``.

    Construction keys: ``weights`` (a ``.safetensors`` file; without it the
    model is randomly initialised: plumbing only), ``pretrained`` (the zoo's
    shipped weights), ``quality``, ``metric``, ``name`` (label). Every other
    key is an operating-point sweep (see :class:`LearnedCodec`).
    """
    from compressai_rdc.zoo import create_model, load_model

    params = dict(spec.params)
    label = spec.single("name", spec.name)
    weights, pretrained = spec.single("weights"), bool(spec.single("pretrained", False))
    metric = spec.single("metric", "mse")
    qualities = params.pop("quality", [None])
    for k in ("name", "weights", "pretrained", "metric"):
        params.pop(k, None)
    models: Dict[Optional[str], torch.nn.Module] = {}
    for q in qualities:
        if weights is None and not pretrained:
            model = _random_init_note(create_model(spec.name, quality=q, metric=metric), f"--model {spec.name}",
                                      "add pretrained=true for the shipped weights, or weights=FILE.safetensors")
        else:  # the CLI's loader: widths from the file, exact constants, coders updated
            model = load_model(spec.name, weights, pretrained, metric, quality=q)
        models[None if len(qualities) == 1 else f"q{q}"] = model
    source = f"weights {weights}" if weights else ("zoo weights" if pretrained else "RANDOM INITIALISATION (plumbing only)")
    codec = LearnedCodec(models, params, name=label, description=f"compressai-rdc model {spec.name} ({source})")
    if len(qualities) > 1:
        codec.rate_keys = ("checkpoint",) + codec.rate_keys
    return codec


def check_compressai_architecture(name: str) -> None:
    """Raise :class:`InvalidArgumentError` unless ``name`` is in CompressAI's image zoo."""
    from compressai.zoo.image import model_architectures

    if name not in model_architectures:
        raise InvalidArgumentError(f"unknown CompressAI architecture {name!r}; valid: {', '.join(sorted(model_architectures))}")


def build_compressai_codec(spec: Spec) -> LearnedCodec:
    """A CompressAI zoo architecture from ``ARCH:checkpoint=a.safetensors|b.safetensors``.

    Each checkpoint (a state dict in safetensors, read with
    :func:`compressai_rdc.zoo.load_state_dict_file`) is one rate point, rebuilt
    with the architecture's ``from_state_dict``. Without ``checkpoint`` the
    architecture is randomly initialised at each ``quality`` (plumbing only:
    CompressAI's own pretrained weights would need a download).
    """
    from compressai.zoo import image_models
    from compressai.zoo.image import model_architectures

    check_compressai_architecture(spec.name)
    from compressai_rdc.zoo import load_into, load_state_dict_file
    from compressai_rdc.zoo._pretrained import clean_state_dict

    params = dict(spec.params)
    label = spec.single("name", spec.name)
    checkpoints = params.pop("checkpoint", None)
    qualities = params.pop("quality", None)
    params.pop("name", None)
    models: Dict[Optional[str], torch.nn.Module] = {}
    if checkpoints is not None:
        if qualities is not None:
            raise InvalidArgumentError(f"give either checkpoint= or quality= in {spec.text!r}, not both")
        for path in checkpoints:
            sd = clean_state_dict(load_state_dict_file(str(path)), cast=False)  # load_into sees the file's dtypes
            model = model_architectures[spec.name].from_state_dict(sd)
            load_into(model, sd, source=str(path))
            model.update(force=True)
            models[str(path)] = model.eval()
        source = "checkpoints"
    else:
        for q in qualities or [1]:
            models[f"q{q}"] = _random_init_note(image_models[spec.name](quality=int(q), pretrained=False), f"--compressai {spec.name}",
                                                 "add checkpoint=FILE.safetensors (one rate point per file)")
        source = "RANDOM INITIALISATION (plumbing only)"
    return LearnedCodec(models, params, name=label, description=f"CompressAI {spec.name} ({source})")


def build_classical_codec(spec: Spec) -> PillowCodec:
    """``jpeg|webp|avif[:quality=...,<Pillow save option>=...,name=...]``."""
    params = dict(spec.params)
    label = spec.single("name")
    params.pop("name", None)
    return PillowCodec(spec.name, params, name=label)


__all__ = [
    "Codec",
    "CodecError",
    "LearnedCodec",
    "PillowCodec",
    "Uncompressed",
    "build_classical_codec",
    "build_compressai_codec",
    "check_compressai_architecture",
    "build_registered_codec",
    "synchronize",
    "to_uint8",
]
