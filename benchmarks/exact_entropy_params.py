"""Audit of the entropy parameters: fixed-point (coding path) vs float (training path).

::

    python benchmarks/exact_entropy_params.py --kodak ../shared/data/kodak --rates 1 5.3 --json out.json
    python benchmarks/exact_entropy_params.py --time 8      # ms of the float and the fixed-point h_s path

For each Kodak image and rate, with the shipped ``rdc-versatile`` weights
(primary branch; the shipped residual is untrained and off by default), the
``z`` substream is coded once and the ``y`` entropy parameters (scale indexes
and means) are computed from the decoded ``ẑ`` under every numeric setup of
:data:`SETUPS` (oneDNN on/off × 1/2 threads), by

* the **exact** path (:meth:`~compressai_rdc.models.gained_hyperprior.GainedHyperprior.exact_hyper_params`), and
* the **float** path (``hyper_params``, what the coding path used before container format 2),

and once more with the float ``h_s`` output perturbed by a relative ``1e-6``
(a forward hook; the exact path never reads that output). A *mismatch* is an
image × rate whose scale indexes differ from those of the first setup. For a
float mismatch the stream coded in the first setup is decoded with the first mismatching
setup's parameters, as a decoder there would, and its PSNR reported (garbage
or not; "non-finite" when the image holds inf/NaN). Each exact stream is also decoded, through its check value, under
every setup.

Rate–distortion of the two paths: bits of the ``y`` and ``z`` substreams (the
container header adds the same bytes to both, plus 8 bytes of check value to
the exact one) and PSNR of ``x̂₁ = g_s(ŷ)`` at β = 1.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Dict, List

import torch

from compressai_rdc.data import load_image
from compressai_rdc.models.gained_hyperprior import coding_params
from compressai_rdc.utils.numeric_setup import SETUPS, numeric_setup, perturbed_output
from compressai_rdc.zoo import load_model

PERTURBATION = 1e-6


def float_params(branch, z_hat, r, size):
    scales, means = branch.hyper_params(z_hat, r, size)
    return branch.gaussian_conditional.build_indexes(scales), means


def exact_params(branch, z_hat, r, size):
    return coding_params(branch.gaussian_conditional, *branch.exact_hyper_params(z_hat, r, size), z_hat.device)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(-10 * torch.log10(((a.clamp(0, 1) - b) ** 2).mean()))


def run(kodak: Path, rates: List[float], limit: int) -> Dict:
    net = load_model("rdc-versatile", pretrained=True)
    p, gc = net.primary, net.primary.gaussian_conditional
    files = sorted(kodak.glob("*.png"))[:limit]
    rows = []
    with torch.no_grad():
        for f in files:
            x = load_image(f).unsqueeze(0)
            npx = x.shape[-2] * x.shape[-1]
            y = p.analysis(x)
            for rate in rates:
                r = torch.tensor([rate])
                y_g = p.gain.gain(y, r)
                z_g = p.hyper_gain.gain(p.hyper_analysis(y_g), r)
                z_strings = p.entropy_bottleneck.compress(z_g)
                z_bits = 8 * len(z_strings[0])
                row = {"image": f.name, "rate": rate}
                for path, fn in (("exact", exact_params), ("float", float_params)):
                    per_setup = []
                    for setup in SETUPS:
                        with numeric_setup(*setup):
                            z_hat = p.entropy_bottleneck.decompress(z_strings, z_g.shape[-2:])
                            per_setup.append(fn(p, z_hat, r, y_g.shape[-2:]))
                    with perturbed_output(p.h_s, PERTURBATION):
                        perturbed = fn(p, z_hat, r, y_g.shape[-2:])
                    idx0, mu0 = per_setup[0]
                    y_strings = gc.compress(y_g, idx0, means=mu0)
                    y_hat = gc.quantize(y_g, "dequantize", mu0)
                    x1 = p.synthesize(p.gain.inverse(y_hat, r))
                    mism = [i for i, (idx, _) in enumerate(per_setup) if not torch.equal(idx, idx0)]
                    garbage = []
                    if mism:  # what a decoder in the first mismatching setup would reconstruct
                        idx, mu = per_setup[mism[0]]
                        y_dec = gc.decompress(y_strings, idx, means=mu)
                        value = psnr(p.synthesize(p.gain.inverse(y_dec, r)), x)
                        garbage.append(round(value, 2) if math.isfinite(value) else "non-finite")
                    row[path] = {
                        "bpp": (8 * len(y_strings[0]) + z_bits) / npx,
                        "psnr": psnr(x1, x),
                        "setup_mismatches": [f"onednn={SETUPS[i][0]},threads={SETUPS[i][1]}" for i in mism],
                        "mismatch_psnr": garbage,
                        "perturbed_mismatch": not torch.equal(perturbed[0], idx0),
                        "means_identical_across_setups": all(torch.equal(mu, mu0) for _, mu in per_setup),
                    }
                    if path == "exact":  # the decoder's check value, in every setup
                        check = p.compress_hyper(z_g, r, y_g.shape[-2:])[3]
                        for setup in SETUPS:
                            with numeric_setup(*setup):
                                p.decompress_hyper(z_strings, r, y_g.shape[-2:], check, "primary")
                rows.append(row)
                print(f"{f.name} rate {rate}: exact {row['exact']['bpp']:.4f} bpp {row['exact']['psnr']:.3f} dB "
                      f"(mismatches {len(row['exact']['setup_mismatches'])}, perturbed {row['exact']['perturbed_mismatch']}) | "
                      f"float {row['float']['bpp']:.4f} bpp {row['float']['psnr']:.3f} dB "
                      f"(mismatches {row['float']['setup_mismatches']} {row['float']['mismatch_psnr']}, "
                      f"perturbed {row['float']['perturbed_mismatch']})", flush=True)
    return {"rows": rows, "summary": summarise(rows, rates)}


def summarise(rows: List[Dict], rates: List[float]) -> Dict:
    out = {}
    for path in ("exact", "float"):
        out[path] = {
            "cases": len(rows),
            "setup_mismatch_cases": sum(bool(r[path]["setup_mismatches"]) for r in rows),
            "perturbed_mismatch_cases": sum(r[path]["perturbed_mismatch"] for r in rows),
            "mismatch_psnr": [v for r in rows for v in r[path]["mismatch_psnr"]],
        }
    out["rd"] = {}
    for rate in rates:
        sel = [r for r in rows if r["rate"] == rate]
        mean = lambda path, k: sum(r[path][k] for r in sel) / len(sel)  # noqa: E731
        out["rd"][str(rate)] = {
            "images": len(sel),
            "exact_bpp": mean("exact", "bpp"), "float_bpp": mean("float", "bpp"),
            "exact_psnr": mean("exact", "psnr"), "float_psnr": mean("float", "psnr"),
            "delta_bpp_percent": 100 * (mean("exact", "bpp") / mean("float", "bpp") - 1),
            "delta_psnr_db": mean("exact", "psnr") - mean("float", "psnr"),
        }
    return out


def time_paths(runs: int) -> Dict[str, List[float]]:
    """Milliseconds of ``hyper_params`` (float) and ``exact_hyper_params`` on a Kodak-size
    (8×12) ``ẑ`` of the shipped weights, alternating, after one warm-up call each."""
    p = load_model("rdc-versatile", pretrained=True).primary
    g = torch.Generator().manual_seed(0)
    z = torch.round(torch.randn(1, p.N, 8, 12, generator=g) * 3)
    r, size = torch.tensor([3.0]), (32, 48)
    out: Dict[str, List[float]] = {"float_ms": [], "exact_ms": []}
    with torch.no_grad():
        p.hyper_params(z, r, size), p.exact_hyper_params(z, r, size)
        for _ in range(runs):
            for key, fn in (("float_ms", p.hyper_params), ("exact_ms", p.exact_hyper_params)):
                t = time.perf_counter()
                fn(z, r, size)
                out[key].append(round(1e3 * (time.perf_counter() - t), 1))
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kodak", type=Path)
    ap.add_argument("--rates", type=float, nargs="+", default=[1.0, 5.3])
    ap.add_argument("--limit", type=int, default=24)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--time", type=int, default=0, metavar="RUNS", help="only time the two paths (RUNS alternating runs)")
    args = ap.parse_args(argv)
    if args.time:
        print(json.dumps(time_paths(args.time)))
        return
    if args.kodak is None:
        ap.error("--kodak DIR is required for the audit")
    t = time.time()
    result = run(args.kodak, args.rates, args.limit)
    result["seconds"] = round(time.time() - t, 1)
    print(json.dumps(result["summary"], indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
