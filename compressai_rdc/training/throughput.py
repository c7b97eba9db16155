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


def fast_step_fn(model_name: str, quality: int, batch: int, crop: int, device: torch.device, images, compile: Any = "auto",
                 N=None, M=None, recipe: str = "baseline-mbt2018-mean", speed: Optional[Dict[str, Any]] = None):
    """One step of our trainer on ``recipe`` (default: the baseline), as a closure ``f(step)``.

    ``model_name``/``quality``/``N``/``M`` replace the recipe's model for the
    baseline only; other recipes keep their own model. ``speed`` overrides the
    config's speed switches (``{"bf16": False, ...}``: the plain loop of a recipe).
    """
    from compressai_rdc.training.recipes import load_config
    from compressai_rdc.training.trainer import Trainer

    cfg = load_config(recipe)
    if recipe == "baseline-mbt2018-mean":
        kwargs = {k: v for k, v in (("N", N), ("M", M)) if v is not None}
        cfg["model"] = {"name": model_name, "quality": quality, "kwargs": kwargs, "init_weights": None}
    cfg["data"]["batch_size"], cfg["data"]["crop"], cfg["data"]["schedule"] = batch, crop, []
    cfg["speed"]["compile"] = (device.type == "cuda") if compile == "auto" else bool(compile)
    cfg["speed"].update(speed or {})
    tmp = tempfile.TemporaryDirectory(prefix="rdc-throughput-")  # removed with the closure
    trainer = Trainer(cfg, tmp.name, device=str(device), progress=False)
    trainer._tmp = tmp
    trainer._samplers[crop] = CropSampler.from_tensors(images, crop, device=device)
    trainer._train_mode()
    return trainer.train_step


#: the plain loop of a recipe: every speed switch off
PLAIN_SPEED = {"bf16": False, "channels_last": False, "compile": False, "tf32": False, "fused_adam": False}


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
    recipe: str = "baseline-mbt2018-mean",
    speed: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """Images/s of each mode; see the module docstring. ``fast_warmup`` covers compilation;
    ``speed`` overrides the fast loop's speed switches (e.g. ``{"channels_last": True}``).

    For the baseline recipe the plain loop is CompressAI's example loop; for any
    other recipe (e.g. the cognition recipe, whose frozen backbone is part of
    every step) it is our trainer with every speed switch off.
    """
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
            if recipe == "baseline-mbt2018-mean":
                fn = plain_step_fn(model_name, quality, plain_batch, crop, dev, images, N=N, M=M)
            else:
                fn = fast_step_fn(model_name, quality, plain_batch, crop, dev, images, compile=False, recipe=recipe,
                                  speed=dict(PLAIN_SPEED, tf32=tf32))
            b, w = plain_batch, warmup
        elif mode == "fast":
            fn = fast_step_fn(model_name, quality, fast_batch, crop, dev, images, compile=compile, N=N, M=M, recipe=recipe, speed=speed)
            b, w = fast_batch, fast_warmup
        else:
            raise ValueError(f"unknown mode {mode!r}; valid: plain-fp32, plain-tf32, fast")
        r = _timed(fn, dev, w, steps, seconds, b)
        results.append({"mode": mode, "batch": b, **r})
        del fn
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    by = {r["mode"]: r["images_per_s"] for r in results}
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else cpu_name()
    return {
        "recipe": recipe, "model": model_name if recipe == "baseline-mbt2018-mean" else None, "quality": quality, "crop": crop,
        "speed_overrides": dict(speed or {}),
        "device": name, "torch": torch.__version__, "results": results,
        "speedup_fast_vs_plain_fp32": round(by["fast"] / by["plain-fp32"], 2) if {"fast", "plain-fp32"} <= set(by) else None,
    }


def cpu_name() -> str:
    """``"cpu (<model name>, <n> threads, bf16: yes/no)"`` for reports."""
    from compressai_rdc.training.trainer import cpu_supports_bf16

    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"cpu ({model}, {torch.get_num_threads()} threads, native bf16: {'yes' if cpu_supports_bf16() else 'no'})"


def main(argv: Optional[Sequence[str]] = None) -> int:
    cuda = torch.cuda.is_available()
    p = argparse.ArgumentParser(prog="python -m compressai_rdc.training.throughput", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="mbt2018-mean")
    p.add_argument("--quality", type=int, default=3)
    p.add_argument("--crops", default=None, help="crop sizes, comma-separated (default: 256 on CUDA, 128,256 on the CPU)")
    p.add_argument("--recipes", default=None,
                   help="recipes, comma-separated (default: the baseline; on the CPU also the cognition recipe rdc-versatile-stage1-fm)")
    p.add_argument("--device", default="cuda" if cuda else "cpu")
    p.add_argument("--plain-batch", type=int, default=None, help="default: 16 on CUDA, 8 on the CPU")
    p.add_argument("--fast-batch", type=int, default=None, help="default: 64 on CUDA, 8 on the CPU")
    p.add_argument("--data", default=None, help="image folder for crops (default: synthetic images)")
    p.add_argument("--seconds", type=float, default=15.0, help="measuring time per mode (after warm-up)")
    p.add_argument("--fast-warmup", type=int, default=8, help="warm-up steps of the fast loop (compilation)")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--speed", action="append", default=[], metavar="KEY=VALUE",
                   help="override a speed switch of the fast loop (e.g. --speed channels_last=true --speed compile=true)")
    p.add_argument("--json", default=None, help="also write the result here")
    a = p.parse_args(argv)
    on_cpu = torch.device(a.device).type == "cpu"
    crops = [int(c) for c in (a.crops or ("128,256" if on_cpu else "256")).split(",")]
    recipes = (a.recipes or ("baseline-mbt2018-mean,rdc-versatile-stage1-fm" if on_cpu else "baseline-mbt2018-mean")).split(",")
    plain_batch = a.plain_batch or (8 if on_cpu else 16)
    fast_batch = a.fast_batch or (8 if on_cpu else 64)
    from compressai_rdc.training.recipes import _yaml

    speed = {}
    for item in a.speed:
        key, sep, value = item.partition("=")
        if not sep:
            p.error(f"--speed {item!r} must look like KEY=VALUE (e.g. channels_last=true)")
        speed[key.strip()] = _yaml(value)
    runs = [measure(a.model, a.quality, crop, a.device, plain_batch, fast_batch, a.data, a.seconds, fast_warmup=a.fast_warmup,
                    compile=False if a.no_compile else "auto", recipe=recipe, speed=speed)
            for recipe in recipes for crop in crops]
    res: Any = runs[0] if len(runs) == 1 else {"runs": runs}
    text = json.dumps(res, indent=2)
    print(text)
    for r in runs:
        print(f"{r['recipe']:28s} {r['crop']:4d}²  speed-up {r['speedup_fast_vs_plain_fp32']}×  "
              + "  ".join(f"{x['mode']} {x['images_per_s']} img/s" for x in r["results"]))
    if a.json:
        from pathlib import Path

        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(text)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
