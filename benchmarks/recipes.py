"""Quality per training pixel of recipe variants, from the same start (issue 13 B).

    python benchmarks/recipes.py [--init weights/vam.safetensors] [--pixels 21e6]
        [--variants lr3e-4,lr1e-4,lr3e-5,crop256] [--every 4] [--json out.json]

Each variant starts from the same weights with a fresh Adam and a linear warm-up
(as every session's run does) and the same seed, and trains on the same number of training pixels
(``--pixels``), so variants with larger crops take fewer, larger steps. The
measure is the float32 RD loss on 16 fixed held-out 256x256 crops (the same
masking qualities for every variant), before training and at ``--every``
points along the way: a learning curve per variant, on equal compute. The
transforms run under bf16 autocast, as ``progcodec train`` does on this CPU.

What this can and cannot say: the budget is minutes, not hours, so it measures
where each recipe goes from a trained start (whether the weights sit in a
noise floor that a lower learning rate removes, whether larger crops help),
not where a recipe ends after days.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_speed import save_rows  # noqa: E402

# name: (crop, batch, learning rate); 128 x 8 and 256 x 2 are the same pixels per step
VARIANTS = {
    "lr3e-4": (128, 8, 3e-4),     # the recipe of sessions 1 to 3
    "lr1e-4": (128, 8, 1e-4),
    "lr3e-5": (128, 8, 3e-5),     # the tenfold decay that ends each run
    "crop256": (256, 2, 3e-4),
    "crop256-lr3e-5": (256, 2, 3e-5),
}


def held_out_loss(model, val: torch.Tensor) -> float:
    model.eval()
    dtype, model.transform_dtype = model.transform_dtype, None
    with torch.no_grad():
        gen = torch.Generator().manual_seed(1)   # the same masking qualities for every variant
        fraction = torch.rand(len(val), generator=gen)
        loss = float(model(val, fraction=fraction)["loss"])
    model.transform_dtype = dtype
    model.train()
    return loss


def run_variant(name: str, args, files, val) -> dict:
    from progcodec.train.data import RandomCrops
    from progcodec.weights import load_model

    crop, batch, lr = VARIANTS[name]
    steps = max(1, round(args.pixels / (crop * crop * batch)))
    crops = RandomCrops(files, crop, seed=args.seed)
    torch.manual_seed(args.seed)
    model = load_model(args.init)
    model.train()
    model.transform_dtype = torch.bfloat16
    main = [p for n, p in model.named_parameters() if not n.endswith("quantiles")]
    quantiles = [p for n, p in model.named_parameters() if n.endswith("quantiles")]
    opt = torch.optim.Adam([{"params": main, "lr": lr}, {"params": quantiles, "lr": 1e-3}])
    curve = [{"step": 0, "pixels": 0, "val_loss": held_out_loss(model, val)}]
    marks = {round(steps * (k + 1) / args.every) for k in range(args.every)}
    started = time.monotonic()
    for step in range(1, steps + 1):
        opt.param_groups[0]["lr"] = lr * min(1.0, step / max(args.warmup, 1))
        x = crops.batch(batch)
        out = model(x)
        opt.zero_grad(set_to_none=True)
        (out["loss"] + out["aux_loss"]).backward()
        torch.nn.utils.clip_grad_norm_(main, 1.0)
        opt.step()
        if step in marks:
            curve.append({"step": step, "pixels": step * batch * crop * crop, "val_loss": held_out_loss(model, val)})
            print(f"  {name} step {step}/{steps}: held-out loss {curve[-1]['val_loss']:.4f}", flush=True)
    return {"variant": name, "crop": crop, "batch": batch, "lr": lr, "steps": steps,
            "wall_s": time.monotonic() - started, "curve": curve,
            "change": curve[-1]["val_loss"] - curve[0]["val_loss"]}


def main(argv=None) -> int:
    from progcodec.train.data import center_crops, find_images, split_holdout

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--init", default="weights/vam.safetensors")
    ap.add_argument("--data", type=Path, default=Path("../shared/data/train"))
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--pixels", type=float, default=21e6, help="training pixels per variant")
    ap.add_argument("--every", type=int, default=4, help="held-out measurements along each run")
    ap.add_argument("--warmup", type=int, default=40, help="linear warm-up steps (each variant)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    train_files, val_files = split_holdout(find_images([args.data]))
    val = center_crops(val_files, 256, limit=16)
    rows = []
    for name in args.variants.split(","):
        rows.append(run_variant(name, args, train_files[:300], val))
        r = rows[-1]
        print(f"{name:16s} {r['steps']} steps of {r['batch']}x{r['crop']}^2 at lr {r['lr']:g}: held-out loss "
              f"{r['curve'][0]['val_loss']:.4f} -> {r['curve'][-1]['val_loss']:.4f} ({r['change']:+.4f})", flush=True)
        save_rows(args, rows)       # after each variant, so a stopped run keeps what it measured
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
