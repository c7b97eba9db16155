"""``compressai-rdc truncate``: keep the first k residual layers of a ``.rdc`` container.

::

    compressai-rdc truncate photo.rdc -o photo-l1.rdc --layers 1
    compressai-rdc truncate photo.rdc -o photo-primary.rdc --layers 0   # what a β = 1 decode reads

No model or weights are needed and nothing is decoded: the result is a valid
container whose substreams are byte-identical to the input's first ones
(:func:`compressai_rdc.codec.truncate`), so a server can cut a stream to a
client's rate.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, help="container written by `compressai-rdc encode`")
    parser.add_argument("-o", "--output", type=Path, required=True, help="truncated container (.rdc)")
    parser.add_argument("--layers", type=int, required=True, help="residual layers to keep (0 = primary substreams only)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")


def run(args: argparse.Namespace) -> int:
    from compressai_rdc import codec
    from compressai_rdc.cli.encode import check_output
    from compressai_rdc.errors import DatasetError

    check_output(args.output, args.overwrite)
    if not args.input.is_file():
        raise DatasetError(f"container file not found: {str(args.input)!r}")
    data = args.input.read_bytes()
    out = codec.truncate(data, args.layers)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(out)
    header = codec.read_header(data)
    print(
        f"{args.output}: kept {args.layers} of {header.num_layers} residual layers, {len(out)} of {len(data)} bytes "
        f"({codec.bits_per_pixel(out):.4f} of {codec.bits_per_pixel(data):.4f} bpp)"
    )
    return 0
