"""Training throughput of each precision/layout setting, side by side in one run.

    python benchmarks/train_speed.py [--model vam] [--init weights/vam.safetensors]
        [--steps 40] [--timed 15] [--batch 8] [--crop 128] [--json out.json]

Every setting starts from the same weights (``--init``, default the shipped
ones) and the same seed, and takes ``--steps`` real training steps (forward,
backward, Adam) on the same crops of the training set. Reported: the median
step time of the last ``--timed`` steps, training pixels per second, and the
quality side effect: the mean loss over the last ``--timed`` steps and the
float32 validation loss on fixed held-out crops after the run (lower is
better; a setting that trains faster but worse shows it here).

Crops come from ``../shared/data/train`` (``--data``); with no data there, from
scikit-image's sample photos.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated")

import torch  # noqa: E402

SETTINGS = {
    # name: (autocast dtype of the transforms, channels_last)
    "fp32": (None, False),
    "fp32+channels_last": (None, True),
    "bf16": (torch.bfloat16, False),
    "bf16+channels_last": (torch.bfloat16, True),
}


def training_crops(data: Path, count: int, crop: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` random training crops and 16 held-out validation crops (fixed)."""
    from progcodec.train.data import RandomCrops, center_crops, find_images, split_holdout

    if data.exists():
        train_files, val_files = split_holdout(find_images([data]))
        train_files = train_files[:200]  # enough variety; loading all 1680 takes a minute
    else:
        import skimage.data

        from PIL import Image

        tmp = Path("/tmp/train_speed_images")
        tmp.mkdir(exist_ok=True)
        names = ["astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry"]
        train_files = []
        for n in names:
            p = tmp / f"{n}.png"
            Image.fromarray(getattr(skimage.data, n)()).convert("RGB").save(p)
            train_files.append(p)
        val_files = train_files[:2]
    crops = RandomCrops(train_files, crop, seed=seed)
    batches = torch.stack([crops.batch(1)[0] for _ in range(count)])
    return batches, center_crops(val_files, 256, limit=16)


def run_setting(name: str, args, batches: torch.Tensor, val: torch.Tensor) -> dict:
    from progcodec.weights import load_model

    dtype, channels_last = SETTINGS[name]
    torch.manual_seed(args.seed)
    model = load_model(args.init) if args.init else load_model(args.model)
    model.train()
    model.transform_dtype = dtype
    if channels_last:
        model.to(memory_format=torch.channels_last)
    main = [p for n, p in model.named_parameters() if not n.endswith("quantiles")]
    quantiles = [p for n, p in model.named_parameters() if n.endswith("quantiles")]
    opt = torch.optim.Adam([{"params": main, "lr": args.lr}, {"params": quantiles, "lr": 1e-3}])
    times, losses = [], []
    for step in range(args.steps):
        x = batches[step * args.batch:(step + 1) * args.batch]
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        t0 = time.perf_counter()
        out = model(x)
        opt.zero_grad(set_to_none=True)
        (out["loss"] + out["aux_loss"]).backward()
        torch.nn.utils.clip_grad_norm_(main, 1.0)
        opt.step()
        times.append(time.perf_counter() - t0)
        losses.append(float(out["loss"].detach()))
    model.eval()
    model.transform_dtype = None
    with torch.no_grad():
        gen = torch.Generator().manual_seed(1)  # same masking qualities for every setting
        fraction = torch.rand(len(val), generator=gen)
        val_loss = float(model(val, fraction=fraction)["loss"])
    step_s = statistics.median(times[-args.timed:])
    return {
        "setting": name,
        "step_s": step_s,
        "pixels_per_s": args.batch * args.crop**2 / step_s,
        "train_loss_last": statistics.mean(losses[-args.timed:]),
        "val_loss_after": val_loss,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="vam")
    ap.add_argument("--init", default=None, help="weights to start from (default: the shipped ones)")
    ap.add_argument("--data", type=Path, default=Path("../shared/data/train"))
    ap.add_argument("--settings", default=",".join(SETTINGS))
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--timed", type=int, default=15)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    batches, val = training_crops(args.data, args.steps * args.batch, args.crop, args.seed)
    rows = []
    for name in args.settings.split(","):
        rows.append(run_setting(name, args, batches, val))
        r = rows[-1]
        print(f"{name:20s} {r['step_s']:.3f} s/step  {r['pixels_per_s']:8.0f} px/s  "
              f"train loss {r['train_loss_last']:.4f}  val loss {r['val_loss_after']:.4f}", flush=True)
    base = rows[0]
    print(f"\nspeed-up against {base['setting']}: " +
          ", ".join(f"{r['setting']} {base['step_s'] / r['step_s']:.2f}x" for r in rows[1:]))
    save_rows(args, rows)
    return 0


def save_rows(args, rows: list) -> None:
    """The run's arguments and rows to ``args.json``, when given."""
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows},
                                        indent=2) + "\n")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
