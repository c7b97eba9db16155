"""``compressai-rdc decode``: a ``.rdc`` container → an image file.

::

    compressai-rdc decode photo.rdc -o photo.png --weights w.safetensors [--beta 0.5] [--layers 1]

The model name comes from the container; the weights must be the ones that
encoded it (the container stores their hash). ``--beta`` and ``--layers`` are
decode-time controls of the RDC models (β interpolation, scalable residual
layers); a quality map is never needed. ``--max-pixels`` / ``--max-memory-mb``
bound what a stream may make the decoder allocate (:mod:`compressai_rdc.limits`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from compressai_rdc.cli.encode import add_model_arguments, check_output, load_model


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="container written by `compressai-rdc encode`")
    parser.add_argument("-o", "--output", type=Path, required=True, help="decoded image (.png, ...)")
    add_model_arguments(parser, with_name=False)
    parser.add_argument("--beta", type=float, default=None, help="cognition/distortion interpolation β in [0, 1] (RDC models)")
    parser.add_argument("--layers", type=int, default=None, help="use only the first k residual layers")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.add_argument("--max-pixels", type=int, default=None,
                        help="refuse streams with more padded pixels (B x H x W) than this (default 2^24)")
    parser.add_argument("--max-memory-mb", type=int, default=None,
                        help="refuse streams whose decode plans for more memory than this, MiB (default 4096)")


def run(args: argparse.Namespace) -> int:
    from compressai_rdc import codec
    from compressai_rdc.data import save_image
    from compressai_rdc.errors import DatasetError
    from compressai_rdc.limits import DecodeLimits

    check_output(args.output, args.overwrite, inputs=(args.input,))
    if not args.input.is_file():
        raise DatasetError(f"container file not found: {str(args.input)!r}")
    limits = DecodeLimits(**{k: v for k, v in (("max_pixels", args.max_pixels),
                                               ("max_memory", None if args.max_memory_mb is None else args.max_memory_mb << 20))
                             if v is not None})
    data = args.input.read_bytes()
    header = codec.read_header(data)
    model = load_model(header.model_name, args.weights, args.pretrained, args.metric, args.device)
    controls = {} if args.beta is None else {"beta": args.beta}
    x_hat = codec.decode(data, model, layers=args.layers, limits=limits, **controls)
    save_image(x_hat.clamp(0, 1).cpu(), args.output)
    used = data if args.layers is None else codec.truncate(data, args.layers)
    print(f"{args.output}: {header.width}x{header.height} from {header.model_name}, {codec.bits_per_pixel(used):.4f} bpp used")
    return 0
