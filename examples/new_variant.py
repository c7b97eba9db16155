"""Assemble a new codec from registered components, train it a few steps, register and use it.

    python examples/new_variant.py --steps 200            # a few minutes on a CPU
    python examples/new_variant.py --steps 2 --crop 64    # smoke test

The variant: a variable-rate mean-scale hyperprior, i.e. the RDC codec's primary branch
(component ``rdc-primary-branch``, with channel gain units) without the residual branch,
trained with the registered ``rate`` and ``mse`` losses at a random rate level per image
and a λ that follows the level (as the ``rdc-versatile-stage0`` recipe does).
"""

from __future__ import annotations

import argparse
import math
from typing import Any, Dict

import torch
from compressai.models import CompressionModel

import compressai_rdc
from compressai_rdc import codec, hookimpl
from compressai_rdc.data import list_images, load_image, sample_image_path
from compressai_rdc.losses import build_loss
from compressai_rdc.registry import COMPONENTS


class GainHyperprior(CompressionModel):
    """One model, continuous rate ``r ∈ [0, L−1]``: the registered RDC primary branch on its own.

    ::

        x ─► rdc-primary-branch(r) ─► substreams y, z ─► x̂
    """

    def __init__(self, N: int = 64, M: int = 96, levels: int = 8):
        super().__init__()
        self.levels = levels
        self.branch = COMPONENTS.get("rdc-primary-branch")(N, M, levels)

    def forward(self, x: torch.Tensor, rate=None) -> Dict[str, Any]:
        return self.branch(x, rate)

    def compress(self, x: torch.Tensor, rate=None) -> Dict[str, Any]:
        out = self.branch.compress(x, rate)
        return {"strings": out["strings"], "shape": out["shape"]}

    def decompress(self, strings, shape, rate=None) -> Dict[str, torch.Tensor]:
        return {"x_hat": self.branch.decompress(strings, shape, rate)["x_hat"].clamp(0, 1)}


class VariantPlugin:
    @hookimpl
    def register_models(self, register):
        register("gain-hyperprior", GainHyperprior, kwargs={"N": 64, "M": 96}, description="examples/new_variant.py")


def batches(images, crop: int, batch_size: int, generator: torch.Generator):
    """Random crops (B, 3, crop, crop) from images at least ``crop`` a side."""
    while True:
        out = []
        for _ in range(batch_size):
            img = images[int(torch.randint(len(images), (1,), generator=generator))]
            top = int(torch.randint(img.shape[-2] - crop + 1, (1,), generator=generator))
            left = int(torch.randint(img.shape[-1] - crop + 1, (1,), generator=generator))
            out.append(img[:, top : top + crop, left : left + crop])
        yield torch.stack(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None, help="folder of training images (default: the bundled sample image)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args()
    torch.manual_seed(0)

    paths = list_images(args.data)[:64] if args.data else [sample_image_path()]
    images = [im for im in (load_image(p) for p in paths) if min(im.shape[-2:]) >= args.crop]
    compressai_rdc.register_plugin(VariantPlugin(), name="variant")
    try:
        net = compressai_rdc.create_model("gain-hyperprior")
        criterion = build_loss({"rate": {"weight": 1.0}, "mse": {"weight": 1.0, "lambda_scaled": True}})
        main_params = [p for n, p in net.named_parameters() if not n.endswith(".quantiles")]
        aux_params = [p for n, p in net.named_parameters() if n.endswith(".quantiles")]
        opt, aux_opt = torch.optim.Adam(main_params, lr=1e-4), torch.optim.Adam(aux_params, lr=1e-3)
        g = torch.Generator().manual_seed(0)
        data = batches(images, args.crop, args.batch_size, g)
        lmin, lmax = 0.0018, 0.0483  # λ(r) log-spaced over the rate levels (CompressAI's quality 1 … 7)
        net.train()
        for step in range(1, args.steps + 1):
            x = next(data)
            r = torch.rand(x.shape[0], generator=g) * (net.levels - 1)
            lmbda = lmin * (lmax / lmin) ** (r / (net.levels - 1))
            logs = criterion(net(x, r), x, lmbda=lmbda)
            opt.zero_grad()
            logs["loss"].backward()
            opt.step()
            aux = net.aux_loss()
            aux_opt.zero_grad()
            aux.backward()
            aux_opt.step()
            if step == 1 or step % max(1, args.steps // 10) == 0 or step == args.steps:
                print(f"step {step:4d}: loss {float(logs['loss'].detach()):.3f}, {float(logs['rate']):.3f} bpp (estimate), "
                      f"PSNR {float(logs['mse.psnr']):.2f} dB")

        net.eval().update(force=True)
        x = images[0][None, :, : args.crop * 2, : args.crop * 2]
        for rate in (0.0, float(net.levels - 1)):
            data_bytes = codec.encode(net, x, rate=rate)
            x_hat = codec.decode(data_bytes, net)
            psnr = 10 * math.log10(1.0 / float(torch.mean((x_hat - x) ** 2)))
            print(f"rate {rate:g}: {codec.bits_per_pixel(data_bytes):.3f} bpp (real bytes), PSNR {psnr:.2f} dB")
    finally:
        compressai_rdc.unregister_plugin("variant")


if __name__ == "__main__":
    main()
