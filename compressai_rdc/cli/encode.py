"""``compressai-rdc encode``: an image file → a ``.rdc`` container, at a fixed control or a target bpp.

::

    compressai-rdc encode photo.png -o photo.rdc --model rdc-versatile --rate 3.5
    compressai-rdc encode photo.png -o photo.rdc --model hevrc --target-bpp 0.2 --qmap-strategy blended
    compressai-rdc encode photo.jpg -o photo.rdc --model rdc-qmap --weights w.safetensors --target-bpp 0.3 --layers 2

``--rate`` is the model's own rate control: the continuous gain level of the
RDC models (0..L−1), or the Γ level ``t ∈ [0, 2]`` of a quality-map model
(``q = t·v`` up to ``t = 1``, then rising to 1; with the default ``uniform``
strategy ``--rate 0.3`` codes with ``q ≡ 0.3``). ``--target-bpp`` searches that
control (:mod:`compressai_rdc.ratecontrol`) and reports the real rate.

RDC models code, without ``--layers``, what a decode at the weights' default β
reads (the shipped ``rdc-versatile`` weights: β = 1, primary substreams only),
so the written bytes, and a ``--target-bpp``, are the rate of that decode; the
command says which. ``--layers K`` codes K residual layers for decodes at β < 1.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Optional

from compressai_rdc.errors import InvalidArgumentError

if TYPE_CHECKING:  # the CLI imports PyTorch only when a command runs (fast --help)
    import torch
    from torch import nn


# -- shared by encode / decode / qmap -------------------------------------------
def add_model_arguments(parser: argparse.ArgumentParser, *, with_name: bool = True) -> None:
    """``--model``, ``--weights``, ``--pretrained``, ``--metric``, ``--device``."""
    if with_name:
        parser.add_argument("--model", required=True, help="registered model (compressai-rdc models)")
    parser.add_argument("--weights", type=Path, default=None, help="weights file (.safetensors); widths are read from it")
    parser.add_argument("--pretrained", action="store_true", help="use the zoo's registered weights (offline)")
    parser.add_argument("--metric", default="mse", help="metric of the zoo weights (with --pretrained)")
    parser.add_argument("--device", default="cpu")


def load_model(name: str, weights: Optional[Path], pretrained: bool, metric: str = "mse", device: str = "cpu") -> nn.Module:
    """Build a registered model with real weights, in eval mode with entropy coders ready.

    ``--weights`` files are loaded with the class's ``from_state_dict`` so any
    width trained with ``compressai-rdc train`` fits.
    """
    from compressai_rdc.registry import MODELS
    from compressai_rdc.zoo import create_model, load_state_dict_file
    from compressai_rdc.zoo._pretrained import clean_state_dict

    spec = MODELS.get(name)
    if weights is not None:
        sd = clean_state_dict(load_state_dict_file(weights))
        from_sd = getattr(spec.cls, "from_state_dict", None)
        model = from_sd(sd) if from_sd is not None else create_model(name, metric=metric, weights=weights)
    elif pretrained:
        model = create_model(name, metric=metric, pretrained=True)
    else:
        raise InvalidArgumentError(
            f"model {name!r} needs weights: pass --weights <file.safetensors> or --pretrained "
            "(a random initialisation cannot be decoded by anyone else)"
        )
    model = model.to(device).eval()
    model.update()
    return model


def check_output(path: Path, overwrite: bool) -> None:
    """Refuse to replace an existing file unless ``--overwrite``."""
    if path.exists() and not overwrite:
        raise FileExistsError(f"{str(path)!r} exists; pass --overwrite or choose another -o")


def load_input(path: Path, device: str = "cpu") -> torch.Tensor:
    from compressai_rdc.data import load_image

    return load_image(path).unsqueeze(0).to(device)


def fixed_controls(model: nn.Module, x: torch.Tensor, rate: float, strategy: Optional[str]) -> Dict[str, Any]:
    """Controls of ``--rate R`` for this model: the gain ``rate``, and/or a quality map.

    Gain models get ``rate=R`` (plus ``q = v`` of ``--qmap-strategy`` if they
    take a map); quality-map-only models get ``qmap = Γ_R(v)``.
    """
    from compressai_rdc.ratecontrol import _accepts, rate_control

    has_rate = _accepts(model.compress, "rate") and hasattr(model, "levels")
    has_qmap = _accepts(model.compress, "qmap")
    if has_rate:
        controls: Dict[str, Any] = {"rate": float(rate)}
        if has_qmap and strategy is not None:
            controls.update(rate_control(model, x, control="level", qmap_strategy=strategy).controls(1.0))
        return controls
    if has_qmap:
        return rate_control(model, x, control="level", qmap_strategy=strategy or "uniform").controls(float(rate))
    if strategy is not None:
        raise InvalidArgumentError(f"--qmap-strategy is invalid for {type(model).__name__}: it takes no quality map")
    raise InvalidArgumentError(f"--rate is invalid for {type(model).__name__}: it has no continuous rate control")


# -- the command ----------------------------------------------------------------
def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", type=Path, help="input image (PNG, JPEG, ...)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output container (.rdc)")
    add_model_arguments(parser)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--rate", type=float, help="the model's rate control (RDC gain level; Γ level in [0, 2] for quality maps)")
    group.add_argument("--target-bpp", type=float, help="search the rate control for this bpp (container bytes = the rate of the decode at the weights' default β; see --layers)")
    parser.add_argument("--qmap-strategy", default=None, help="quality-map strategy (compressai-rdc qmap --help); default uniform")
    parser.add_argument("--layers", type=int, default=None, help="scalable residual layers to code (RDC models; default: those the default-β decode reads)")
    parser.add_argument("--method", choices=("brent", "golden"), default="brent", help="search method for --target-bpp")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")


def run(args: argparse.Namespace) -> int:
    from compressai_rdc import codec
    from compressai_rdc.registry import QMAP_STRATEGIES
    from compressai_rdc.ratecontrol import encode_to_target

    check_output(args.output, args.overwrite)
    if args.qmap_strategy is not None:
        QMAP_STRATEGIES.get(args.qmap_strategy)  # unknown names fail early, listing the valid ones
    model = load_model(args.model, args.weights, args.pretrained, args.metric, args.device)
    x = load_input(args.image, args.device)
    extra = {} if args.layers is None else {"layers": args.layers}
    if args.target_bpp is not None:
        if args.qmap_strategy is not None:
            extra["qmap_strategy"] = args.qmap_strategy
        data, report = encode_to_target(model, x, args.target_bpp, method=args.method, **extra)
        note = (
            f"target {report.target_bpp:.4f} bpp, {report.control}={report.value:.4f}, "
            f"{report.evaluations} rate estimates + {report.encodes} encode(s) in {report.seconds:.2f} s"
        )
    else:
        controls = dict(fixed_controls(model, x, args.rate, args.qmap_strategy), **extra)
        data = codec.encode(model, x, **controls)
        note = f"rate {args.rate:g}"
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(data)
    h, w = x.shape[-2:]
    print(f"{args.output}: {len(data)} bytes, {codec.bits_per_pixel(data):.4f} bpp ({w}x{h}, {args.model}; {note}){targeted_decode(model, data)}")
    return 0


def targeted_decode(model: "nn.Module", data: bytes) -> str:
    """Which decode these bytes are the rate of (RDC models): its β and the residual layers coded."""
    from compressai_rdc import codec

    beta = getattr(model, "default_beta", None)
    if beta is None:
        return ""
    header = codec.read_header(data)
    layers = f"{header.num_layers} residual layer(s) coded"
    if header.num_layers == 0:
        layers += "; --layers K codes K for decodes at β < 1"
    return f"\n  the stream is what a decode at β={beta:g} (these weights' default) reads: {layers}"
