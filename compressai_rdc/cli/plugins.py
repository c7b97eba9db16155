"""``compressai-rdc plugins``: every plugin, its distribution/version and what it registered."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from compressai_rdc._plugins import ALLOW_ENV, BLOCK_ENV, blocked_plugins, broken_plugins, plugin_info
from compressai_rdc.errors import plural


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def run(args: argparse.Namespace) -> int:
    infos = plugin_info()
    blocked = blocked_plugins()
    broken = broken_plugins()
    if args.json:
        print(json.dumps({"plugins": [asdict(i) for i in infos], "blocked": blocked, "broken": broken}, indent=2))
        return 0
    for info in infos:
        origin = "built-in" if info.builtin else "third-party"
        dist = f"{info.distribution or '?'} {info.version or ''}".strip()
        print(f"{info.name}  [{origin}; {dist}]")
        for kind, names in sorted(info.registered.items()):
            print(f"    {plural(kind)}: {', '.join(names)}")
    for name, why in broken.items():
        print(f"{name}  [skipped: {why}; block it with {BLOCK_ENV}={name}]")
    if blocked:
        print(f"blocked by {ALLOW_ENV}/{BLOCK_ENV}: {', '.join(blocked)}")
    return 0
