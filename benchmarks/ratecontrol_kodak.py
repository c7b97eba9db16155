"""Target-rate accuracy and search cost on Kodak (issue 4 measurements).

    python benchmarks/ratecontrol_kodak.py --model hevrc-fixture --targets 0.2,0.5,1.0 --limit 24
    python benchmarks/ratecontrol_kodak.py --model rdc-versatile --weights W.safetensors --targets 0.1,0.2,0.4 --layers 0
    python benchmarks/ratecontrol_kodak.py --model hevrc --weights W.safetensors --strategy blended

For each image and target: ``encode_to_target`` (real container bytes), the
relative error |actual − target| / target, model evaluations, encodes and wall
time, and the wall time of one plain ``codec.encode`` at the control found
(the cost ratio). Targets outside an image's range are counted, not hidden.
``hevrc-fixture`` / ``rdc-fixture`` are the small random-init codecs of
``tests/test_ratecontrol.py`` (no trained weights needed).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from compressai_rdc import codec, create_model
from compressai_rdc.data import find_data_dir, list_images, load_image
from compressai_rdc.contract import accepts
from compressai_rdc.ratecontrol import RateRangeError, encode_to_target

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.conftest import QScaledAnalysis  # noqa: E402  (the tests' map-dependent fixture)


def build(name: str, weights):
    torch.manual_seed(0)
    if name == "hevrc-fixture":
        net = create_model("hevrc", N=32, M=48, cond_channels=16)
        net.g_a = QScaledAnalysis(net.g_a)
    elif name == "rdc-fixture":
        net = create_model("rdc-versatile", N=32, M=48, residual_N=16, residual_M=24)
    else:
        from compressai_rdc.cli.encode import load_model

        return load_model(name, weights, weights is None)
    net.eval().update(force=True)
    return net


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="hevrc-fixture")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--targets", default="0.2,0.5,1.0")
    ap.add_argument("--strategy", default="inverse-icm", help="quality-map strategy (quality-map models)")
    ap.add_argument("--layers", type=int, default=None)
    ap.add_argument("--method", default="brent", choices=("brent", "golden", "bounded"))
    ap.add_argument("--limit", type=int, default=24)
    ap.add_argument("--json", default=None, help="write every row to this file")
    args = ap.parse_args()
    kodak = find_data_dir("kodak")
    if kodak is None:
        raise SystemExit("kodak/ not found (set $COMPRESSAI_RDC_DATA)")
    net = build(args.model, args.weights)
    fixed = {} if args.layers is None else {"layers": args.layers}
    if accepts(net.compress, "qmap"):
        fixed["qmap_strategy"] = args.strategy
    rows, out_of_range = [], 0
    for path in list_images(kodak)[: args.limit]:
        x = load_image(path)[None]
        for target in [float(t) for t in args.targets.split(",")]:
            try:
                data, rep = encode_to_target(net, x, target, method=args.method, **fixed)
            except RateRangeError as exc:
                out_of_range += 1
                print(f"{path.name} {target}: {exc}")
                continue
            controls = {rep.control: rep.value} if rep.control == "rate" else {}
            if rep.control == "level":
                from compressai_rdc.ratecontrol import rate_control

                controls = rate_control(net, x, **fixed).controls(rep.value)
            t0 = time.perf_counter()
            codec.encode(net, x, **dict(fixed if rep.control == "rate" else {}, **controls))
            plain = time.perf_counter() - t0
            row = dict(image=path.name, target=target, actual=rep.actual_bpp, rel_error=abs(rep.relative_error),
                       evaluations=rep.evaluations, encodes=rep.encodes, seconds=rep.seconds, plain_seconds=plain)
            rows.append(row)
            print(f"{path.name} target {target:.3f} actual {rep.actual_bpp:.4f} err {100 * row['rel_error']:.2f}% "
                  f"evals {rep.evaluations} encodes {rep.encodes} time {rep.seconds:.2f}s = {rep.seconds / plain:.1f}x plain", flush=True)
    errs = sorted(r["rel_error"] for r in rows)
    if errs:
        ratio = [r["seconds"] / r["plain_seconds"] for r in rows]
        summary = dict(
            n=len(errs), out_of_range=out_of_range,
            mean_pct=100 * statistics.mean(errs), median_pct=100 * statistics.median(errs),
            p95_pct=100 * errs[min(len(errs) - 1, int(0.95 * len(errs)))], max_pct=100 * errs[-1],
            within_3pct=sum(e <= 0.03 for e in errs) / len(errs),
            evaluations_mean=statistics.mean(r["evaluations"] for r in rows),
            encodes_mean=statistics.mean(r["encodes"] for r in rows),
            time_ratio_median=statistics.median(ratio),
        )
        print(json.dumps(summary, indent=1))
        if args.json:
            with open(args.json, "x") as f:
                json.dump({"summary": summary, "rows": rows, "args": vars(args)}, f, indent=1)


if __name__ == "__main__":
    main()
