"""``compressai-rdc decode``: a ``.rdc`` container → an image file.

::

    compressai-rdc decode photo.rdc -o photo.png --weights w.safetensors [--beta 0.5] [--layers 1]

The model name comes from the container; the weights must be the ones that
encoded it (the container stores their hash). ``--beta`` and ``--layers`` are
decode-time controls of the RDC models (β interpolation, scalable residual
layers); a quality map is never needed. Without ``--beta`` the model's default
β is used: the ``decode_beta`` of the zoo weights (1 for weights whose residual
branch is untrained), else 0. ``--max-pixels`` / ``--max-memory-mb`` bound what
a stream may make the decoder allocate (:mod:`compressai_rdc.limits`); images
larger than ``--tile`` pixels (default 1024) are synthesised in tiles of that
side, in bounded memory, with the untiled result (``--tile 0``: never tile).

The printed rate is the bytes of the substreams this decode read (β = 1 reads
the primary substreams only), next to the size of the whole stream.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Tuple

from compressai_rdc.cli.encode import add_model_arguments, add_tile_argument, check_output, decode_tile_value, load_model


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="container written by `compressai-rdc encode`")
    parser.add_argument("-o", "--output", type=Path, required=True, help="decoded image (.png, .bmp, .tif, .webp, .jpg, ...)")
    add_model_arguments(parser, with_name=False)
    parser.add_argument("--beta", type=float, default=None, help="cognition/distortion interpolation β in [0, 1] (RDC models; default: the weights' decode_beta)")
    parser.add_argument("--layers", type=int, default=None, help="use only the first k residual layers")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.add_argument("--max-pixels", type=int, default=None,
                        help="refuse streams with more padded pixels (B x H x W) than this (default 2^24)")
    parser.add_argument("--max-memory-mb", type=int, default=None,
                        help="refuse streams whose decode plans for more memory than this, MiB (default 4096)")
    add_tile_argument(parser, "synthesise")


def check_image_output(path: Path, overwrite: bool, *, inputs: Tuple[Path, ...] = ()) -> None:
    """Refuse, before any decoding, an output that is a folder, has no image
    extension Pillow can write, exists (without ``--overwrite``) or is an input."""
    from PIL import Image

    from compressai_rdc.errors import InvalidArgumentError

    if path.is_dir():
        raise InvalidArgumentError(f"-o {str(path)!r} is a folder; give an image file name such as {str(path / 'decoded.png')!r}")
    check_output(path, overwrite, inputs=inputs)
    Image.init()
    writable = sorted(ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.SAVE)
    if path.suffix.lower() not in writable:
        common = [e for e in (".png", ".bmp", ".tif", ".tiff", ".webp", ".jpg", ".jpeg", ".ppm") if e in writable]
        raise InvalidArgumentError(
            f"-o {str(path)!r} has no image extension Pillow can write ({path.suffix or 'none'}); "
            f"valid: {', '.join(common)} (lossless: .png)"
        )


def run(args: argparse.Namespace) -> int:
    from compressai_rdc import codec
    from compressai_rdc.data import save_image
    from compressai_rdc.errors import DatasetError
    from compressai_rdc.limits import DecodeLimits

    check_image_output(args.output, args.overwrite, inputs=(args.input,))
    if not args.input.is_file():
        raise DatasetError(f"container file not found: {str(args.input)!r}")
    limits = DecodeLimits(**{k: v for k, v in (("max_pixels", args.max_pixels),
                                               ("max_memory", None if args.max_memory_mb is None else args.max_memory_mb << 20))
                             if v is not None}, tile=decode_tile_value(args.tile))
    data = args.input.read_bytes()
    header = codec.read_header(data)
    model = load_model(header.model_name, args.weights, args.pretrained, args.metric, args.device)
    controls = {} if args.beta is None else {"beta": args.beta}
    x_hat = codec.decode(data, model, layers=args.layers, limits=limits, **controls)
    save_image(x_hat.clamp(0, 1).cpu(), args.output)
    used = codec.bytes_read(data, model, layers=args.layers, **controls)
    read = codec.read_header(used).num_layers
    beta = args.beta if args.beta is not None else getattr(model, "default_beta", None)
    at = "" if beta is None else f" at β={beta:g}" + (" (the weights' default)" if args.beta is None else "")
    print(
        f"{args.output}: {header.width}x{header.height} from {header.model_name}{at}; read {len(used)} of {len(data)} bytes "
        f"({read} of {header.num_layers} residual layers): {codec.bits_per_pixel(used):.4f} bpp "
        f"(whole stream {codec.bits_per_pixel(data):.4f} bpp)"
    )
    return 0
