"""``compressai-rdc train``: run a training recipe, resumable in wall-clock chunks.

Examples::

    compressai-rdc train rdc-versatile-stage1 --out runs/rdc1 --device cuda --max-minutes 9
    compressai-rdc train --out runs/rdc1 --resume --max-minutes 9                           # next chunk
    compressai-rdc train --out runs/rdc1 --resume --set data.batch_size=8                   # next chunk, changed
    compressai-rdc train --out runs/rdc1 --resume --export rdc1.safetensors --max-steps 0
    torchrun --nproc_per_node 8 -m compressai_rdc train hevrc-stage1 --out runs/h1
    compressai-rdc train --list                                                            # shipped recipes

``--resume`` continues with the run's own ``OUT/config.yaml`` (the recipe is not
re-read); ``--set``, ``--data`` and ``--seed`` given on resume are applied on top,
printed, and recorded (``config.yaml`` updated, the previous one kept as
``config.step<N>.yaml``, the changes in ``summary.json``). A start-up summary
says what the run uses (device, speed switches, data folder and image count,
parameters, output folder).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", help="recipe config: a shipped name (see --list) or a YAML file path (not needed with --resume)")
    parser.add_argument("--out", help="run folder: checkpoint, log.csv, config.yaml, summary.json")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt with OUT/config.yaml (exact: model, optimizers, schedulers, queues, step)")
    parser.add_argument("--max-minutes", type=float, default=None, help="wall-clock budget; stops cleanly and saves a checkpoint before it runs out")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many total steps (overrides the config's steps for this call)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    parser.add_argument("--data", default=None, help="training image folder (default: the config's, else ../shared/data/train)")
    parser.add_argument("--init-weights", default=None, help="initialise the model from a .safetensors file (e.g. shipped fp16 weights, or the previous stage's export)")
    parser.add_argument("--export", default=None, help="after training, write the model's fp16 weights to this .safetensors file")
    parser.add_argument("--seed", type=int, default=None, help="override the config's seed")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config entry, dotted path, YAML value (e.g. --set data.batch_size=64)")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    parser.add_argument("--list", action="store_true", help="list the shipped recipe configs and exit")


def run(args: argparse.Namespace) -> int:
    from compressai_rdc.errors import InvalidArgumentError
    from compressai_rdc.training.recipes import list_configs, load_config
    from compressai_rdc.training import distributed
    from compressai_rdc.training.trainer import CheckpointError, Trainer

    if args.list:
        for name, desc in list_configs().items():
            print(f"{name:28s} {desc}")
        return 0
    if not args.out:
        raise InvalidArgumentError("train needs --out DIR (where checkpoints and logs go)")
    if args.resume:
        saved = Path(args.out) / "config.yaml"
        if not saved.is_file():
            raise CheckpointError(f"--resume: no checkpoint to continue in {args.out!r} (no config.yaml there: not a run folder)")
        config = load_config(str(saved), overrides=args.overrides)
        if args.config and args.config not in (config["name"], str(saved)):
            print(f"--resume continues {args.out} with its own config.yaml (recipe {config['name']!r}); "
                  f"{args.config!r} is not read. Change settings with --set KEY=VALUE.")
    elif not args.config:
        raise InvalidArgumentError("train needs a CONFIG (a shipped recipe name or a YAML path); see `compressai-rdc train --list`")
    else:
        config = load_config(args.config, overrides=args.overrides)
    if args.export and Path(args.export).exists():  # before training, not after hours of it
        raise InvalidArgumentError(f"--export {str(args.export)!r} exists; remove it or choose another path")
    if args.data is not None:
        config["data"]["train"] = args.data
    if args.seed is not None:
        config["seed"] = args.seed
    ok = False
    try:
        trainer = Trainer(
            config,
            args.out,
            device=args.device,
            resume=args.resume,
            init_weights=args.init_weights,
            progress=not args.no_progress,
        )
        trainer.fit(max_minutes=args.max_minutes, max_steps=args.max_steps)
        if args.export:
            path, digest = trainer.export(args.export)
            if trainer.is_main:
                print(f"exported {path} sha256={digest}")
        ok = True
    finally:
        distributed.teardown(sync=ok)  # gloo threads must be joined before exit (see teardown)
    return 0
