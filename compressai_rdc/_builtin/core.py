"""Built-in plugin: the core CLI commands (``plugins``, ``models``, ``encode``, ``decode``, ``eval-model``, ``demo``)."""

from __future__ import annotations

import argparse

from compressai_rdc.hookspecs import hookimpl


def _configure_eval_model(parser: argparse.ArgumentParser) -> None:
    parser.usage = "compressai-rdc eval-model [-h] [--beta BETA] {pretrained,checkpoint} DATASET -a ARCH ..."
    parser.add_argument(
        "--beta", type=float, default=None,
        help="decode β of models with a β control (default: the weights' decode_beta; see `compressai-rdc models`)",
    )
    parser.add_argument(
        "args", nargs=argparse.REMAINDER,
        help="CompressAI's eval_model arguments (`compressai-rdc eval-model pretrained --help` lists them)",
    )


def _run_eval_model(args: argparse.Namespace) -> int:
    from compressai_rdc.eval_model import main

    main(args.args, beta=args.beta)
    return 0


@hookimpl
def register_commands(register):
    from compressai_rdc.cli import decode, demo, encode, models, plugins, truncate

    register("plugins", plugins.configure, run=plugins.run, help="list plugins, their versions and what they registered")
    register("models", models.configure, run=models.run, help="list registered codecs")
    register("encode", encode.configure, run=encode.run, help="compress an image to a .rdc container (fixed rate or target bpp)")
    register("decode", decode.configure, run=decode.run, help="decode a .rdc container to an image (decode-time beta / layers)")
    register("truncate", truncate.configure, run=truncate.run, help="keep the first k residual layers of a .rdc container (no model needed)")
    register("demo", demo.configure, run=demo.run, help="code the sample image at several rates and betas with the shipped weights")
    register(
        "eval-model",
        _configure_eval_model,
        run=_run_eval_model,
        help="run CompressAI's eval_model with plugin models available",
    )
