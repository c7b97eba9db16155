"""Training recipes: configs (YAML, shipped or user files) and the per-step
controls each paper's stages need.

A config names a model, a loss (see :func:`compressai_rdc.losses.build_loss`),
what is frozen, and a *recipe kind* deciding how each batch is driven:

================  ==========================================================================
kind              per step
================  ==========================================================================
``rd``            plain ``model(x)``; any CompressAI zoo model (the baseline recipe)
``rdc-primary``   RDC stage I: per-image random rate level ``r ~ U[rate_range]`` (default
                  ``[0, L-1]``; ``discrete: true`` draws integers), ``layers=0``;
                  per-image λ(r) log-linear between ``lmbda_min`` and ``lmbda_max``
                  (``qmap: true`` adds random quality maps and a per-pixel λ map: rdc-qmap)
``rdc-residual``  RDC stage II: primary frozen (eval), random rate level, random layer
                  prefix ``k ~ U{1..K}`` so every prefix is trained; λ log-linear in
                  ``s·(k-1)/(K-1) + (1-s)·r/(L-1)``, ``s = layer_share`` (default 0.5)
``qmap``          quality-map codecs: random maps (uniform / gradient / blobs, QMAP2021),
                  per-pixel λ map ``t1·exp(t2·q)`` (HEVRC eq. 10)
``qmap-gan``      ``qmap`` + alternating conditional-GAN discriminator steps (HEVRC stage 3)
================  ==========================================================================
"""

from __future__ import annotations

import copy
import math
import re
from importlib.resources import files
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import torch
import yaml
from torch import Tensor, nn

from compressai_rdc.errors import InvalidArgumentError

#: defaults every config is merged onto
DEFAULTS: Dict[str, Any] = {
    "name": None,
    "description": "",
    "kind": "rd",
    "seed": 0,
    "model": {"name": None, "quality": None, "kwargs": {}, "init_weights": None, "init_only": None},
    "data": {"train": None, "crop": 256, "batch_size": 16, "small": "upscale", "hflip": True, "vflip": False,
             "keep_on": "auto", "max_images": None, "schedule": []},
    "loss": {},
    "controls": {},
    "freeze": [],
    "optim": {"lr": 1e-4, "aux_lr": 1e-3, "disc_lr": 1e-4, "betas": [0.9, 0.999], "clip_max_norm": 1.0,
              "steps": 100_000, "milestones": [0.8, 0.95], "gamma": 0.1},
    "speed": {"bf16": "auto", "channels_last": "auto", "compile": False, "tf32": True, "fused_adam": "auto"},
    "log": {"every": 50, "checkpoint_every": 1000, "tensorboard": False},
    "val": {"every": 0, "kodak": 4, "imagenet": 32, "controls": None},
}

class _Loader(yaml.SafeLoader):
    """YAML loader that reads ``1e-4`` as a float (YAML 1.1 wants ``1.0e-4``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _yaml(text_or_stream):
    return yaml.load(text_or_stream, Loader=_Loader)


KINDS = ("rd", "rdc-primary", "rdc-residual", "qmap", "qmap-gan")


def configs_dir() -> Path:
    """Folder of the shipped recipe configs."""
    return Path(str(files("compressai_rdc.training") / "configs"))


def list_configs() -> Dict[str, str]:
    """Shipped config names with their one-line descriptions."""
    out = {}
    for p in sorted(configs_dir().glob("*.yaml")):
        with open(p) as f:
            out[p.stem] = (_yaml(f) or {}).get("description", "")
    return out


def _merge(base: Dict[str, Any], over: Mapping[str, Any]) -> Dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if k == "loss":  # a loss section replaces, never merges, the default one
            out[k] = copy.deepcopy(v)
        elif isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def apply_override(config: Dict[str, Any], item: str) -> None:
    """Apply one ``dotted.key=yaml-value`` override in place."""
    if "=" not in item:
        raise InvalidArgumentError(f"override {item!r} must look like key.sub=value")
    key, value = item.split("=", 1)
    parts = key.strip().split(".")
    node = config
    for p in parts[:-1]:
        if not isinstance(node.get(p), dict):
            node[p] = {}
        node = node[p]
    node[parts[-1]] = _yaml(value)


def load_config(name_or_path: str, overrides: Sequence[str] = ()) -> Dict[str, Any]:
    """Load a shipped recipe by name (``rdc-versatile-stage1``) or a YAML file,
    merged onto :data:`DEFAULTS`, with ``key=value`` overrides applied.

    A config may start with ``base: <name or path>`` to inherit another one.
    """
    path = Path(name_or_path)
    if not path.is_file():
        shipped = configs_dir() / f"{name_or_path}.yaml"
        if not shipped.is_file():
            raise InvalidArgumentError(
                f"config {name_or_path!r} is neither a file nor a shipped recipe; shipped: {', '.join(list_configs())}"
            )
        path = shipped
    with open(path) as f:
        raw = _yaml(f) or {}
    if not isinstance(raw, dict):
        raise InvalidArgumentError(f"config {str(path)!r} must be a YAML mapping")
    base = raw.pop("base", None)
    parent = load_config(base if (configs_dir() / f"{base}.yaml").is_file() else str(path.parent / base)) if base else DEFAULTS
    config = _merge(parent, raw)
    config.setdefault("name", path.stem)
    if not raw.get("name"):
        config["name"] = path.stem
    for item in overrides:
        apply_override(config, item)
    validate_config(config)
    return config


def validate_config(config: Mapping[str, Any]) -> None:
    unknown = set(config) - set(DEFAULTS)
    if unknown:
        raise InvalidArgumentError(f"unknown config sections {sorted(unknown)}; valid: {sorted(DEFAULTS)}")
    if config["kind"] not in KINDS:
        raise InvalidArgumentError(f"config kind {config['kind']!r} is invalid; valid: {', '.join(KINDS)}")
    if not config["model"].get("name"):
        raise InvalidArgumentError("config needs model.name (a compressai_rdc or CompressAI zoo model)")
    if not config["loss"]:
        raise InvalidArgumentError("config needs a loss section, e.g. {rate: {weight: 1}, mse: {weight: 0.0067}}")
    only = config["model"].get("init_only")
    if only is not None and (not isinstance(only, (list, tuple)) or not only or not all(isinstance(n, str) and n for n in only)):
        raise InvalidArgumentError(f"model.init_only={only!r} must be a non-empty list of sub-module names (e.g. [primary])")
    if int(config["data"]["batch_size"]) < 1 or int(config["optim"]["steps"]) < 0:
        raise InvalidArgumentError("data.batch_size must be >= 1 and optim.steps >= 0")


# -----------------------------------------------------------------------------
# Models
# -----------------------------------------------------------------------------
def build_model(spec: Mapping[str, Any]) -> nn.Module:
    """A compressai-rdc registry model, else a CompressAI zoo model, untrained."""
    from compressai_rdc.registry import MODELS

    name, quality, kwargs = spec["name"], spec.get("quality"), dict(spec.get("kwargs") or {})
    if name in MODELS:
        from compressai_rdc.zoo import create_model

        return create_model(name, quality, **kwargs)
    import compressai.zoo

    if name in compressai.zoo.image_models:
        if quality is None:
            raise InvalidArgumentError(f"CompressAI zoo model {name!r} needs model.quality (1..8)")
        if kwargs:  # architecture overrides (e.g. N, M for small test models) bypass the quality table
            import compressai.zoo.image as zi

            cfg = dict(zip(("N", "M"), zi.cfgs[name][int(quality)]))
            cfg.update(kwargs)
            return zi.model_architectures[name](**cfg)
        return compressai.zoo.image_models[name](quality=int(quality), pretrained=False)
    raise InvalidArgumentError(
        f"model {name!r} is neither registered in compressai_rdc ({', '.join(MODELS.names())}) nor a CompressAI zoo model "
        f"({', '.join(sorted(compressai.zoo.image_models))})"
    )


def log_interp(lo: float, hi: float, t: Tensor) -> Tensor:
    """``lo · (hi/lo)^t`` for ``t`` in [0, 1]: λ spaced evenly in log scale."""
    return lo * torch.exp(t * math.log(hi / lo))


# -----------------------------------------------------------------------------
# Recipe kinds
# -----------------------------------------------------------------------------
def _random_qmaps(x: Tensor, g: torch.Generator, controls: Mapping[str, Any]) -> Tuple[Tensor, Tensor]:
    """Random training maps (uniform / gradient / blobs) ``(B, 1, H, W)`` and their
    per-pixel λ ``t1·exp(t2·q)`` (HEVRC eq. 10; ``controls.t1``/``t2``, defaults
    :data:`~compressai_rdc.qmap.lambda_map.DEFAULT_T1` = 4e-4, ``DEFAULT_T2`` = 2.8).
    The recipe config is the one place that sets them: the model does not store them."""
    from compressai_rdc.qmap.lambda_map import DEFAULT_T1, DEFAULT_T2, lambda_map
    from compressai_rdc.qmap.random import random_qmap

    b, _, h, w = x.shape
    opts = {k: controls[k] for k in ("p_uniform", "p_gradient", "max_blobs") if k in controls}
    q = random_qmap(b, h, w, generator=g, device=x.device, **opts)
    return q, lambda_map(q, float(controls.get("t1", DEFAULT_T1)), float(controls.get("t2", DEFAULT_T2)))


class Recipe:
    """How one kind of training step drives the model (base: ``rd``).

    Args:
        controls: the config's ``controls`` section.
    """

    kind = "rd"
    gan = False

    def __init__(self, controls: Mapping[str, Any]):
        self.controls = dict(controls)
        self.forward_extra = dict(self.controls.pop("forward", {}) or {})

    def check_model(self, model: nn.Module) -> None:
        """Raise if ``model`` lacks what this recipe drives."""

    def sample(self, x: Tensor, g: torch.Generator) -> Tuple[Dict[str, Any], Dict[str, Any]]:
        """``(forward kwargs, batch extras for the loss)`` for images ``x (B, 3, H, W)``."""
        return dict(self.forward_extra), {}

    def val_controls(self, model: nn.Module) -> List[Dict[str, Any]]:
        """Controls (encode kwargs) at which validation measures bpp/PSNR/top-1."""
        return [{}]


class RDCPrimaryRecipe(Recipe):
    """RDC stage I (Liu et al. 2024): cognition-oriented primary branch at random rate levels."""

    kind = "rdc-primary"

    def check_model(self, model: nn.Module) -> None:
        for attr in ("primary", "residual", "levels"):
            if not hasattr(model, attr):
                raise InvalidArgumentError(f"recipe {self.kind!r} needs an RDC model with .{attr}; {type(model).__name__} has none")
        self.levels = int(model.levels)

    def _rate(self, b: int, g: torch.Generator) -> Tensor:
        top = self.levels - 1
        lo, hi = (float(v) for v in self.controls.get("rate_range") or (0, top))
        if not 0 <= lo <= hi <= top:
            raise InvalidArgumentError(f"controls.rate_range {[lo, hi]} must lie within the model's levels [0, {top}]")
        if self.controls.get("discrete", False):
            return torch.randint(int(math.ceil(lo)), int(hi) + 1, (b,), generator=g).float()
        return lo + torch.rand(b, generator=g) * (hi - lo)

    def _lmbda_at(self, t: Tensor) -> Tensor:
        """λ log-linear between ``controls.lmbda_min`` (``t = 0``) and ``lmbda_max`` (``t = 1``)."""
        lo, hi = float(self.controls.get("lmbda_min", 1.0)), float(self.controls.get("lmbda_max", 1.0))
        return log_interp(lo, hi, t)

    def _lmbda(self, rate: Tensor) -> Tensor:
        return self._lmbda_at(rate / max(1, self.levels - 1))

    def sample(self, x, g):
        rate = self._rate(x.shape[0], g)
        fwd = dict(self.forward_extra, rate=rate.to(x.device), layers=0)
        extras = {"lmbda": self._lmbda(rate).to(x.device), "rate": rate.to(x.device)}
        if self.controls.get("qmap"):  # rdc-qmap: a random map moves bits between regions at each rate
            q, lmap = _random_qmaps(x, g, self.controls)
            fwd["qmap"] = q
            extras.update(qmap=q, lmbda_map=lmap)
        return fwd, extras

    def val_controls(self, model):
        levels = self.controls.get("val_rates") or [0, (self.levels - 1) / 2, self.levels - 1]
        return [{"rate": float(r), "layers": 0} for r in levels]


class RDCResidualRecipe(RDCPrimaryRecipe):
    """RDC stage II: residual branch with random prefix truncation, primary frozen."""

    kind = "rdc-residual"

    def check_model(self, model):
        super().check_model(model)
        if not hasattr(model, "residual_layers"):
            raise InvalidArgumentError(f"recipe {self.kind!r} needs model.residual_layers")
        self.layers = int(model.residual_layers)
        share = self.controls.get("layer_share", 0.5)
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.0 <= share <= 1.0:
            raise InvalidArgumentError(
                f"controls.layer_share={share!r} is invalid: a number in [0, 1] (the share of the layer prefix in λ(k, r); "
                "0: λ follows the rate level only, 1: the layer prefix only)"
            )
        self.layer_share = float(share)

    def lmbda(self, rate: Tensor, k: int) -> Tensor:
        """λ(k, r): log-linear between ``lmbda_min`` and ``lmbda_max`` in
        ``s·(k-1)/(K-1) + (1-s)·r/(L-1)``, so it grows with the layer prefix ``k`` and
        with the (residual) rate level ``r``, which defaults to the primary's."""
        s = self.layer_share
        return self._lmbda_at(s * (k - 1) / max(1, self.layers - 1) + (1.0 - s) * rate / max(1, self.levels - 1))

    def sample(self, x, g):
        b = x.shape[0]
        rate = self._rate(b, g)
        k = int(torch.randint(1, self.layers + 1, (), generator=g))
        fwd = dict(self.forward_extra, rate=rate.to(x.device), layers=k)
        return fwd, {"lmbda": self.lmbda(rate, k).to(x.device), "rate": rate.to(x.device), "layers": k}

    def val_controls(self, model):
        r = float(self.controls.get("val_rate", (self.levels - 1) / 2))
        return [{"rate": r, "layers": k} for k in sorted({0, 1, self.layers})]


class QmapRecipe(Recipe):
    """Quality-map codecs (QMAP2021 / HEVRC stages 1–2): random maps, per-pixel λ."""

    kind = "qmap"

    def sample(self, x, g):
        q, lmap = _random_qmaps(x, g, self.controls)
        return dict(self.forward_extra, qmap=q), {"qmap": q, "lmbda_map": lmap}


class QmapGANRecipe(QmapRecipe):
    """HEVRC stage 3: decoder-only conditional-GAN fine-tuning (encoder frozen)."""

    kind = "qmap-gan"
    gan = True


RECIPES = {cls.kind: cls for cls in (Recipe, RDCPrimaryRecipe, RDCResidualRecipe, QmapRecipe, QmapGANRecipe)}


def build_recipe(config: Mapping[str, Any]) -> Recipe:
    return RECIPES[config["kind"]](config.get("controls") or {})


__all__ = [
    "DEFAULTS",
    "KINDS",
    "RECIPES",
    "Recipe",
    "apply_override",
    "build_model",
    "build_recipe",
    "configs_dir",
    "list_configs",
    "load_config",
    "log_interp",
]
