"""The CLI reference page (``docs/cli.md``), rendered from the argparse parsers themselves.

::

    python -m compressai_rdc.cli.reference docs/cli.md     # rewrite the page

``tests/test_cli_reference.py`` fails when the page differs from what the
parsers print, so the docs cannot drift from the CLI.
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional

#: fixed help width, so the page does not depend on the terminal that rendered it
WIDTH = 100

HEADER = """# CLI reference

Every `compressai-rdc` command with its options, exactly as `--help` prints them. This page is
generated from the parsers (`python -m compressai_rdc.cli.reference docs/cli.md`) and a test fails
when it differs from them. Commands added by plugins appear in `compressai-rdc --help` as well;
they are not listed here.
"""


@contextmanager
def _columns(width: int) -> Iterator[None]:
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(width)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old


def _subparsers(parser: argparse.ArgumentParser) -> "dict[str, argparse.ArgumentParser]":
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def render(builtin_only: bool = True) -> str:
    """The Markdown page: ``compressai-rdc --help`` then each command's ``--help``."""
    from compressai_rdc.cli import build_parser
    from compressai_rdc.registry import COMMANDS

    with _columns(WIDTH):
        parser = build_parser()
        subs = _subparsers(parser)
        names = [n for n in subs if not builtin_only or COMMANDS.entry(n).plugin.startswith("compressai_rdc._builtin")]
        parts: List[str] = [HEADER, "## compressai-rdc", "", "```text", parser.format_help().rstrip(), "```", ""]
        for name in sorted(names):
            parts += [f"## {name}", "", "```text", subs[name].format_help().rstrip(), "```", ""]
    return "\n".join(parts)


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m compressai_rdc.cli.reference OUTPUT.md", file=sys.stderr)
        return 2
    Path(argv[0]).write_text(render())
    print(f"wrote {argv[0]}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
