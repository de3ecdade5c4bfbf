"""The training loop: one function, resumable, single process or DDP (torchrun).

The model's ``forward`` returns its own rate-distortion loss and aux loss; the
loop only feeds crops, steps the optimiser, validates, checkpoints, exports.
"""

from __future__ import annotations

import json
import math
import os
import platform
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ..device import resolve_device
from ..models import MODELS
from ..precision import transform_dtype
from ..weights import cumulative_steps, save_weights
from ..metrics import mse_to_psnr
from .data import RandomCrops, center_crops, find_images, split_holdout
from .ema import WeightAverage


@dataclass
class TrainConfig:
    data: list[str]
    model: str = "vam"
    out: str = "weights/vam.safetensors"
    steps: int = 10_000
    batch: int = 8
    crop: int = 128
    lambda_base: float = 0.0035
    lambda_top: float = 0.0483
    lambda_preview: float = 0.0    # vam: distortion weight of the z-only preview point
    precision: str = "auto"        # transforms under bf16 autocast: auto (CPUs with bf16), bf16, fp32
    lr: float = 1e-4
    warmup: int = 500
    decay_from: float = 0.85      # lr drops tenfold for the last 15% of steps
    aux_lr: float = 1e-3
    clip: float = 1.0
    max_minutes: float | None = None  # stop (checkpoint, export) after this much wall time
    ema: float = 0.0               # decay of a moving average of the weights, exported in their place (0: off)
    resume: str | None = None
    init: str | None = None        # start from exported weights (fine-tune), fresh optimiser
    stage: str = "full"            # "rem": train vam's Rate Enhancement Modules alone on a frozen --init model
    integer_params: bool = True    # export with the integer entropy-parameter path
    rem_shares: tuple = ()         # vam: where in the ranked residual each REM runs (stage rem: default 0.05)
    rem_loss: str = "rate"         # stage rem: "rate" (the paper's) or "rd" (also the refined mean fill's distortion)
    rem_cache: int = 0             # stage rem: draw batches from this many crops' frozen statistics (rem_cache.py)
    checkpoint: str | None = None  # default: OUT with .ckpt
    checkpoint_every: int = 200
    checkpoint_minutes: float = 5.0
    val: str | None = None
    val_every: int = 500
    val_crop: int = 256
    device: str = "auto"
    seed: int = 0
    threads: int | None = None
    model_args: dict = field(default_factory=dict)

    @property
    def checkpoint_path(self) -> Path:
        return Path(self.checkpoint or Path(self.out).with_suffix(".ckpt"))


def learning_rate(cfg: TrainConfig, step: int, minutes: float = 0.0) -> float:
    """Linear warm-up, then flat, then a tenfold drop for the final stretch.

    The final stretch is the last 15 % of the steps, or of ``max_minutes``
    (this run's wall time) when that ends the run first: a run stopped by
    the clock still gets its low-rate finish.
    """
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    late = step >= cfg.decay_from * cfg.steps
    if cfg.max_minutes is not None:
        late = late or minutes >= cfg.decay_from * cfg.max_minutes
    return cfg.lr * (0.1 if late else 1.0)


def _atomic_torch_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    torch.save(obj, tmp)
    os.replace(tmp, path)


@torch.no_grad()
def validate(model, images: torch.Tensor, batch: int = 8) -> dict:
    """Estimated bpp and PSNR at the base (q=0) and full (q=1) operating points
    (and the preview, where the model prices one), always in float32."""
    model.eval()
    dtype, model.transform_dtype = getattr(model, "transform_dtype", None), None
    sums = {"bpp_base": 0.0, "bpp_full": 0.0, "mse_base": 0.0, "mse_q": 0.0, "mse_preview": 0.0}
    for i in range(0, len(images), batch):
        x = images[i:i + batch].to(next(model.parameters()).device)
        out = model(x, fraction=torch.ones(len(x), device=x.device))
        for k in sums:
            sums[k] += float(out.get(k, 0.0)) * len(x)
    model.train()
    model.transform_dtype = dtype
    n = len(images)
    if getattr(model, "training_stage", "full") == "rem":   # the residual's rate after the REM points
        result = {"rem_bpp_before": sums["bpp_base"] / n, "rem_bpp_after": sums["bpp_full"] / n}
        if sums["mse_q"]:   # rem_loss "rd": a layer past each REM point, decoded with its mean fill
            result["rem_psnr"] = mse_to_psnr(sums["mse_q"] / n, peak=1.0)
        return result
    result = {"bpp_base": sums["bpp_base"] / n, "bpp_full": sums["bpp_full"] / n,
              "psnr_base": mse_to_psnr(sums["mse_base"] / n, peak=1.0),
              "psnr_full": mse_to_psnr(sums["mse_q"] / n, peak=1.0)}
    if sums["mse_preview"]:
        result["psnr_preview"] = mse_to_psnr(sums["mse_preview"] / n, peak=1.0)
    return result


def _sigterm_raises_interrupt():
    """Treat SIGTERM like Ctrl-C so the loop can checkpoint; returns the old handler."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)


def resume_random_streams(ckpt: dict, data, rank: int, seed: int) -> None:
    """Rank 0 continues the crop and torch random streams the checkpoint saved, exactly.
    The checkpoint holds rank 0's streams only, so every other rank starts fresh ones
    seeded by (seed, rank, step): restoring rank 0's there would make every process draw
    the same crops, and DistributedDataParallel would average one batch with itself."""
    if rank == 0:
        data.rng.bit_generator.state = ckpt["data_rng"]
        torch.set_rng_state(ckpt["torch_rng"])
    else:
        data.rng = np.random.default_rng([seed, rank, ckpt["step"]])
        torch.manual_seed(int(np.random.default_rng([seed, rank, ckpt["step"], 1]).integers(2**62)))


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def train(cfg: TrainConfig, on_event=None) -> dict:
    """Train ``cfg.model`` and export it to ``cfg.out``; returns the manifest.

    ``on_event(kind, info)`` receives "load", "cache" (--rem-cache), "step", "val", "checkpoint" and
    "done" events (the CLI draws its progress bar from them); only rank 0 emits.
    """
    rank, world = _distributed()
    emit = (on_event if rank == 0 and on_event else (lambda *a: None))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    torch.manual_seed(cfg.seed + rank)

    files = find_images(cfg.data)
    if cfg.val:  # a validation folder replaces the held-out slice; never train on its images
        val_files = find_images([cfg.val])
        train_files = sorted(set(files) - set(val_files))
    else:
        train_files, val_files = split_holdout(files)
    data = RandomCrops(train_files, cfg.crop, seed=cfg.seed + rank,
                       on_load=lambda i, n: emit("load", {"done": i, "total": n}))
    val_images = center_crops(val_files, cfg.val_crop) if val_files and rank == 0 else None

    extra = {"lambda_preview": cfg.lambda_preview} if cfg.lambda_preview else {}
    if cfg.stage not in ("full", "rem"):
        raise ValueError(f"unknown training stage {cfg.stage!r}: full or rem")
    rem_shares = tuple(cfg.rem_shares) or ((0.05,) if cfg.stage == "rem" else ())
    if rem_shares:
        if cfg.model != "vam":
            raise ValueError("Rate Enhancement Modules are vam's")
        extra["rem_shares"] = rem_shares
    if cfg.stage == "rem" and not (cfg.init or cfg.resume):
        raise ValueError("--stage rem trains REMs on a trained model: give --init WEIGHTS")
    init_state = ckpt = None
    if cfg.resume:
        ckpt = torch.load(cfg.resume, map_location=device, weights_only=False)
    elif cfg.init:
        from safetensors.torch import load_file

        init_state = load_file(cfg.init)
    # REMs train on a frozen backbone: its integer parameter path stays the one it came with
    started_from = ckpt["model"] if ckpt else init_state or {}
    if cfg.stage == "rem" and any("_integer." in k for k in started_from):
        extra["integer_params"] = True
    model = MODELS[cfg.model](lambda_base=cfg.lambda_base, lambda_top=cfg.lambda_top,
                              **extra, **cfg.model_args).to(device)
    model.transform_dtype = transform_dtype(cfg.precision, device)
    if cfg.stage == "rem":  # the backbone and hyperprior stay as they are: only the REMs learn
        model.training_stage = "rem"
        if cfg.rem_loss not in ("rate", "rd"):
            raise ValueError(f"unknown REM loss {cfg.rem_loss!r}: rate or rd")
        model.rem_loss = cfg.rem_loss
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith("residual.rems."))
        if cfg.rem_cache and cfg.rem_loss != "rate":
            raise ValueError("--rem-cache holds the backbone's statistics, not the images: it trains the rate loss")
    elif cfg.rem_cache:
        raise ValueError("--rem-cache is for --stage rem (a frozen backbone)")
    quantiles = [p for n, p in model.named_parameters() if n.endswith("quantiles") and p.requires_grad]
    main = [p for n, p in model.named_parameters() if not n.endswith("quantiles") and p.requires_grad]
    optimizer = torch.optim.Adam([{"params": main, "lr": cfg.lr}, {"params": quantiles, "lr": cfg.aux_lr}])

    step, elapsed, history, previous = 0, 0.0, [], None
    if init_state is not None:
        state = init_state
        if cfg.stage == "full" and not rem_shares:
            # REMs are trained on a frozen backbone (--stage rem); training the backbone
            # makes them stale, so they are left behind (scripts/attach_rems.py carries them)
            state = {k: v for k, v in state.items() if not k.startswith("residual.rems.")}
        if not model.has_integer_params:
            # an integer parameter path is made from the float weights at export: never trained
            state = {k: v for k, v in state.items() if "_integer." not in k}
        missing, unexpected = model.load_state_dict(state, strict=False)
        new_rems = all(k.startswith("residual.rems.") for k in missing)
        if unexpected or not new_rems or (missing and cfg.stage != "rem"):
            raise ValueError(f"{cfg.init} does not fit this model (missing {missing[:3]}, unexpected {unexpected[:3]})")
        init_manifest = Path(cfg.init).with_suffix(".json")
        previous = json.loads(init_manifest.read_text()).get("training") if init_manifest.exists() else None
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        step, elapsed, history = ckpt["step"], ckpt["elapsed"], ckpt.get("history", [])
        previous = ckpt.get("previous")
        resume_random_streams(ckpt, data, rank, cfg.seed)
    average = None
    if cfg.ema:    # after loading: the average starts from the weights the run starts with
        average = WeightAverage([(n, p) for n, p in model.named_parameters()
                                 if p.requires_grad and not n.endswith("quantiles")], cfg.ema, step)
        if ckpt is not None and ckpt.get("weight_average"):
            average.load_state_dict(ckpt["weight_average"])
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    model.train()
    batches = data
    if cfg.rem_cache:   # after loading: the statistics are the trained backbone's
        from .rem_cache import RemStatisticsCache

        batches = RemStatisticsCache(model, data, cfg.rem_cache, seed=cfg.seed + rank,
                                     on_progress=lambda i, n: emit("cache", {"done": i, "total": n}))

    def checkpoint():
        if rank == 0:
            _atomic_torch_save({
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                "elapsed": elapsed, "history": history, "config": asdict(cfg),
                "data_rng": data.rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                "previous": previous, **({"weight_average": average.state_dict()} if average else {}),
            }, cfg.checkpoint_path)
            emit("checkpoint", {"step": step, "path": str(cfg.checkpoint_path)})

    started = last_ckpt = time.monotonic()

    def time_is_up() -> bool:
        if cfg.max_minutes is None:
            return False
        up = time.monotonic() - started > 60 * cfg.max_minutes
        if world > 1:  # every process stops at the same step
            flag = torch.tensor([int(up)], device=device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            up = bool(flag.item())
        return up

    def run_validation():
        history.append({"step": step, **validate(model, val_images)})
        emit("val", history[-1])

    previous_sigterm = _sigterm_raises_interrupt()
    try:
        while step < cfg.steps and not time_is_up():
            t0 = time.monotonic()
            optimizer.param_groups[0]["lr"] = learning_rate(cfg, step, (t0 - started) / 60)
            x = batches.batch(cfg.batch)
            x = x.to(device, non_blocking=True) if torch.is_tensor(x) else x
            out = net(x)
            optimizer.zero_grad(set_to_none=True)
            (out["loss"] + out["aux_loss"]).backward()
            if cfg.clip:
                torch.nn.utils.clip_grad_norm_(main, cfg.clip)
            optimizer.step()
            if average is not None:
                average.update()
            step += 1
            elapsed += time.monotonic() - t0
            emit("step", {"step": step, "steps": cfg.steps, "loss": float(out["loss"].detach()),
                          "bpp": float(out["bpp_full"]),
                          "psnr": mse_to_psnr(float(out["mse_q"]), peak=1.0) if "mse_q" in out else float("nan"),
                          "lr": optimizer.param_groups[0]["lr"]})
            if not math.isfinite(float(out["loss"].detach())):
                raise FloatingPointError(f"loss became {float(out['loss'].detach())} at step {step}")
            if val_images is not None and (step % cfg.val_every == 0 or step == cfg.steps):
                run_validation()
            if step % cfg.checkpoint_every == 0 or time.monotonic() - last_ckpt > 60 * cfg.checkpoint_minutes \
                    or step == cfg.steps:
                checkpoint()
                last_ckpt = time.monotonic()

        if step < cfg.steps:  # stopped by --max-minutes: resumable, and exported as it stands
            if val_images is not None and (not history or history[-1]["step"] != step):
                run_validation()
            checkpoint()
    except KeyboardInterrupt:
        checkpoint()  # a killed run loses nothing: --resume continues from here
        raise
    finally:
        if previous_sigterm is not None:
            signal.signal(signal.SIGTERM, previous_sigterm)

    manifest = None
    if rank == 0:
        averaged = None
        if average is not None:   # the average goes out in place of the last step's weights
            average.copy_to_model()
            averaged = {"decay": average.decay, "from_step": average.start_step,
                        "validation": validate(model, val_images) if val_images is not None else None}
        integer_params = None
        if cfg.integer_params and hasattr(model, "calibrate_integer_params") and not model.has_integer_params:
            from .integer_params import calibration_crops, integerize

            crops = val_images if val_images is not None else calibration_crops(cfg.data)
            integer_params = integerize(model.eval(), crops)
        manifest = save_weights(model, Path(cfg.out), {
            "training": {
                "steps": step, "batch": cfg.batch * world, "crop": cfg.crop, "lr": cfg.lr,
                "lambda_base": cfg.lambda_base, "lambda_top": cfg.lambda_top,
                "lambda_preview": cfg.lambda_preview,
                "precision": str(model.transform_dtype or torch.float32).replace("torch.", ""),
                "warmup": cfg.warmup, "seed": cfg.seed,
                "stage": cfg.stage, **({"rem_shares": list(rem_shares)} if rem_shares else {}),
                **({"rem_loss": cfg.rem_loss} if cfg.stage == "rem" else {}),
                **({"rem_cache": cfg.rem_cache} if cfg.rem_cache else {}),
                "data": [str(d) for d in cfg.data], "images": len(train_files),
                "device": f"{device.type} ({platform.processor() or platform.machine()}, "
                          f"{torch.get_num_threads()} threads)" if device.type == "cpu"
                          else torch.cuda.get_device_name(device),
                "processes": world, "wall_time_s": round(elapsed, 1),
                "validation": history[-1] if history else None,
                "init_from": cfg.init,
                "previous": previous,
                "cumulative_steps": step + cumulative_steps(previous),
                **({"integer_params": integer_params} if integer_params else {}),
                **({"weight_average": averaged} if averaged else {}),
            },
        })
        emit("done", manifest)
    if world > 1:
        dist.barrier()
    return manifest
