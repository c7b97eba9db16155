"""``compressai-rdc encode``: an image file → a ``.rdc`` container, at a fixed control or a target bpp.

::

    compressai-rdc encode photo.png -o photo.rdc --model rdc-versatile --rate 3.5
    compressai-rdc encode photo.png -o photo.rdc --model hevrc --level 0.7 --qmap-strategy blended
    compressai-rdc encode photo.png -o photo.rdc --model hevrc --target-bpp 0.2 --qmap-strategy blended
    compressai-rdc encode photo.jpg -o photo.rdc --model rdc-qmap --weights w.safetensors --target-bpp 0.3 --layers 2

One name per control, as in ``eval`` and :mod:`compressai_rdc.ratecontrol`:
``--rate`` is the continuous gain level of the RDC models (0..L−1); ``--level``
is the Γ level ``t ∈ [0, 2]`` of a quality-map model (``q = t·v`` up to
``t = 1``, then rising to 1; with the default ``uniform`` strategy ``--level
0.3`` codes with ``q ≡ 0.3``). ``--target-bpp`` searches the model's control
and reports the real rate.

RDC models code, without ``--layers``, what a decode at the weights' default β
reads (for weights whose residual is untrained: β = 1, primary substreams only),
so the written bytes, and a ``--target-bpp``, are the rate of that decode; the
command says which. ``--layers K`` codes K residual layers for decodes at β < 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple, Union

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


def add_tile_argument(parser: argparse.ArgumentParser, verb: str) -> None:
    """``--tile PIXELS`` (0 = never tile): :mod:`compressai_rdc.utils.tiling`. Not given:
    the model's ``encode_tile`` / ``decode_tile`` hook."""
    default = "the model's encode_tile: 1024; hevrc, rdc-qmap 512" if verb == "analyse" else "the model's decode_tile: 1024; rdc-qmap 512"
    parser.add_argument("--tile", type=int, default=None,
                        help=f"{verb} images larger than this many pixels (height or width) in overlapping tiles of this side, "
                        f"in bounded memory (a multiple of 16; 64 for hevrc); 0 = never tile (default: {default})")


def decode_tile_value(tile: Optional[int]) -> "Union[int, None, str]":
    """:attr:`DecodeLimits.tile <compressai_rdc.limits.DecodeLimits>` for ``--tile`` (not given → the model's)."""
    from compressai_rdc.limits import MODEL_TILE

    return MODEL_TILE if tile is None else tile_value(tile)


def tile_value(tile: Optional[int]) -> "Union[int, None, str]":
    """The ``tile`` argument of :mod:`compressai_rdc.codec` for ``--tile`` (0 → ``None``,
    not given → :data:`compressai_rdc.codec.INHERIT`: the model's own default)."""
    if tile is None:
        from compressai_rdc.codec import INHERIT

        return INHERIT
    if tile < 0:
        raise InvalidArgumentError(f"--tile {tile} must be 0 (never tile) or a positive number of pixels")
    return tile or None


def load_model(name: str, weights: Optional[Path], pretrained: bool, metric: str = "mse", device: str = "cpu") -> nn.Module:
    """:func:`compressai_rdc.zoo.load_model` with the CLI's message for missing weights."""
    from compressai_rdc.zoo import load_model as zoo_load_model

    if weights is None and not pretrained:
        raise InvalidArgumentError(
            f"model {name!r} needs weights: pass --weights <file.safetensors> or --pretrained "
            "(a random initialisation cannot be decoded by anyone else)"
        )
    if weights is not None:
        from compressai_rdc.zoo._pretrained import verify_weights_file

        known, note = verify_weights_file(weights)  # a tampered copy of a zoo file raises ChecksumError
        if not known:
            print(f"note: {note}", file=sys.stderr)
    return zoo_load_model(name, weights, pretrained, metric, device)


def check_output(path: Path, overwrite: bool, *, inputs: Tuple[Path, ...] = ()) -> None:
    """Refuse to replace an existing file unless ``--overwrite``, and never an input
    (the same file under any name, ``--overwrite`` or not)."""
    for src in inputs:
        if path.exists() and src.exists() and os.path.samefile(path, src):
            raise InvalidArgumentError(
                f"output {str(path)!r} is the input file {str(src)!r}; writing it would destroy the source: choose another -o"
            )
    if path.exists() and not overwrite:
        raise FileExistsError(f"{str(path)!r} exists; pass --overwrite or choose another -o")


def load_input(path: Path, device: str = "cpu") -> torch.Tensor:
    from compressai_rdc.data import load_image

    return load_image(path).unsqueeze(0).to(device)


def fixed_controls(
    model: nn.Module, x: torch.Tensor, rate: Optional[float], strategy: Optional[str], level: Optional[float] = None
) -> Dict[str, Any]:
    """Controls of ``--rate R`` or ``--level T`` for this model.

    ``--rate``: gain models get ``rate=R`` (plus ``q = v`` of ``--qmap-strategy``
    if they take a map). ``--level``: models that take a map get ``qmap = Γ_T(v)``.
    """
    from compressai_rdc.contract import accepts
    from compressai_rdc.ratecontrol import rate_control

    has_rate = accepts(model.compress, "rate") and hasattr(model, "levels")
    has_qmap = accepts(model.compress, "qmap")
    if level is not None:
        if not has_qmap:
            raise InvalidArgumentError(f"--level is invalid for {type(model).__name__}: it takes no quality map (use --rate)")
        return rate_control(model, x, control="level", qmap_strategy=strategy or "uniform").controls(float(level))
    if has_rate:
        controls: Dict[str, Any] = {"rate": float(rate)}
        if has_qmap and strategy is not None:
            controls.update(rate_control(model, x, control="level", qmap_strategy=strategy).controls(1.0))
        return controls
    if has_qmap:
        raise InvalidArgumentError(
            f"--rate is the gain level of the RDC models; {type(model).__name__} has none: "
            "use --level (its quality-map level t in [0, 2])"
        )
    if strategy is not None:
        raise InvalidArgumentError(f"--qmap-strategy is invalid for {type(model).__name__}: it takes no quality map")
    raise InvalidArgumentError(f"--rate is invalid for {type(model).__name__}: it has no continuous rate control")


# -- the command ----------------------------------------------------------------
def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", type=Path, help="input image (PNG, JPEG, ...)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="output container (.rdc)")
    add_model_arguments(parser)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--rate", type=float, help="gain level of the RDC models (0..L-1)")
    group.add_argument("--level", type=float, help="quality-map level t in [0, 2] (hevrc, rdc-qmap): q = Γ_t(importance)")
    group.add_argument("--target-bpp", type=float, help="search the rate control for this bpp (container bytes = the rate of the decode at the weights' default β; see --layers)")
    parser.add_argument("--qmap-strategy", default=None, help="quality-map strategy (compressai-rdc qmap --help); default uniform")
    parser.add_argument("--layers", type=int, default=None, help="scalable residual layers to code (RDC models; default: those the default-β decode reads)")
    parser.add_argument("--method", choices=("brent", "golden", "bounded"), default="brent",
                        help="search method for --target-bpp (compressai_rdc.ratecontrol.search_rate)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    add_tile_argument(parser, "analyse")


def run(args: argparse.Namespace) -> int:
    from compressai_rdc import codec
    from compressai_rdc.registry import QMAP_STRATEGIES
    from compressai_rdc.codec import pad_multiple
    from compressai_rdc.contract import hooks
    from compressai_rdc.ratecontrol import encode_to_target
    from compressai_rdc.utils.tiling import Tiling, check_tile, tiling

    check_output(args.output, args.overwrite, inputs=(args.image,))
    if args.qmap_strategy is not None:
        QMAP_STRATEGIES.get(args.qmap_strategy)  # unknown names fail early, listing the valid ones
    model = load_model(args.model, args.weights, args.pretrained, args.metric, args.device)
    x = load_input(args.image, args.device)
    extra = {} if args.layers is None else {"layers": args.layers}
    if args.target_bpp is not None:
        if args.qmap_strategy is not None:
            extra["qmap_strategy"] = args.qmap_strategy
        tile = tile_value(args.tile)
        if tile == codec.INHERIT:
            tile = hooks(model).encode_tile
        cfg = None if tile is None else Tiling(check_tile(tile, pad_multiple(model)))
        with tiling(synthesis=cfg, analysis=cfg):  # the search's probes and its final codec.encode
            data, report = encode_to_target(model, x, args.target_bpp, method=args.method, **extra)
        note = (
            f"target {report.target_bpp:.4f} bpp, {report.control}={report.value:.4f}, "
            f"{report.evaluations} rate estimates + {report.encodes} encode(s) in {report.seconds:.2f} s"
        )
    else:
        controls = dict(fixed_controls(model, x, args.rate, args.qmap_strategy, args.level), **extra)
        data = codec.encode(model, x, tile=tile_value(args.tile), **controls)
        note = f"rate {args.rate:g}" if args.rate is not None else f"level {args.level:g}"
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
