"""Register a model from a script, without packaging, and use it like a built-in one.

    python examples/script_model.py

A plugin is any object with ``@hookimpl`` functions; :func:`compressai_rdc.register_plugin`
registers it at run time (a package would declare an entry point instead, see the plugin
guide). The model then appears in ``compressai_rdc.list_models()``, the zoo, CompressAI's
``compressai.zoo.image_models`` and the codec.
"""

from __future__ import annotations

import argparse

import compressai.zoo
import torch
from compressai.models import MeanScaleHyperprior

import compressai_rdc
from compressai_rdc import codec, hookimpl
from compressai_rdc.data import load_image, sample_image_path


class SmallHyperprior(MeanScaleHyperprior):
    """CompressAI's mean-scale hyperprior (Minnen et al., NeurIPS 2018) at a chosen width."""

    def __init__(self, N: int = 48, M: int = 64):
        super().__init__(N=N, M=M)


class ScriptPlugin:
    @hookimpl
    def register_models(self, register):
        register(
            "script-hyperprior",
            SmallHyperprior,
            qualities=(1, 2),
            quality_kwargs=lambda q: {"N": 32 * q, "M": 48 * q},
            description="registered from examples/script_model.py",
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=128, help="image crop size")
    args = parser.parse_args()

    compressai_rdc.register_plugin(ScriptPlugin(), name="script")
    try:
        assert "script-hyperprior" in compressai_rdc.list_models()
        net = compressai.zoo.image_models["script-hyperprior"](quality=2)  # CompressAI's own table sees it
        print(f"{type(net).__name__} with N={net.N}: registered as", ", ".join(n for n in compressai_rdc.list_models() if "script" in n))
        net.eval().update(force=True)  # random initialisation: the codec still round-trips exactly
        x = load_image(sample_image_path())[None, :, : args.size, : args.size]
        data = codec.encode(net, x)
        x_hat = codec.decode(data, net)
        again = codec.decode(data, net)
        print(f"{len(data)} bytes; decoded {tuple(x_hat.shape)}; deterministic: {torch.equal(x_hat, again)}")
    finally:
        compressai_rdc.unregister_plugin("script")


if __name__ == "__main__":
    main()
