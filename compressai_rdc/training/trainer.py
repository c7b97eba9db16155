"""The training loop behind ``compressai-rdc train``.

::

    config ─> model ─(freeze, channels_last, DDP, compile)─> fwd
          └─> loss (CompositeLoss) ─────────────────────────┐
    CropSampler.batch(step) ─> recipe.sample ─> fwd(x, **controls) under bf16 autocast
                                                 └─> loss in fp32 ─> backward ─> clip ─> Adam
                                                     aux_loss ─> aux Adam (quantiles)
                                                     [GAN] discriminator loss ─> D Adam
    every N steps: CSV log, checkpoint (exact resume), validation on real bitstreams

Conventions from CompressAI's ``examples/train.py``: a separate optimizer for the
entropy bottleneck's ``quantiles`` (aux loss), gradient clipping by norm.

Exact resume: a step's data, crops and quantisation noise depend only on
``(seed, step, rank)`` (the global RNG is reseeded every step), and the checkpoint
holds model, optimizers, schedulers, the loss's state (MoCo queue,
discriminator) and the step. Interrupting and resuming gives the weights of the
uninterrupted run (bitwise on CPU).

Throughput switches (``speed`` section; ``auto`` = on for CUDA only, so the
CPU loop is the plain loop): bf16 autocast with entropy models kept in fp32,
channels_last, TF32, fused Adam, ``torch.compile``.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import os
import re
import signal
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import yaml
from torch import Tensor, nn

from compressai_rdc.errors import InvalidArgumentError, RDCError
from compressai_rdc.losses import GANLoss, RateLoss, build_loss
from compressai_rdc.training import distributed
from compressai_rdc.training.data import CropSampler, default_train_dir
from compressai_rdc.training.recipes import build_model, build_recipe

CHECKPOINT = "checkpoint.pt"
FORMAT_VERSION = 1


class CheckpointError(RDCError, FileNotFoundError):
    """A run folder has no checkpoint to resume, or holds one that must not be overwritten."""


def cpu_supports_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX-BF16), so that
    bf16 autocast speeds training up instead of emulating bf16 in software.

    Asks oneDNN (``torch.ops.mkldnn._is_mkldnn_bf16_supported``); where that
    private probe is missing, reads the CPU flags from ``/proc/cpuinfo``.
    """
    probe = getattr(getattr(torch.ops, "mkldnn", None), "_is_mkldnn_bf16_supported", None)
    if probe is not None:
        try:
            return bool(probe())
        except RuntimeError:  # an op that is declared but not built in
            pass
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return bool(re.search(r"\b(avx512_bf16|amx_bf16)\b", flags))


def _auto(value: Any, device: torch.device, *, cpu: bool = False) -> bool:
    """Resolve a ``speed`` switch: ``"auto"`` is on for CUDA and, where ``cpu`` is
    set (bf16 autocast and channels_last), on CPUs with native bf16."""
    if value == "auto":
        if device.type == "cuda":
            return True
        return cpu and device.type == "cpu" and cpu_supports_bf16()
    return bool(value)


def keep_entropy_models_fp32(model: nn.Module) -> nn.Module:
    """Run every CompressAI entropy model of ``model`` in float32, even inside a
    bf16 autocast region: likelihoods (and so the rate) lose their small values
    in bf16. Inputs are cast to float32; idempotent."""
    from compressai.entropy_models import EntropyModel

    for m in model.modules():
        if isinstance(m, EntropyModel) and not getattr(m, "_rdc_fp32", False):
            inner = m.forward

            def forward(*args, _inner=inner, **kwargs):
                args = [a.float() if isinstance(a, Tensor) and a.is_floating_point() else a for a in args]
                kwargs = {k: v.float() if isinstance(v, Tensor) and v.is_floating_point() else v for k, v in kwargs.items()}
                dev = next((a.device.type for a in args if isinstance(a, Tensor)), "cpu")
                with torch.autocast(dev, enabled=False):
                    return _inner(*args, **kwargs)

            m.forward = forward
            m._rdc_fp32 = True
    return model


def split_parameters(model: nn.Module):
    """``(main, aux)`` trainable parameters: aux = entropy bottlenecks' ``quantiles``."""
    main, aux = [], []
    for n, p in model.named_parameters():
        if p.requires_grad:
            (aux if n.endswith(".quantiles") else main).append(p)
    return main, aux


def make_adam(params, lr: float, betas, device: torch.device, fused: Any) -> torch.optim.Adam:
    kwargs = {}
    if _auto(fused, device) and device.type == "cuda":
        kwargs["fused"] = True
    return torch.optim.Adam(params, lr=lr, betas=tuple(betas), **kwargs)


def _to_float(out: Any) -> Any:
    if isinstance(out, Tensor):
        return out.float() if out.is_floating_point() else out
    if isinstance(out, dict):
        return {k: _to_float(v) for k, v in out.items()}
    return out


class Trainer:
    """Train one recipe config into a run folder.

    Args:
        config: a loaded config (:func:`compressai_rdc.training.recipes.load_config`).
        out: run folder.
        device: ``"cpu"``, ``"cuda"``...; ``None`` = CUDA when available.
        resume: continue from ``out/checkpoint.pt``.
        init_weights: ``.safetensors`` weights to start from (ignored when resuming).
        progress: show a tqdm bar (rank 0).
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        out: Union[str, os.PathLike],
        *,
        device: Optional[str] = None,
        resume: bool = False,
        init_weights: Optional[str] = None,
        start_step: int = 0,
        progress: bool = True,
    ):
        self.config = copy.deepcopy(dict(config))
        self.out = Path(out)
        self.dist = distributed.setup(device)
        self.device = self.dist.device
        self.is_main = self.dist.is_main
        self.progress = progress
        ckpt_path = self.out / CHECKPOINT
        if resume and not ckpt_path.is_file():
            raise CheckpointError(f"--resume: no checkpoint at {str(ckpt_path)!r}")
        if not resume and ckpt_path.exists():
            raise CheckpointError(f"{str(ckpt_path)!r} exists; pass --resume to continue it or choose another --out")
        if not resume and (self.out / "config.yaml").exists():
            raise CheckpointError(
                f"{str(self.out / 'config.yaml')!r} exists (a run was started there); choose another --out, "
                "or remove the folder to start it again"
            )
        self.resumed_from: Optional[int] = None
        self.changes: List[str] = []  # "key: old -> new" of a resume with other settings

        cfg, speed = self.config, self.config["speed"]
        self.seed = int(cfg["seed"])
        torch.manual_seed(self.seed)
        if self.device.type == "cuda":
            tf32 = bool(speed.get("tf32", True))
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
            torch.backends.cudnn.benchmark = True
        self.bf16 = _auto(speed["bf16"], self.device, cpu=True)
        self.channels_last = _auto(speed["channels_last"], self.device, cpu=True)

        # model ------------------------------------------------------------------
        self.model = build_model(cfg["model"]).to(self.device)
        self.recipe = build_recipe(cfg)
        self.recipe.check_model(self.model)
        init = init_weights or cfg["model"].get("init_weights")
        # images seen by the weights this run starts from and their ancestors (None: not known)
        self.lineage_base: Optional[int] = 0
        if init and not resume:
            load_init_weights(self.model, init, cfg["model"].get("init_only"))
            self.lineage_base = lineage_images(init)
        self.frozen = self._freeze(cfg.get("freeze") or [])
        if self.bf16:
            keep_entropy_models_fp32(self.model)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

        # loss -------------------------------------------------------------------
        self.criterion = build_loss(cfg["loss"]).to(self.device)
        if self.channels_last:
            self.criterion = self.criterion.to(memory_format=torch.channels_last)
        self.gan: Optional[GANLoss] = self.criterion.get(GANLoss)
        if self.recipe.gan and self.gan is None:
            raise InvalidArgumentError(f"recipe kind {cfg['kind']!r} needs a 'gan' loss term")

        # optimizers ---------------------------------------------------------------
        o = cfg["optim"]
        main, aux = split_parameters(self.model)
        if not main:
            raise InvalidArgumentError("nothing to train: every model parameter is frozen by the config's freeze list")
        self.optimizer = make_adam(main, float(o["lr"]), o["betas"], self.device, speed["fused_adam"])
        self.aux_optimizer = make_adam(aux, float(o["aux_lr"]), o["betas"], self.device, speed["fused_adam"]) if aux else None
        self.aux_params = aux
        self.d_optimizer = (
            make_adam(self.gan.discriminator.parameters(), float(o["disc_lr"]), o["betas"], self.device, speed["fused_adam"])
            if self.gan is not None else None
        )
        self.total_steps = int(o["steps"])
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, milestones=self._milestones(), gamma=float(o["gamma"]))
        self.clip = o.get("clip_max_norm")

        # wrappers -----------------------------------------------------------------
        fwd: nn.Module = self.model
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            fwd = DDP(self.model, device_ids=ids, find_unused_parameters=True)
        self.ddp_model = fwd
        self.forward = torch.compile(fwd) if speed.get("compile") else fwd

        # data ---------------------------------------------------------------------
        d = cfg["data"]
        if not d.get("train"):
            d["train"] = str(default_train_dir())  # recorded in config.yaml: the run says what it trained on
        self.batch_size = int(d["batch_size"])
        self._data_cfg = d
        self.phases = data_phases(d, self.total_steps)
        self._samplers: Dict[int, CropSampler] = {}

        self.step = 0
        self.elapsed = 0.0
        self._stop_signal = False
        if resume:
            self._load_checkpoint(ckpt_path)
        elif start_step:
            self._fast_forward(int(start_step))
            if self.lineage_base is not None:  # the export counts steps 0 → step; the start's lineage holds 0 → start_step
                self.lineage_base -= images_between(self.phases, 0, int(start_step), self.dist.world_size)
        if self.is_main:
            self._write_config()

    def _write_config(self) -> None:
        """Write ``config.yaml`` for a new run; on a resume with changed settings,
        keep the old one as ``config.step<N>.yaml`` and say what changed."""
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / "config.yaml"
        if self.resumed_from is not None:
            if not self.changes and path.is_file():
                return
            if path.is_file():
                keep = self.out / f"config.step{self.resumed_from}.yaml"
                os.replace(path, keep)
                print(f"resume at step {self.resumed_from} with changed settings: {'; '.join(self.changes)} "
                      f"(config.yaml updated, previous kept as {keep.name})", flush=True)
        with open(path, "w") as f:
            yaml.safe_dump(self.config, f, sort_keys=False)

    # -- setup helpers -----------------------------------------------------------------
    def _milestones(self) -> List[int]:
        """``optim.milestones`` as steps (fractions of ``optim.steps`` when below 1)."""
        o = self.config["optim"]
        return sorted({max(1, int(round(m * self.total_steps))) if m < 1 else int(m) for m in o.get("milestones") or []})

    def _reschedule(self, step: int) -> None:
        """A resume whose config changed the schedule (``optim.steps``, ``milestones``,
        ``gamma`` or a learning rate): the checkpoint's scheduler and optimizers hold
        the old one, so a scheduler is built from the config and advanced to ``step``,
        as :meth:`_fast_forward` does. The optimizers' moments are kept."""
        o = self.config["optim"]
        for g in self.optimizer.param_groups:
            g["initial_lr"] = g["lr"] = float(o["lr"])
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(self.optimizer, milestones=self._milestones(), gamma=float(o["gamma"]))
        self._advance_scheduler(step)
        for opt, key in ((self.aux_optimizer, "aux_lr"), (self.d_optimizer, "disc_lr")):
            for g in opt.param_groups if opt is not None else ():
                g["lr"] = float(o[key])

    def _advance_scheduler(self, steps: int) -> None:
        import warnings

        with warnings.catch_warnings():  # "lr_scheduler.step() before optimizer.step()" is the point here
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(steps):
                self.scheduler.step()

    def _fast_forward(self, step: int) -> None:
        """Continue a schedule at ``step`` without a checkpoint (from exported weights):
        the learning-rate schedule and the data phases continue where they stood;
        the optimizers' moments start afresh (an export does not hold them)."""
        if not 0 <= step <= self.total_steps:
            raise InvalidArgumentError(f"start_step={step} is outside the schedule's 0..{self.total_steps} steps")
        self._advance_scheduler(step)
        self.step = step

    def _freeze(self, prefixes: List[str]) -> List[nn.Module]:
        frozen = []
        for prefix in prefixes:
            try:
                sub = self.model.get_submodule(prefix)
            except AttributeError as exc:
                names = sorted(n for n, _ in self.model.named_children())
                raise InvalidArgumentError(f"freeze entry {prefix!r} is not a sub-module of {type(self.model).__name__}; top-level: {names}") from exc
            sub.requires_grad_(False)
            frozen.append(sub)
        return frozen

    def _train_mode(self) -> None:
        self.model.train()
        for sub in self.frozen:  # frozen parts run exactly as at inference (real rounding)
            sub.eval()
        self.criterion.train()

    def phase(self, step: int) -> Tuple[int, int]:
        """``(crop, batch_size)`` of optimisation step ``step`` (see :func:`data_phases`)."""
        return phase_at(self.phases, step)

    def _data(self, crop: Optional[int] = None) -> CropSampler:
        """The sampler of ``crop`` (default: the first phase's), built on first use:
        the images are decoded once per crop size and kept in memory."""
        crop = self.phases[0][1] if crop is None else int(crop)
        if crop not in self._samplers:
            d = self._data_cfg
            root = d.get("train") or default_train_dir()
            keep = d.get("keep_on", "auto")
            where = self.device if keep in ("auto", "device") else torch.device(keep)
            self._samplers[crop] = CropSampler(
                root, crop, seed=self.seed, device=where, small=d["small"],
                hflip=bool(d["hflip"]), vflip=bool(d["vflip"]), max_images=d.get("max_images"),
            )
        return self._samplers[crop]

    # -- one step --------------------------------------------------------------------------
    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else nullcontext()

    def train_step(self, step: int) -> Dict[str, Tensor]:
        """Run optimisation step ``step`` (0-based); returns its scalars as detached
        tensors (converting them would synchronise the GPU every step)."""
        rank = self.dist.rank
        torch.manual_seed((self.seed * 1_000_003 + step * 7919 + rank * 104_729) % (2**63 - 1))
        g = torch.Generator().manual_seed((self.seed * 31 + step * 1_000_033 + rank) % (2**63 - 1))
        crop, batch = self.phase(step)
        x = self._data(crop).batch(step, batch, rank, self.dist.world_size).to(self.device, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        fwd_kwargs, extras = self.recipe.sample(x, g)

        if self.gan is not None:
            self.gan.discriminator.requires_grad_(False)
        with self._autocast():  # losses cast to float32 themselves (InfoNCE and likelihoods stay fp32)
            out = self.forward(x, **fwd_kwargs)
            losses = self.criterion(_to_float(out), x, **extras)
        self.optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        params = self.optimizer.param_groups[0]["params"]
        if self.clip:
            losses["grad_norm"] = torch.nn.utils.clip_grad_norm_(params, float(self.clip)).detach()
        # a step whose loss or gradients overflowed (bf16 early in training) is skipped, as
        # torch.amp.GradScaler does; fit() fails after MAX_SKIPPED_STEPS in a row. The flag is
        # read from the gradients (all-reduced under DDP), never from the rank's own loss, so
        # every rank skips the same steps
        norm = losses["grad_norm"] if self.clip else torch.nn.utils.clip_grad_norm_(params, float("inf")).detach()
        bad = (~torch.isfinite(norm)).float()
        if self.optimizer.defaults.get("fused"):
            # fused Adam skips the update (and its step count) itself when found_inf is 1, the
            # hook GradScaler uses: no host synchronisation
            self.optimizer.found_inf = bad
            try:
                self.optimizer.step()
            finally:
                del self.optimizer.found_inf
        elif not bool(bad):  # free on the CPU, where Adam is not fused
            self.optimizer.step()
        losses["skipped"] = bad

        if self.aux_optimizer is not None:
            aux = self.model.aux_loss()
            self.aux_optimizer.zero_grad(set_to_none=True)
            aux.backward()
            distributed.all_reduce_mean_grads(self.aux_params)
            self.aux_optimizer.step()
            losses["aux_loss"] = aux.detach()

        if self.gan is not None:
            self.gan.discriminator.requires_grad_(True)
            with self._autocast():
                d = self.gan.discriminator_loss(_to_float(out), x, **extras)
            self.d_optimizer.zero_grad(set_to_none=True)
            d["loss"].backward()
            distributed.all_reduce_mean_grads(self.gan.discriminator.parameters())
            self.d_optimizer.step()
            losses["d_loss"] = d["loss"].detach()
            losses["d_accuracy"] = d["d_accuracy"]
        self.scheduler.step()
        return {k: v.detach() for k, v in losses.items()}

    # -- the loop ----------------------------------------------------------------------------
    def fit(self, max_minutes: Optional[float] = None, max_steps: Optional[int] = None) -> Dict[str, Any]:
        """Train until ``optim.steps`` (or ``max_steps``) or the wall-clock budget.

        Saves a checkpoint every ``log.checkpoint_every`` steps and when it stops;
        with a budget it stops early enough to save. A SIGTERM stops it the same
        way (``"stopped": "signal"`` in the summary, :attr:`stopped_by_signal`);
        the handler is only in place while ``fit`` runs. Returns the run summary.
        """
        previous = self._install_signal_handler()
        try:
            return self._fit(max_minutes, max_steps)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    @property
    def stopped_by_signal(self) -> bool:
        """Whether a SIGTERM stopped the last :meth:`fit` (a caller then stops too)."""
        return self._stop_signal

    def _fit(self, max_minutes: Optional[float], max_steps: Optional[int]) -> Dict[str, Any]:
        target = self.total_steps if max_steps is None else min(int(max_steps), self.total_steps)
        start = time.monotonic()
        budget = None if max_minutes is None else 60.0 * float(max_minutes)
        log_cfg, val_cfg = self.config["log"], self.config["val"]
        self._train_mode()
        self._data(self.phase(self.step)[0])
        logger = _CsvLog(self.out / "log.csv", self.step) if self.is_main else None
        bar = None
        if self.is_main:
            print(self.startup_summary(target), flush=True)
        if self.is_main and self.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=target, initial=min(self.step, target), desc=self.config["name"], dynamic_ncols=True)
        bar_every = 1 if self.device.type == "cpu" else min(10, int(log_cfg["every"]))  # .item() syncs a GPU
        rate_terms = [name for name, term in self.criterion.terms.items() if isinstance(term, RateLoss)]
        step_times: List[float] = []
        save_time, val_time = 5.0, 60.0
        images = 0
        window_start = time.monotonic()
        reason = "done"
        logs: Optional[Dict[str, Any]] = None
        last_logged = self.step
        # steps skipped since the last log row, in a row now, longest run since the last log row:
        # device tensors (converting each step's flag would synchronise a GPU), checked at log rows
        skipped = run = worst = torch.zeros((), device=self.device)
        while self.step < target:
            elapsed = time.monotonic() - start
            est = (sorted(step_times)[len(step_times) // 2] if step_times else 0.0)
            stop = budget is not None and elapsed + 2 * est + 2 * save_time > budget
            if distributed.broadcast_flag(stop or self._stop_signal, self.device):
                reason = "signal" if self._stop_signal else "time budget"
                break
            t0 = time.monotonic()
            logs = self.train_step(self.step)
            self.step += 1
            s = logs.pop("skipped")
            skipped, run = skipped + s, (run + s) * s
            worst = torch.maximum(worst, run)
            images += self.phase(self.step - 1)[1] * self.dist.world_size
            step_times = (step_times + [time.monotonic() - t0])[-50:]
            if bar is not None:
                bar.update(1)
                if self.step % bar_every == 0 or self.step <= 10:
                    bar.set_postfix(progress_fields(logs, rate_terms), refresh=False)
            if self.step % int(log_cfg["every"]) == 0 or self.step == target:
                _check_skipped(int(worst), self.step)
                worst = run
                logs = {k: float(v) for k, v in logs.items()}
                if not float(s) and not all(math.isfinite(v) for v in logs.values()):
                    raise RDCError(f"non-finite loss at step {self.step}: {logs}; lower optim.lr or check the data")
            if logger is not None and (self.step % int(log_cfg["every"]) == 0 or self.step == target):
                last_logged = self.step
                now = time.monotonic()
                row = {"step": self.step, "time_s": round(self.elapsed + now - start, 2),
                       "lr": self.optimizer.param_groups[0]["lr"],
                       "images_per_s": round(images / max(1e-9, now - window_start), 2), **logs, "skipped_steps": int(skipped)}
                logger.write(row)
                images, window_start, skipped = 0, now, torch.zeros((), device=self.device)
            if int(log_cfg["checkpoint_every"]) and self.step % int(log_cfg["checkpoint_every"]) == 0:
                t0 = time.monotonic()
                self.save_checkpoint(elapsed_extra=time.monotonic() - start)
                save_time = time.monotonic() - t0
            if int(val_cfg.get("every") or 0) and self.step % int(val_cfg["every"]) == 0:
                left = None if budget is None else budget - (time.monotonic() - start)
                if left is not None and left < 2 * val_time + 2 * save_time:
                    if self.is_main:
                        print(f"step {self.step}: validation skipped, {left:.0f} s of the time budget left", flush=True)
                else:
                    t0 = time.monotonic()
                    self.validate()
                    val_time = time.monotonic() - t0
        if bar is not None:
            bar.close()
        _check_skipped(int(worst), self.step)
        if logger is not None and logs is not None and last_logged != self.step:  # stopped between log steps
            logger.write({"step": self.step, "time_s": round(self.elapsed + time.monotonic() - start, 2),
                          "lr": self.optimizer.param_groups[0]["lr"],
                          "images_per_s": round(images / max(1e-9, time.monotonic() - window_start), 2),
                          **{k: float(v) for k, v in logs.items()}})
        run_s = time.monotonic() - start
        self.save_checkpoint(elapsed_extra=run_s)
        self.elapsed += run_s
        summary = {"name": self.config["name"], "step": self.step, "target_steps": target, "stopped": reason,
                   "resumed_from": self.resumed_from, "changed_on_resume": self.changes,
                   "elapsed_s": round(self.elapsed, 2), "world_size": self.dist.world_size,
                   "rank_digests": distributed.gather_strings(state_digest(self.model, self.criterion))}
        if len(set(summary["rank_digests"])) > 1:
            raise RDCError(f"DDP ranks ended with different weights: {summary['rank_digests']}")
        if self.is_main:
            with open(self.out / "summary.json", "w") as f:
                json.dump(summary, f, indent=2)
        return summary

    def startup_summary(self, target: int) -> str:
        """What this run is about to do: device and speed switches, data, parameters, output."""
        speed = self.config["speed"]
        params = sum(p.numel() for p in self.model.parameters())
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        d = self._data_cfg
        phases = ", ".join(f"from step {s}: crop {c}, batch {b}" for s, c, b in self.phases) if len(self.phases) > 1 else \
            f"crop {self.phases[0][1]}, batch {self.phases[0][2]}"
        n = torch.get_num_threads()
        threads = f" ({n} thread{'s' if n != 1 else ''})" if self.device.type == "cpu" else ""
        start = f"resuming at step {self.step}" if self.resumed_from is not None else "new run"
        return "\n".join([
            f"compressai-rdc train {self.config['name']} ({self.config['kind']}): {start}, until step {target} of {self.total_steps}",
            f"  device     {self.device}{threads} x {self.dist.world_size} process(es); bf16 {_onoff(self.bf16)}, "
            f"channels_last {_onoff(self.channels_last)}, compile {_onoff(bool(speed.get('compile')))}, "
            f"fused_adam {speed.get('fused_adam')}" + (f", tf32 {_onoff(bool(speed.get('tf32', True)))}" if self.device.type == "cuda" else ""),
            f"  data       {d['train']}: {len(self._data(self.phase(self.step)[0]))} images; {phases}",
            f"  model      {self.config['model']['name']}: {params / 1e6:.2f} M parameters, {trainable / 1e6:.2f} M trained"
            + (f" (frozen: {', '.join(self.config.get('freeze') or [])})" if self.config.get("freeze") else ""),
            f"  output     {self.out}/ (checkpoint.pt, log.csv, config.yaml, summary.json)",
        ])

    def _install_signal_handler(self):
        """Turn SIGTERM into "stop after this step, checkpoint" (main thread only); returns the
        handler it replaced, or ``None`` when none was installed."""
        if not threading_main():
            return None
        self._stop_signal = False

        def handler(signum, frame):
            self._stop_signal = True

        return signal.signal(signal.SIGTERM, handler)

    # -- checkpoints ---------------------------------------------------------------------------
    def state(self) -> Dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "step": self.step,
            "elapsed_s": self.elapsed,
            "lineage_base": self.lineage_base,
            "config": self.config,
            "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "aux_optimizer": self.aux_optimizer.state_dict() if self.aux_optimizer else None,
            "d_optimizer": self.d_optimizer.state_dict() if self.d_optimizer else None,
            "scheduler": self.scheduler.state_dict(),
            "criterion": self.criterion.trainable_state_dict(),
        }

    def save_checkpoint(self, elapsed_extra: float = 0.0) -> Optional[Path]:
        """Write ``out/checkpoint.pt`` atomically (rank 0); returns its path."""
        distributed.barrier()
        if not self.is_main:
            return None
        state = self.state()
        state["elapsed_s"] = self.elapsed + elapsed_extra
        self.out.mkdir(parents=True, exist_ok=True)
        tmp = self.out / (CHECKPOINT + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.out / CHECKPOINT)
        return self.out / CHECKPOINT

    def _load_checkpoint(self, path: Path) -> None:
        state = torch.load(path, map_location=self.device, weights_only=True)
        if state.get("format") != FORMAT_VERSION:
            raise CheckpointError(f"{str(path)!r} has checkpoint format {state.get('format')!r}, this version reads {FORMAT_VERSION}")
        if state["config"]["model"] != self.config["model"]:
            raise InvalidArgumentError(
                f"--resume with a different model section: checkpoint has {state['config']['model']}, config has {self.config['model']}"
            )
        self.changes = config_changes(state["config"], self.config)
        self.resumed_from = int(state["step"])
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.aux_optimizer is not None and state["aux_optimizer"] is not None:
            self.aux_optimizer.load_state_dict(state["aux_optimizer"])
        if self.d_optimizer is not None and state["d_optimizer"] is not None:
            self.d_optimizer.load_state_dict(state["d_optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if any(c.startswith(SCHEDULE_KEYS) for c in self.changes):
            self._reschedule(int(state["step"]))
        missing, unexpected = self.criterion.load_state_dict(state["criterion"], strict=False)
        bad = list(unexpected) + [k for k in missing if ".backbone." not in k]
        if bad:
            raise CheckpointError(f"loss state in {str(path)!r} does not fit the config's loss: {bad[:5]}")
        self.step = int(state["step"])
        self.elapsed = float(state.get("elapsed_s", 0.0))
        # checkpoints written before lineage was recorded: not known (the export then omits it)
        self.lineage_base = state.get("lineage_base")

    # -- export and validation ---------------------------------------------------------------
    def export(self, path: Union[str, os.PathLike], metadata: Optional[Mapping[str, str]] = None):
        """Write the model's fp16 safetensors weights (entropy coders updated) via
        :func:`compressai_rdc.zoo.save_weights`; rank 0 only. The file's metadata
        holds the recipe, the step, the images this run has seen (steps 0 → step,
        all processes), its training seconds and device type (and ``metadata``):
        what ``compressai-rdc release --adopt`` records of a plain training run.
        ``lineage_images`` adds the images of the weights it started from and their
        ancestors (:func:`lineage_images`); it is left out where they are not known."""
        from compressai_rdc.zoo import save_weights

        if not self.is_main:
            return None, None
        model = copy.deepcopy(self.model).float().to(memory_format=torch.contiguous_format).eval()
        model.update(force=True)
        run_images = images_between(self.phases, 0, self.step, self.dist.world_size)
        meta = {"recipe": str(self.config["name"]), "step": str(self.step), "run_images": str(run_images),
                "run_seconds": f"{self.elapsed:.1f}", "device": self.device.type,
                **({"lineage_images": str(self.lineage_base + run_images)} if self.lineage_base is not None else {}),
                **{k: str(v) for k, v in (metadata or {}).items()}}
        return save_weights(model, path, metadata=meta)

    def validate(self) -> List[Dict[str, Any]]:
        """Real compress/decompress validation (rank 0), appended to ``out/val.csv``."""
        from compressai_rdc.training.validation import validate

        rows: List[Dict[str, Any]] = []
        if self.is_main:
            rows = validate(self.model, self.recipe.val_controls(self.model), self.config["val"], self.device)
            log = _CsvLog(self.out / "val.csv", None)
            for r in rows:
                log.write({"step": self.step, **r})
        distributed.barrier()
        self._train_mode()
        return rows


def _onoff(flag: bool) -> str:
    return "on" if flag else "off"


def progress_fields(logs: Mapping[str, Tensor], rate_terms: Sequence[str] = ()) -> Dict[str, str]:
    """Loss, rate (bpp: the sum of the ``rate_terms``, the loss terms that are rates) and
    PSNR of one step's logs, for the progress bar."""
    out = {"loss": f"{float(logs['loss']):.4g}"}
    rates = [logs[k] for k in rate_terms if k in logs] or [logs[k] for k in logs if k == "bpp" or k.endswith(".bpp")][:1]
    if rates:
        out["bpp"] = f"{float(sum(rates)):.3f}"
    psnr = next((k for k in logs if k == "psnr" or k.endswith(".psnr")), None)
    if psnr is not None:
        out["psnr"] = f"{float(logs[psnr]):.2f}"
    return out


#: consecutive skipped steps (non-finite loss or gradients) after which a run fails
MAX_SKIPPED_STEPS = 20


def _check_skipped(longest_run: int, step: int) -> None:
    """Fail when ``longest_run`` steps in a row were skipped (checked at log rows and at the
    end of :meth:`Trainer.fit`, so a GPU is not synchronised every step)."""
    if longest_run >= MAX_SKIPPED_STEPS:
        raise RDCError(
            f"non-finite loss or gradients for {longest_run} steps in a row (up to step {step}); "
            "lower optim.lr, turn bf16 off (--set speed.bf16=false) or check the data")


#: config keys whose change on resume re-applies the schedule (:meth:`Trainer._reschedule`)
SCHEDULE_KEYS = ("optim.steps:", "optim.milestones:", "optim.gamma:", "optim.lr:", "optim.aux_lr:", "optim.disc_lr:")


def config_changes(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> List[str]:
    """``"key: old -> new"`` for every dotted key whose value differs."""
    out: List[str] = []
    for k in sorted(set(old) | set(new), key=str):
        a, b = old.get(k), new.get(k)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += config_changes(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {a!r} -> {b!r}")
    return out


def phase_at(phases: Sequence[Tuple[int, int, int]], step: int) -> Tuple[int, int]:
    """``(crop, batch_size)`` at optimisation step ``step`` of a :func:`data_phases` schedule."""
    crop, batch = phases[0][1:]
    for start, c, b in phases:
        if step >= start:
            crop, batch = c, b
    return crop, batch


def images_between(phases: Sequence[Tuple[int, int, int]], start: int, stop: int, world_size: int = 1) -> int:
    """Training images of steps ``start … stop − 1`` of a :func:`data_phases` schedule
    (each step one batch per process)."""
    return sum(phase_at(phases, s)[1] for s in range(start, stop)) * world_size


def lineage_images(path: Union[str, Path]) -> Optional[int]:
    """Training images behind the weights file ``path``: those of the run that wrote
    it and of every run its weights descend from (``--init-weights`` chains).

    Read from the file's ``lineage_images`` metadata (written by
    :meth:`Trainer.export`); for a shipped file without it, from the ``images`` of
    its entry in the ``release.json`` manifest beside it. ``None`` where neither
    says (weights from elsewhere, or exports older than the metadata): not known,
    rather than counted as zero."""
    from safetensors import safe_open

    from compressai_rdc.training.release import read_manifest

    path = Path(path)
    if path.suffix != ".safetensors":
        return None
    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    if "lineage_images" in meta:
        return int(meta["lineage_images"])
    for entry in read_manifest(path.parent / "release.json").values():
        if isinstance(entry, dict) and entry.get("file") == path.name and "images" in entry:
            return int(entry["images"])
    return None


def load_init_weights(model: nn.Module, path: Union[str, Path], only: Optional[Sequence[str]] = None) -> nn.Module:
    """Start ``model`` from the ``.safetensors`` file ``path``.

    With ``only`` (sub-module names, ``config model.init_only``, e.g. ``[primary]``) just
    those sub-modules' tensors are read from the file and every other part keeps its
    fresh initialisation: a residual branch of other widths trained on a finished
    primary, or a new part assembled around trained ones.

    Raises:
        InvalidArgumentError: a name of ``only`` is not a sub-module of ``model``, or the
            file holds none of its tensors.
        WeightsFormatError: the picked tensors do not fit ``model``.
    """
    from compressai_rdc.zoo import load_into, load_state_dict_file

    state = load_state_dict_file(path)
    if only:
        modules = dict(model.named_modules())
        bad = [n for n in only if not n or n not in modules]
        if bad:
            children = ", ".join(n for n, _ in model.named_children())
            raise InvalidArgumentError(f"model.init_only names {bad}, not sub-modules of {type(model).__name__} (its parts: {children})")
        picked = {k: v for k, v in state.items() if any(k.startswith(n + ".") for n in only)}
        empty = [n for n in only if not any(k.startswith(n + ".") for k in picked)]
        if empty:
            raise InvalidArgumentError(f"init weights {str(path)!r} hold no tensors of {empty} (model.init_only)")
        state = {**model.state_dict(), **picked}
    return load_into(model, state, source=str(path) + (f" ({', '.join(only)} only)" if only else ""))


def data_phases(data: Mapping[str, Any], total_steps: int) -> List[Tuple[int, int, int]]:
    """The crop-size schedule of a config's ``data`` section as sorted
    ``(first step, crop, batch_size)`` triples.

    ``data.crop`` / ``data.batch_size`` hold from step 0; each entry of
    ``data.schedule`` (``{from: 0.9, crop: 256, batch_size: 8}``) switches to its
    crop (and batch size, default unchanged) from a step, given as a fraction of
    ``optim.steps`` when below 1. Small crops early and the evaluation resolution
    last is how the stage-0 recipe buys most of its steps cheaply.
    """
    entries = []
    for i, entry in enumerate(data.get("schedule") or []):
        if not isinstance(entry, Mapping) or "from" not in entry or "crop" not in entry:
            raise InvalidArgumentError(f"data.schedule[{i}]={entry!r} must be a mapping with 'from' and 'crop' (and optionally 'batch_size')")
        start = float(entry["from"])
        first = int(round(start * total_steps)) if 0 <= start < 1 else int(start)
        crop, batch = int(entry["crop"]), entry.get("batch_size")
        if first < 0 or crop < 16 or (batch is not None and int(batch) < 1):
            raise InvalidArgumentError(f"data.schedule[{i}]={dict(entry)!r}: need from >= 0, crop >= 16, batch_size >= 1")
        entries.append((first, crop, batch))
    phases = [(0, int(data["crop"]), int(data["batch_size"]))]
    for first, crop, batch in sorted(entries, key=lambda e: e[0]):  # a batch size left out carries over
        phases.append((first, crop, phases[-1][2] if batch is None else int(batch)))
    return phases


def state_digest(model: nn.Module, criterion: Optional[nn.Module] = None) -> str:
    """sha256 (16 hex digits) of a model's parameters and buffers (and the loss's
    trainable state: queue, discriminator), for cross-rank checks."""
    import hashlib

    h = hashlib.sha256()
    items = sorted(model.state_dict().items())
    if criterion is not None:
        items += sorted((f"criterion.{k}", v) for k, v in criterion.trainable_state_dict().items())
    for k, v in items:
        h.update(k.encode())
        h.update(v.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


class _CsvLog:
    """Append-only CSV; on resume, rows after the checkpoint's step are dropped
    so the log reads like the uninterrupted run's."""

    def __init__(self, path: Path, resume_step: Optional[int]):
        self.path = path
        self.fields: Optional[List[str]] = None
        if path.is_file():
            with open(path, newline="") as f:
                reader = csv.DictReader(f)
                self.fields = reader.fieldnames
                rows = list(reader)
            if resume_step is not None:
                kept = [r for r in rows if int(r["step"]) <= resume_step]
                if len(kept) != len(rows):
                    self._rewrite(kept)

    def _rewrite(self, rows):
        with open(self.path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.fields)
            w.writeheader()
            w.writerows(rows)

    def write(self, row: Mapping[str, Any]) -> None:
        new = self.fields is None
        if new:
            self.fields = list(row)
        elif any(k not in self.fields for k in row):
            with open(self.path, newline="") as f:
                rows = list(csv.DictReader(f))
            self.fields = self.fields + [k for k in row if k not in self.fields]
            self._rewrite(rows)
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.fields, restval="")
            if new:
                w.writeheader()
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


__all__ = ["CheckpointError", "Trainer", "cpu_supports_bf16", "data_phases", "images_between", "phase_at", "keep_entropy_models_fp32", "lineage_images", "split_parameters"]
