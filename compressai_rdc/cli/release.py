"""``compressai-rdc release``: continue the shipped weights' training for N minutes.

Examples::

    compressai-rdc release rdc-versatile --minutes 120 --device cpu            # train, export, evaluate, ledger row
    compressai-rdc release rdc-versatile --minutes 120 --device cpu --ship     # … and replace the shipped weights when better
    compressai-rdc release rdc-versatile --status                              # where the plan stands
    compressai-rdc release rdc-versatile --minutes 9 --device cuda --no-eval   # a GPU chunk: train and export only …
    compressai-rdc release rdc-versatile --adopt rdc-versatile-stage0.export.safetensors --ship   # … evaluated and shipped here
    compressai-rdc release mbt2018-mean-baseline --minutes 120 --ship          # the same-budget baseline (benchmarks/weights/)
    compressai-rdc release rdc-versatile --minutes 120 --restart stage1 --init-weights stage0.safetensors   # a stage anew
    compressai-rdc release rdc-versatile --compare shipped=eval-a/results.csv --compare kd=eval-b/results.csv  # at equal rate

See :mod:`compressai_rdc.training.release` and the training guide ("Release training").
"""

from __future__ import annotations

import argparse
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="a release plan: rdc-versatile, or mbt2018-mean-baseline (the same-budget baseline)")
    parser.add_argument("--minutes", type=float, default=None, help="wall-clock budget of this chunk, evaluation included")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    parser.add_argument("--runs", type=Path, default=Path("runs/release"), help="run folders and exports (default: %(default)s)")
    parser.add_argument("--data", type=Path, default=None, help="data folder with train/, kodak/, imagenet-dev/ (default: ../shared/data)")
    parser.add_argument("--eval-minutes", type=float, default=12.0, help="time kept for export and evaluation (default: %(default)s)")
    parser.add_argument("--no-eval", action="store_true", help="train and export only (no evaluation, no ledger row)")
    parser.add_argument("--ship", action="store_true", help="replace the shipped weights (and the manifest entry) when the candidate is better")
    parser.add_argument("--ledger", type=Path, default=Path("docs/results.md"), help="page holding the training ledger (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--status", action="store_true", help="print where the plan stands and exit")
    parser.add_argument("--restart", default=None, metavar="STAGE",
                        help="start STAGE afresh (after a recipe change): its run folder and the later stages' move to RUNS/replaced/")
    parser.add_argument("--init-weights", type=Path, default=None, metavar="FILE",
                        help="with --restart: the weights the stage starts from (an export of the stage before)")
    parser.add_argument("--adopt", type=Path, default=None, metavar="EXPORT",
                        help="evaluate an export of a chunk run elsewhere (--no-eval on a GPU), ship it when better, add its ledger row")
    parser.add_argument("--compare", action="append", default=[], metavar="LABEL=RESULTS_CSV",
                        help="print the β = 1 curves of evaluations (repeatable) at equal rate (--at) and exit")
    parser.add_argument("--at", default="0.15,0.2,0.26,0.4", metavar="BPP[,BPP...]",
                        help="with --compare: the rates to compare at (default: %(default)s)")
    parser.add_argument("--codec", default="beta1", help="with --compare: the codec label of the curves (default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    import json

    import torch

    from compressai_rdc.errors import InvalidArgumentError
    from compressai_rdc.training.release import (
        adopt, continue_release, equal_rate_table, manifest_path, plan_for, read_manifest, where_it_stands,
    )

    plan = plan_for(args.model)
    if args.compare:
        pairs = [item.split("=", 1) for item in args.compare]
        if any(len(p) != 2 or not p[0] for p in pairs):
            raise InvalidArgumentError(f"--compare takes LABEL=RESULTS_CSV, got {args.compare}")
        try:
            at = [float(b) for b in args.at.split(",")]
        except ValueError:
            raise InvalidArgumentError(f"--at takes comma-separated bpp values, got {args.at!r}") from None
        print(equal_rate_table({label: Path(path) for label, path in pairs}, at, args.codec))
        return 0
    if (args.restart is not None or args.init_weights is not None) and (args.status or args.adopt is not None):
        raise InvalidArgumentError("--restart / --init-weights start a training chunk: not with --status or --adopt")
    if args.status:
        pos = where_it_stands(plan, args.runs)
        print(f"{args.model}: {pos.describe(plan)}")
        print(json.dumps(read_manifest(manifest_path(plan)).get(args.model, {}), indent=2))
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.adopt is not None:
        report = adopt(args.model, args.adopt, data=args.data, runs=args.runs, ship=args.ship, ledger=args.ledger, threads=args.threads)
    elif args.minutes is None:
        raise InvalidArgumentError("release needs --minutes N (the chunk's wall-clock budget), --adopt EXPORT or --status")
    else:
        report = continue_release(
            args.model, args.minutes, device=args.device, runs=args.runs, data=args.data, eval_minutes=args.eval_minutes,
            evaluate_after=not args.no_eval, ship=args.ship, ledger=None if args.no_eval else args.ledger, threads=args.threads,
            restart=args.restart, init_weights=args.init_weights,
        )
    print(f"[release] {report.stage}: steps {report.step_from}→{report.step_to}, {report.images:,} images, "
          f"{report.minutes:.1f} min; export {report.export}")
    if report.eval:
        print(json.dumps({k: v for k, v in report.eval.items() if k != "curves"}, indent=2))
        print(f"evaluated with: {report.eval_command}")
        print("shipped" if report.shipped else "not shipped (not better than the shipped weights, or --ship not given)")
    return 0
