"""The ``compressai-rdc`` command line. Sub-commands are registered by plugins
through the ``register_commands`` hook (built-in ones too)."""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from compressai_rdc import __version__
from compressai_rdc.errors import RDCError
from compressai_rdc.registry import COMMANDS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="compressai-rdc",
        description="Rate-distortion-cognition controllable image codecs for CompressAI.",
    )
    parser.add_argument("--version", action="version", version=f"compressai-rdc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for cmd in COMMANDS.entries():
        p = sub.add_parser(cmd.name, help=cmd.obj.help, description=cmd.obj.help)
        cmd.obj.configure(p)
        p.set_defaults(_run=cmd.obj.run)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point; returns the exit status (also usable from tests)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    from compressai_rdc.utils.malloc import tune_from_env

    tune_from_env()  # large feature maps are reused, not re-mapped per image (utils/malloc.py)
    try:
        return int(args._run(args) or 0)
    except (RDCError, FileExistsError) as exc:
        print(f"compressai-rdc {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
