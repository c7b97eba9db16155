"""Evaluate the shipped rdc-versatile against JPEG, WebP and AVIF, through the library API.

    python examples/evaluate.py --data ../shared/data/kodak --out eval-example
    python examples/evaluate.py --limit 2 --rates 0,7          # quick

The same as ``compressai-rdc eval --dataset kodak=DIR --codec jpeg --codec webp --codec avif
--model rdc-versatile:pretrained=true,rate=...``; rates are the bytes each decode reads
(the shipped weights decode at β = 1: primary substreams only). Writes CompressAI-style JSON
(one curve per file), results.csv and BD tables to ``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from compressai_rdc.data import sample_image_path
from compressai_rdc.eval import bd_table, run_evaluation
from compressai_rdc.eval.build import build_codecs, build_dataset
from compressai_rdc.eval.outputs import markdown_bd, markdown_results, write_outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(sample_image_path().parent), help="image folder (default: the bundled sample)")
    parser.add_argument("--rates", default="0,2,4,7", help="rdc-versatile rate levels")
    parser.add_argument("--limit", type=int, default=None, help="first N images")
    parser.add_argument("--out", type=Path, default=Path("eval-example"))
    args = parser.parse_args()

    limit = f",limit={args.limit}" if args.limit else ""
    dataset = build_dataset(f"images={args.data}:task=none{limit}")
    rates = "|".join(r.strip() for r in args.rates.split(","))
    codecs = build_codecs(["jpeg", "webp", "avif"], [], [f"rdc-versatile:pretrained=true,rate={rates}"])
    results = run_evaluation([dataset], codecs, metrics=("psnr-rgb", "ms-ssim-rgb"), progress=False)
    rate_keys = {c.name: c.rate_keys for c in codecs}
    bd = bd_table(results, "avif", rate_keys, {dataset.name: None})
    write_outputs(results, args.out, bd_rows=bd, rate_keys=rate_keys)
    print(markdown_results(results))
    print(markdown_bd(bd))
    print(f"wrote {args.out}/")


if __name__ == "__main__":
    main()
