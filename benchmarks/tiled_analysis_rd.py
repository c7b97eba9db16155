"""Rate–distortion cost of the tiled analysis transform on Kodak.

::

    nice -n 19 python benchmarks/tiled_analysis_rd.py --images 4 --tiles 256 512 --halos 0 1 exact

Encodes the first ``--images`` Kodak images with the shipped ``rdc-versatile``
weights (``--random`` for random weights at the registered widths) untiled and
with the analysis in tiles of each ``--tiles`` side and each ``--halos`` halo
(latent units; ``exact``: the halo derived from the receptive field, 2 for
``g_a``), decodes every stream (untiled synthesis) and prints, per
configuration, the mean bpp (container bytes) and PSNR and their differences to
the untiled encode, plus the fraction of streams whose bytes equal the
untiled ones. One JSON line per configuration.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--kodak", type=Path, default=None, help="Kodak folder (default: the shared data's kodak/)")
    p.add_argument("--images", type=int, default=4)
    p.add_argument("--tiles", type=int, nargs="+", default=[256, 512])
    p.add_argument("--halos", nargs="+", default=["0", "1", "exact"])
    p.add_argument("--rate", type=float, default=None, help="gain level (default: the model's default rate)")
    p.add_argument("--random", action="store_true")
    args = p.parse_args(argv)

    import torch

    from compressai_rdc import codec
    from compressai_rdc.data import find_data_dir, load_image
    from compressai_rdc.errors import DatasetError
    from compressai_rdc.utils.tiling import Tiling
    from compressai_rdc.zoo import create_model

    torch.set_num_threads(1)
    folder = args.kodak or find_data_dir("kodak")
    if folder is None:
        raise DatasetError("Kodak not found: pass --kodak or set the shared data folder")
    files = sorted(f for f in Path(folder).iterdir() if f.suffix.lower() in (".png", ".jpg", ".bmp"))[: args.images]
    torch.manual_seed(0)
    net = (create_model("rdc-versatile") if args.random else create_model("rdc-versatile", metric="mse", pretrained=True)).eval()
    net.update(force=True)
    controls = {} if args.rate is None else {"rate": args.rate}

    def run(x, tile):
        data = codec.encode(net, x, tile=tile, **controls)
        mse = float(((codec.decode(data, net) - x) ** 2).mean())
        return data, codec.bits_per_pixel(data), -10.0 * torch.log10(torch.tensor(mse)).item()

    images = [load_image(f).unsqueeze(0) for f in files]
    base = [run(x, None) for x in images]
    mean = lambda v: sum(v) / len(v)  # noqa: E731
    print(json.dumps({"tile": None, "halo": None, "images": len(files), "bpp": round(mean([b[1] for b in base]), 5),
                      "psnr": round(mean([b[2] for b in base]), 4)}), flush=True)
    for tile in args.tiles:
        for halo in args.halos:
            cfg = Tiling(tile, None if halo == "exact" else int(halo))
            rows = [run(x, cfg) for x in images]
            print(json.dumps({
                "tile": tile, "halo": halo, "images": len(files),
                "bpp": round(mean([r[1] for r in rows]), 5), "psnr": round(mean([r[2] for r in rows]), 4),
                "delta_bpp_percent": round(100 * mean([(r[1] - b[1]) / b[1] for r, b in zip(rows, base)]), 4),
                "delta_psnr_db": round(mean([r[2] - b[2] for r, b in zip(rows, base)]), 5),
                "identical_bytes": f"{sum(r[0] == b[0] for r, b in zip(rows, base))}/{len(files)}",
            }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
