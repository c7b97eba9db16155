"""Run CompressAI's unchanged ``eval_model`` with compressai-rdc's plugins loaded.

``python -m compressai_rdc.eval_model pretrained ../shared/data/kodak -a rdc-versatile -q 1,3,5``
takes exactly CompressAI's arguments; plugin models are in its name tables
because loading the plugins runs the registry bridge first.
"""

from __future__ import annotations

import sys
from typing import List, Optional

from compressai_rdc._plugins import load_plugins


def main(argv: Optional[List[str]] = None) -> None:
    load_plugins()
    from compressai.utils.eval_model.__main__ import main as compressai_eval_model_main

    compressai_eval_model_main(sys.argv[1:] if argv is None else list(argv))


if __name__ == "__main__":  # pragma: no cover
    main()
