"""One-thread timings of two speed-ups of the evaluation suite (docs/evaluation.md).

- the classifier with its batch norms folded into its convolutions
  (``fold_batch_norms``) against the unfolded one, both channels_last,
  16 images at 224²;
- a Kodak decode of the shipped ``rdc-versatile`` with the synthesis on
  channels_last tensors (what ``codec.decode`` does) against plain NCHW.

    python benchmarks/eval_speedups.py [--kodak ../shared/data/kodak/kodim05.png]

Best of several runs, one thread.
"""

from __future__ import annotations

import argparse
import time

import torch


def best(fn, n: int = 5) -> float:
    fn()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    from compressai_rdc import codec
    from compressai_rdc.backbones import create_backbone, fold_batch_norms
    from compressai_rdc.data import find_data_dir, load_image
    from compressai_rdc.utils import tiling
    from compressai_rdc.zoo import rdc_versatile

    kodak = find_data_dir("kodak")
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--kodak", default=str(kodak / "kodim05.png") if kodak else None, help="image to decode")
    args = p.parse_args()
    torch.set_num_threads(1)

    x = torch.rand(16, 3, 224, 224).contiguous(memory_format=torch.channels_last)
    plain = create_backbone().to(memory_format=torch.channels_last)
    folded = create_backbone()
    fold_batch_norms(folded, torch.rand(2, 3, 224, 224))
    folded = folded.to(memory_format=torch.channels_last)
    with torch.inference_mode():
        diff = (plain(x) - folded(x)).abs().max().item()
        print(f"classifier, 16 x 224²: batch norms {best(lambda: plain(x)):.3f} s, folded {best(lambda: folded(x)):.3f} s "
              f"(logits differ by {diff:.1e})")

    if args.kodak is None:
        print("decode: no Kodak image (pass --kodak FILE)")
        return
    net = rdc_versatile(pretrained=True).eval()
    data = codec.encode(net, load_image(args.kodak).unsqueeze(0), rate=3, layers=0)
    channels_last = best(lambda: codec.decode(data, net), 3)
    real = tiling._on_channels_last
    tiling._on_channels_last = lambda fn: fn  # the NCHW synthesis
    try:
        nchw = best(lambda: codec.decode(data, net), 3)
    finally:
        tiling._on_channels_last = real
    print(f"decode {args.kodak} at rate 3: NCHW synthesis {nchw:.3f} s, channels_last synthesis {channels_last:.3f} s")


if __name__ == "__main__":
    main()
