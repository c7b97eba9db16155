"""Training throughput: our loop against CompressAI's plain fp32 loop, same model.

::

    python -m compressai_rdc.training.throughput --device cuda --data DIR --json out.json

measures images/s of

* ``plain-fp32``: CompressAI's ``examples/train.py`` step (``RateDistortionLoss``,
  Adam + aux Adam, clipping), fp32 with TF32 off; its batches are cut in
  advance and only copied to the device (data loading is not charged to it);
* ``plain-tf32``: the same with TF32 matmuls/convolutions (CUDA only);
* ``fast``: :class:`~compressai_rdc.training.trainer.Trainer` running the
  ``baseline-mbt2018-mean`` recipe with its speed switches (bf16 autocast with
  fp32 entropy models, channels_last, fused Adam, ``torch.compile``, crops cut
  on the device from images decoded once) at a larger batch.

On CPU the trainer's ``auto`` switches are all off, so ``fast`` *is* the plain
loop plus bookkeeping ("never slower on CPU" by construction; the benchmark
measures it). Timings synchronise CUDA before reading the clock.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence

import torch

from compressai_rdc.training.data import CropSampler


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def synthetic_images(n: int = 16, size: int = 320, seed: int = 0) -> List[torch.Tensor]:
    """Smooth random uint8 images ``(3, size, size)`` (when no data folder is given)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, size // 16, size // 16, generator=g)
    img = torch.nn.functional.interpolate(low, size=(size, size), mode="bicubic", align_corners=False)
    img = img + 0.05 * torch.randn(img.shape, generator=g)
    return list((img.clamp(0, 1) * 255).to(torch.uint8))


def _images(data: Optional[str], crop: int, limit: int = 256) -> List[torch.Tensor]:
    if data is None:
        return synthetic_images(size=max(crop + 64, 320))
    return CropSampler(data, crop, max_images=limit).images


def _timed(step_fn, device: torch.device, warmup: int, steps: int, seconds: float, batch: int) -> Dict[str, float]:
    for i in range(warmup):
        step_fn(i)
    _sync(device)
    t0, done = time.perf_counter(), 0
    while done < steps and (done == 0 or time.perf_counter() - t0 < seconds):
        step_fn(warmup + done)
        done += 1
        if done % 5 == 0:
            _sync(device)
    _sync(device)
    dt = time.perf_counter() - t0
    return {"steps": done, "seconds": round(dt, 3), "images_per_s": round(done * batch / dt, 2)}


def plain_step_fn(model_name: str, quality: int, batch: int, crop: int, device: torch.device, images, lmbda: float = 0.0067, N=None, M=None):
    """One step of CompressAI's example training loop, as a closure ``f(step)``."""
    from compressai.losses import RateDistortionLoss

    from compressai_rdc.training.recipes import build_model

    kwargs = {k: v for k, v in (("N", N), ("M", M)) if v is not None}
    net = build_model({"name": model_name, "quality": quality, "kwargs": kwargs}).to(device).train()
    criterion = RateDistortionLoss(lmbda=lmbda)
    params = [p for n, p in net.named_parameters() if not n.endswith(".quantiles")]
    aux = [p for n, p in net.named_parameters() if n.endswith(".quantiles")]
    opt, aux_opt = torch.optim.Adam(params, lr=1e-4), torch.optim.Adam(aux, lr=1e-3)
    sampler = CropSampler.from_tensors(images, crop, device="cpu")
    # batches cut in advance (pinned): the plain loop is not charged for data loading,
    # as if a DataLoader with enough workers kept up with it
    ready = [sampler.batch(i, batch) for i in range(4)]
    if device.type == "cuda":
        ready = [b.pin_memory() for b in ready]

    def step(i: int) -> None:
        x = ready[i % len(ready)].to(device, non_blocking=True)
        opt.zero_grad()
        aux_opt.zero_grad()
        out = criterion(net(x), x)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        net.aux_loss().backward()
        aux_opt.step()

    return step


def fast_step_fn(model_name: str, quality: int, batch: int, crop: int, device: torch.device, images, compile: Any = "auto", N=None, M=None):
    """One step of our trainer on the baseline recipe, as a closure ``f(step)``."""
    from compressai_rdc.training.recipes import load_config
    from compressai_rdc.training.trainer import Trainer

    kwargs = {k: v for k, v in (("N", N), ("M", M)) if v is not None}
    cfg = load_config("baseline-mbt2018-mean")
    cfg["model"] = {"name": model_name, "quality": quality, "kwargs": kwargs, "init_weights": None}
    cfg["data"]["batch_size"], cfg["data"]["crop"] = batch, crop
    cfg["speed"]["compile"] = (device.type == "cuda") if compile == "auto" else bool(compile)
    tmp = tempfile.TemporaryDirectory(prefix="rdc-throughput-")  # removed with the closure
    trainer = Trainer(cfg, tmp.name, device=str(device), progress=False)
    trainer._tmp = tmp
    trainer._samplers[crop] = CropSampler.from_tensors(images, crop, device=device)
    trainer._train_mode()
    return trainer.train_step


def measure(
    model_name: str = "mbt2018-mean",
    quality: int = 3,
    crop: int = 256,
    device: str = "cuda",
    plain_batch: int = 16,
    fast_batch: int = 64,
    data: Optional[str] = None,
    seconds: float = 15.0,
    steps: int = 10_000,
    warmup: int = 3,
    fast_warmup: int = 8,
    modes: Sequence[str] = ("plain-fp32", "plain-tf32", "fast"),
    compile: Any = "auto",
    N: Optional[int] = None,
    M: Optional[int] = None,
) -> Dict[str, Any]:
    """Images/s of each mode; see the module docstring. ``fast_warmup`` covers compilation."""
    dev = torch.device(device)
    images = _images(data, crop)
    results = []
    for mode in modes:
        if mode.startswith("plain"):
            if dev.type != "cuda" and mode == "plain-tf32":
                continue
            tf32 = mode == "plain-tf32"
            if dev.type == "cuda":
                torch.backends.cuda.matmul.allow_tf32 = tf32
                torch.backends.cudnn.allow_tf32 = tf32
            fn, b, w = plain_step_fn(model_name, quality, plain_batch, crop, dev, images, N=N, M=M), plain_batch, warmup
        elif mode == "fast":
            fn, b, w = fast_step_fn(model_name, quality, fast_batch, crop, dev, images, compile=compile, N=N, M=M), fast_batch, fast_warmup
        else:
            raise ValueError(f"unknown mode {mode!r}; valid: plain-fp32, plain-tf32, fast")
        r = _timed(fn, dev, w, steps, seconds, b)
        results.append({"mode": mode, "batch": b, **r})
        del fn
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    by = {r["mode"]: r["images_per_s"] for r in results}
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    return {
        "model": model_name, "quality": quality, "crop": crop, "device": name, "torch": torch.__version__,
        "results": results,
        "speedup_fast_vs_plain_fp32": round(by["fast"] / by["plain-fp32"], 2) if {"fast", "plain-fp32"} <= set(by) else None,
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m compressai_rdc.training.throughput", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="mbt2018-mean")
    p.add_argument("--quality", type=int, default=3)
    p.add_argument("--crop", type=int, default=256)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--plain-batch", type=int, default=16)
    p.add_argument("--fast-batch", type=int, default=64)
    p.add_argument("--data", default=None, help="image folder for crops (default: synthetic images)")
    p.add_argument("--seconds", type=float, default=15.0, help="measuring time per mode (after warm-up)")
    p.add_argument("--fast-warmup", type=int, default=8, help="warm-up steps of the fast loop (compilation)")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--json", default=None, help="also write the result here")
    a = p.parse_args(argv)
    res = measure(a.model, a.quality, a.crop, a.device, a.plain_batch, a.fast_batch, a.data, a.seconds,
                  fast_warmup=a.fast_warmup, compile=False if a.no_compile else "auto")
    text = json.dumps(res, indent=2)
    print(text)
    if a.json:
        from pathlib import Path

        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(text)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
