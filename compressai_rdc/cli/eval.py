"""``compressai-rdc eval``: where a codec stands, in JSON, CSV, BD tables and plots.

Example (the docs' results)::

    compressai-rdc eval \\
        --dataset kodak=../shared/data/kodak --dataset imagenet-dev=../shared/data/imagenet-dev \\
        --codec jpeg --codec webp --codec avif \\
        --model rdc-versatile:weights=rdc.safetensors,rate=0|2|4|6,beta=0|1 \\
        --anchor avif --out results/eval

See :mod:`compressai_rdc.eval.spec` for the ``NAME:KEY=V1|V2,...`` grammar.
Under ``torchrun`` the images are sharded over the processes and rank 0 writes.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import List

from compressai_rdc.errors import InvalidArgumentError

EPILOG = """spec grammar: NAME[:KEY=V1|V2|...,KEY=V,...]; '|' sweeps a value (one operating point each).
  --codec jpeg:quality=10|30|50        Pillow JPEG/WebP/AVIF; other keys go to PIL.Image.save
  --compressai mbt2018-mean:checkpoint=a.safetensors|b.safetensors   (no checkpoint: random init, quality=1|2|...)
  --model rdc-versatile:weights=w.safetensors,rate=0|2|4|6,beta=0|1,layers=0|1
          keys: weights, pretrained, quality, metric, name (label); sweeps: rate, target_bpp, qmap, layers, beta
  --dataset NAME=DIR[:task=classification|detection|segmentation|none,protocol=full|crop256,limit=N,<task option>=V]
          limit=N: first N images of this dataset (overrides --limit)
          default task: classification for <idx>_<synset>.<ext> folders, else none (rate-distortion only)
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    g = parser.add_argument_group("what to evaluate")
    g.add_argument("--dataset", action="append", default=[], metavar="NAME=DIR[:OPTS]", help="dataset folder (repeatable)")
    g.add_argument("--codec", action="append", default=[], metavar="jpeg|webp|avif[:OPTS]", help="classical codec with a quality sweep (repeatable)")
    g.add_argument("--compressai", action="append", default=[], metavar="ARCH[:OPTS]", help="CompressAI zoo architecture (repeatable)")
    g.add_argument("--model", action="append", default=[], metavar="NAME[:OPTS]", help="registered compressai-rdc model (repeatable)")
    g.add_argument("--no-uncompressed", action="store_true", help="skip the uncompressed reference")
    g.add_argument("--metrics", default="psnr-rgb,ms-ssim-rgb", help="image metrics, comma-separated: psnr-rgb, ms-ssim-rgb, fsim (slow: about 3x the rest of the suite) (default: %(default)s)")
    g.add_argument("--limit", type=int, default=None, metavar="N", help="first N images of each dataset without its own limit= (quick runs)")
    o = parser.add_argument_group("outputs")
    o.add_argument("--out", type=Path, default=Path("eval-results"), help="output folder (default: %(default)s)")
    o.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty --out")
    o.add_argument("--anchor", default=None, help="codec label for BD tables (default: avif if evaluated, else the first codec)")
    o.add_argument("--bd-method", default="akima", choices=("akima", "pchip", "cubic"), help="BD interpolation (default: %(default)s)")
    o.add_argument("--no-plots", action="store_true", help="skip the plots")
    o.add_argument("--per-image", action="store_true", help="also write per-image CSV files")
    r = parser.add_argument_group("execution")
    r.add_argument("--device", default="auto", help="device for learned codecs, metrics and tasks (default: %(default)s = cuda when available, else cpu)")
    r.add_argument("--batch-size", type=int, default=32, help="decoded images per metric/task batch (default: %(default)s)")
    r.add_argument("--workers", type=int, default=0, help="data-loader processes (default: %(default)s)")
    r.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    r.add_argument("--quiet", action="store_true", help="no progress bars")


def command_line(args: argparse.Namespace) -> List[str]:
    """The arguments of this run, rebuilt from the parsed options (for ``report.md`` and ``run.json``)."""
    import shlex

    out: List[str] = []
    for flag, values in (("--dataset", args.dataset), ("--codec", args.codec), ("--compressai", args.compressai), ("--model", args.model)):
        for v in values:
            out += [flag, shlex.quote(v)]
    out += ["--metrics", args.metrics]
    for flag, value in (("--limit", args.limit), ("--anchor", args.anchor), ("--threads", args.threads)):
        if value is not None:
            out += [flag, str(value)]
    out += ["--device", args.device, "--batch-size", str(args.batch_size), "--out", str(args.out)]
    for flag, on in (("--no-uncompressed", args.no_uncompressed), ("--per-image", args.per_image), ("--no-plots", args.no_plots)):
        if on:
            out.append(flag)
    if args.bd_method != "akima":
        out += ["--bd-method", args.bd_method]
    return out


def run(args: argparse.Namespace) -> int:
    from compressai_rdc.eval.bd import bd_table
    from compressai_rdc.eval.build import build_codecs, build_dataset
    from compressai_rdc.eval.distributed import init_distributed
    from compressai_rdc.eval.metrics import resolve_metrics
    from compressai_rdc.eval.outputs import check_out_dir, markdown_bd, markdown_results, write_outputs
    from compressai_rdc.eval.plots import plot_dataset
    from compressai_rdc.eval.runner import run_evaluation

    if not args.dataset:
        raise InvalidArgumentError("give at least one --dataset NAME=DIR")
    if not (args.codec or args.compressai or args.model):
        raise InvalidArgumentError("give at least one --codec, --compressai or --model")
    if args.batch_size < 1:
        raise InvalidArgumentError(f"--batch-size must be >= 1, got {args.batch_size}")
    import torch

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.threads:
        torch.set_num_threads(args.threads)
    dist = init_distributed(args.device)
    device = f"cuda:{dist.local_rank}" if dist.enabled and args.device.startswith("cuda") else args.device
    metrics = resolve_metrics([m for m in args.metrics.split(",") if m.strip()])
    if dist.is_main:
        check_out_dir(args.out, args.overwrite)

    datasets = [build_dataset(t, device=device, batch_size=args.batch_size) for t in args.dataset]
    names = [d.name for d in datasets]
    if len(set(names)) != len(names):
        raise InvalidArgumentError(f"dataset names must be distinct, got {names}")
    codecs = build_codecs(args.codec, args.compressai, args.model)
    labels = [c.name for c in codecs]
    anchor = args.anchor or ("avif" if "avif" in labels else labels[0])
    if anchor not in labels:
        raise InvalidArgumentError(f"--anchor {anchor!r} is not an evaluated codec; evaluated: {', '.join(labels)}")

    results = run_evaluation(
        datasets,
        codecs,
        metrics=metrics,
        device=device,
        batch_size=args.batch_size,
        workers=args.workers,
        limit=args.limit,
        uncompressed=not args.no_uncompressed,
        dist=dist,
        progress=not args.quiet,
        keep_per_image=args.per_image,
    )
    if not dist.is_main:
        return 0

    rate_keys = {c.name: c.rate_keys for c in codecs}
    task_metrics = {d.name: (d.task.primary_metric if d.task is not None else None) for d in datasets}
    bd_rows = bd_table(results, anchor, rate_keys, task_metrics, method=args.bd_method)
    plots = []
    if not args.no_plots:
        for d in datasets:
            plots += plot_dataset(results, d.name, args.out / "plots", rate_keys, list(d.task.metric_names) if d.task is not None else [])
    files = write_outputs(results, args.out, bd_rows=bd_rows, plots=plots, argv=command_line(args), per_image=args.per_image, rate_keys=rate_keys)
    print(markdown_results(results))
    if bd_rows:
        print(markdown_bd(bd_rows))
    print(f"wrote {len(files) + len(plots)} files to {args.out}/ (report.md, results.csv, bd.md, plots/)")
    return 0


__all__ = ["configure", "run"]
