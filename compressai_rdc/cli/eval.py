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
from typing import List, Optional, Tuple

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
    r.add_argument("--threads", type=int, default=None, help="torch CPU threads per process (default: 1 per process with --jobs auto, else torch's)")
    r.add_argument("--jobs", default="auto", metavar="N|auto", help="processes sharing the images (like torchrun; default: %(default)s = one per "
                   "CPU core on the CPU when --threads is not given, else 1)")
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
    if str(args.jobs) != "auto":
        out += ["--jobs", str(args.jobs)]
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
    if args.threads is not None and args.threads < 1:
        raise InvalidArgumentError(f"--threads must be >= 1, got {args.threads}")
    worker = getattr(args, "dist_rank", None) is not None  # a process started by launch()
    jobs, threads = (1, args.dist_threads) if worker else plan_jobs(args.jobs, args.threads, args.device)
    if jobs > 1:
        precheck(args)
        check_out_dir(args.out, args.overwrite)
        return launch(args, jobs, threads)
    if threads:
        torch.set_num_threads(threads)
    dist = init_distributed(args.device)
    device = f"cuda:{dist.local_rank}" if dist.enabled and args.device.startswith("cuda") else args.device
    metrics = resolve_metrics([m for m in args.metrics.split(",") if m.strip()])
    if dist.is_main and not worker:
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


def precheck(args: argparse.Namespace) -> None:
    """What can be checked without building a model or a task, checked before processes
    start (the rest is checked in them and raised again here by :func:`launch`)."""
    from compressai_rdc.eval.build import build_classical_codec, detect_task
    from compressai_rdc.eval.codecs import check_compressai_architecture
    from compressai_rdc.eval.metrics import resolve_metrics
    from compressai_rdc.eval.spec import parse_dataset, parse_spec
    from compressai_rdc.registry import MODELS

    resolve_metrics([m for m in args.metrics.split(",") if m.strip()])
    for text in args.dataset:
        detect_task(parse_dataset(text).root)  # the folder exists
    labels = [build_classical_codec(parse_spec(t)).name for t in args.codec]
    for text in args.compressai:
        spec = parse_spec(text)
        check_compressai_architecture(spec.name)
        labels.append(spec.single("name", spec.name))
    for text in args.model:
        spec = parse_spec(text)
        MODELS.get(spec.name)  # UnknownNameError with the registered names
        labels.append(spec.single("name", spec.name))
    if args.anchor is not None and args.anchor not in labels:
        raise InvalidArgumentError(f"--anchor {args.anchor!r} is not an evaluated codec; evaluated: {', '.join(labels)}")


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def plan_jobs(jobs: str, threads: Optional[int], device: str) -> Tuple[int, Optional[int]]:
    """``(processes, torch threads per process)`` for ``--jobs``/``--threads`` on ``device``.

    ``auto`` shards the images over one single-threaded process per core on the
    CPU (per-image work at 256² is too small for intra-op threads to pay: the whole
    suite took 613 s with 1 × 2 threads, see docs/evaluation.md) unless ``--threads``
    was given (the user chose how many cores to use), the device is a GPU, or this
    process registered something at run time (a script's or a notebook's own model or
    task: a fresh process would not have it). Under ``torchrun`` the launcher already
    made the processes: 1 here.
    """
    import os

    from compressai_rdc._plugins import runtime_registrations

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        if str(jobs) not in ("auto", "1"):
            raise InvalidArgumentError(f"--jobs {jobs} under torchrun: the processes are torchrun's (--nproc_per_node); valid: --jobs auto or 1")
        return 1, threads
    if str(jobs) == "auto":
        # runtime registrations (a script's own model or task) would be missing in a fresh process
        if threads is not None or not device.startswith("cpu") or runtime_registrations():
            return 1, threads
        n = available_cores()
        return n, 1 if n > 1 else None
    try:
        n = int(jobs)
    except ValueError:
        n = 0
    if n < 1:
        raise InvalidArgumentError(f"--jobs {jobs!r} is invalid; valid: a positive integer or 'auto'")
    local = runtime_registrations() if n > 1 else []
    if local:
        raise InvalidArgumentError(f"--jobs {n}: registered in this process at run time, so other processes cannot see them: "
                                   f"{', '.join(local)}; valid: --jobs 1 (or register them through an entry point)")
    if n > 1 and not device.startswith("cpu"):
        raise InvalidArgumentError(f"--jobs {n} on {device}: processes share one device badly; valid on a GPU: --jobs 1 (or torchrun, one process per GPU)")
    if n > 1 and threads is None:
        threads = max(1, available_cores() // n)
    return n, threads


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(args: argparse.Namespace, jobs: int, threads: Optional[int]) -> int:
    """Run this evaluation in ``jobs`` processes (the ``torchrun`` code path, started here).

    Rank 0 aggregates and writes, as under ``torchrun``. When a process fails the
    others are stopped; a typed error of a process is raised here again, with its
    type and message, so that a run with several processes fails exactly like one
    with a single process.
    """
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    errors = ctx.SimpleQueue()
    try:
        mp.start_processes(_worker, args=(args, jobs, threads, _free_port(), errors), nprocs=jobs, join=True, start_method="spawn")
    except mp.ProcessExitedException as exc:
        if not errors.empty():
            raise _rebuild(*errors.get()) from None
        return int(exc.exit_code) if exc.exit_code and exc.exit_code > 0 else 1
    return 0


def _rebuild(module: str, name: str, message: str) -> Exception:
    """The exception a worker raised: its class (an ``RDCError`` or ``FileExistsError``), its message."""
    import importlib

    from compressai_rdc.errors import RDCError

    cls = getattr(importlib.import_module(module), name, None)
    if not (isinstance(cls, type) and issubclass(cls, (RDCError, FileExistsError))):
        cls = RDCError
    exc = cls.__new__(cls)  # not __init__: error classes take their own arguments (UnknownNameError)
    exc.args = (message,)
    return exc


def _worker(rank: int, args: argparse.Namespace, jobs: int, threads: Optional[int], port: int, errors) -> None:
    import os
    import sys

    from compressai_rdc.errors import RDCError
    from compressai_rdc.training.distributed import teardown
    from compressai_rdc.utils.malloc import tune_from_env

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(jobs))
    tune_from_env()
    args.dist_rank, args.dist_threads = rank, threads  # args.threads stays as given (the report's command line)
    try:
        status = run(args)
    except (RDCError, FileExistsError) as exc:
        errors.put((type(exc).__module__, type(exc).__qualname__, str(exc)))
        teardown(sync=False)
        sys.exit(2)
    teardown()
    if status:
        sys.exit(int(status))


__all__ = ["available_cores", "configure", "launch", "plan_jobs", "precheck", "run"]
