"""Quickstart: encode once, decode for machines (β = 1) and for people (β = 0), truncate.

    python examples/quickstart.py                     # the bundled sample image, shipped weights
    python examples/quickstart.py --image photo.png --rate 5

The rate printed for each decode is the bytes that decode reads: a β = 1 decode
reads only the primary substreams, whatever else the stream holds.
"""

from __future__ import annotations

import argparse
import math

import torch

import compressai_rdc
from compressai_rdc import codec
from compressai_rdc.data import load_image, sample_image_path


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1.0 / float(torch.mean((a - b) ** 2)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", default=None, help="input image (default: the bundled sample)")
    parser.add_argument("--rate", type=float, default=3.5, help="primary rate level in [0, 7]")
    parser.add_argument("--size", type=int, default=None, help="crop the image to SIZE x SIZE first (quick runs)")
    args = parser.parse_args()

    net = compressai_rdc.create_model("rdc-versatile", pretrained=True)  # offline, sha256-verified
    net.update()
    print(f"rdc-versatile: the shipped weights decode best at β = {net.default_beta:g} (their decode_beta)")
    x = load_image(args.image or sample_image_path()).unsqueeze(0)  # (1, 3, H, W) in [0, 1]
    if args.size:
        x = x[..., : args.size, : args.size]
    pixels = x.shape[-2] * x.shape[-1]

    # code every residual layer, so that both decodes below are possible from one stream
    data = codec.encode(net, x, rate=args.rate, layers=net.residual_layers)
    print(f"stream: {len(data)} bytes, {codec.read_header(data).num_layers} residual layers")
    for beta in (1.0, 0.0):
        x_hat = codec.decode(data, net, beta=beta)
        read = codec.bytes_read(data, net, beta=beta)
        print(f"β = {beta:g}: {8 * len(read) / pixels:.4f} bpp read, PSNR {psnr(x_hat, x):.2f} dB")

    # a server can cut the stream to fewer residual layers without decoding (CLI: compressai-rdc truncate)
    for k in range(net.residual_layers + 1):
        cut = codec.truncate(data, k)
        x_hat = codec.decode(cut, net, beta=0.0)
        print(f"{k} residual layer(s): {8 * len(cut) / pixels:.4f} bpp, PSNR {psnr(x_hat, x):.2f} dB at β = 0")


if __name__ == "__main__":
    main()
