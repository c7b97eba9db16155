"""Scale of HEVRC's SFM loss with this package's feature extractor (λ_SFM choice, docs/papers.md).

    python benchmarks/sfm_scale.py --limit 6

On Kodak 256×256 centre crops coded by the shipped ``rdc-versatile`` weights
(primary branch, β = 1) at gain levels 1, 4 and 7, it reports for the
reconstruction x̂: the weighted-MSE term of HEVRC stage 1
``mean(λ(q)·(x̂ − x)²)·255²`` at q = 0.5 (λ(q) = t1·exp(t2·q), t1 = 4e-4,
t2 = 2.8), the SFM loss ``L_SFM`` (tf_efficientnet_lite0, levels 2–4, the
``sfm`` defaults), and the norms of their gradients with respect to x̂. The
ratio ``0.01·|∇L_SFM| / |∇MSE term|`` is the influence λ_SFM = 0.01 gives SFM
on the decoder relative to distortion.
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch

from compressai_rdc import codec, create_model
from compressai_rdc.data import find_data_dir, list_images, load_image
from compressai_rdc.losses.sfm import SFMLoss
from compressai_rdc.qmap.lambda_map import DEFAULT_T1, DEFAULT_T2, lambda_map


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=6)
    ap.add_argument("--rates", default="1,4,7")
    ap.add_argument("--lambda-sfm", type=float, default=0.01)
    args = ap.parse_args()
    kodak = find_data_dir("kodak")
    if kodak is None:
        raise SystemExit("kodak/ not found (set $COMPRESSAI_RDC_DATA)")
    net = create_model("rdc-versatile", pretrained=True).eval()
    sfm = SFMLoss()
    lam = float(lambda_map(torch.tensor(0.5), DEFAULT_T1, DEFAULT_T2))
    rows = []
    for path in list_images(kodak)[: args.limit]:
        x = load_image(path)[None]
        h, w = x.shape[-2:]
        x = x[..., (h - 256) // 2 : (h + 256) // 2, (w - 256) // 2 : (w + 256) // 2].contiguous()
        for rate in (float(r) for r in args.rates.split(",")):
            data = codec.encode(net, x, rate=rate, layers=0)
            x_hat = codec.decode(data, net).requires_grad_(True)
            mse_term = (lam * (x_hat - x) ** 2).mean() * 255**2
            (g_mse,) = torch.autograd.grad(mse_term, x_hat)
            l_sfm = sfm({"x_hat": x_hat}, x)["loss"]
            (g_sfm,) = torch.autograd.grad(l_sfm, x_hat)
            row = dict(image=path.name, rate=rate, bpp=codec.bits_per_pixel(data), mse_term=float(mse_term),
                       sfm=float(l_sfm), grad_mse=float(g_mse.norm()), grad_sfm=float(g_sfm.norm()))
            row["influence"] = args.lambda_sfm * row["grad_sfm"] / row["grad_mse"]
            rows.append(row)
            print(json.dumps(row), flush=True)
    summary = {k: statistics.median(r[k] for r in rows) for k in ("bpp", "mse_term", "sfm", "grad_mse", "grad_sfm", "influence")}
    summary["value_ratio"] = statistics.median(args.lambda_sfm * r["sfm"] / r["mse_term"] for r in rows)
    summary["n"] = len(rows)
    print(json.dumps({"median": summary}, indent=1))


if __name__ == "__main__":
    main()
