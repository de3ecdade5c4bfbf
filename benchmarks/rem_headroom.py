"""How much can a Rate Enhancement Module save at one point of the ranked residual? (issue 14)

    python benchmarks/rem_headroom.py [--weights weights/vam.safetensors] [--share 0.2] [--minutes 6] [-o out.json]

The frozen backbone's statistics (ŷ_base, μ_r, σ_r, residual) of --crops training
crops and --val-crops held-out crops are computed once (train/rem_cache.py); then
each REM variant learns on the training crops for --minutes and is scored on the
held-out ones every --eval-every steps: the bits of the residual elements after its
point, coded around the refined (μ, σ), against the hyperprior's own (μ_r, σ_r).
Best held-out figure per variant, with the step it came at (small caches overfit).

Variants:
  shipped  coding/rem.py's module (1x1, 3x3, 3x3; 128 hidden)
  wide     a larger probe, not a shipped design: the received residual in units of σ,
           192 hidden, four 3x3 residual convolutions dilated 1, 2, 4, 1, and Δμ in units of σ

An upper-bound probe for the issue's -5 % target, not a Kodak BD-rate.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated")

import torch  # noqa: E402
from compressai.entropy_models import GaussianConditional  # noqa: E402
from torch import nn  # noqa: E402

from progcodec.coding.gaussian import ste_round  # noqa: E402
from progcodec.coding.ranking import top_fraction_mask  # noqa: E402
from progcodec.coding.rem import SCALE_FLOOR, RateEnhancementModule  # noqa: E402
from progcodec.train.data import RandomCrops, find_images, split_holdout  # noqa: E402
from progcodec.train.rem_cache import RemStatisticsCache  # noqa: E402
from progcodec.weights import load_model  # noqa: E402


class WideProbe(nn.Module):
    def __init__(self, m: int, hidden: int = 192):
        super().__init__()
        self.inp = nn.Conv2d(4 * m, hidden, 1)
        self.body = nn.ModuleList(nn.Conv2d(hidden, hidden, 3, padding=d, dilation=d) for d in (1, 2, 4, 1))
        self.out = nn.Conv2d(hidden, 2 * m, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, y_hat_base, means, scales, received, mask):
        scales = scales.clamp_min(SCALE_FLOOR)
        h = self.inp(torch.cat([y_hat_base, torch.log(scales), received / scales, mask], 1))
        for conv in self.body:
            h = h + conv(nn.functional.leaky_relu(h))
        d_mean, d_log_scale = self.out(nn.functional.leaky_relu(h)).chunk(2, 1)
        todo = 1 - mask
        return means + todo * d_mean * scales, scales * torch.exp(todo * d_log_scale)


def residual_bits(stats: dict, share: float, rem=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(bits after the point, bits of the whole residual), coded with the REM's parameters
    after the point (the hyperprior's with ``rem=None``), as forward_rem prices them."""
    coder = GaussianConditional(None)
    means, scales, residual = stats["means"], stats["scales"], stats["residual"]
    mask = top_fraction_mask(scales, torch.full((len(residual),), share))
    if rem is not None:
        received = mask * torch.round(residual - means)
        means, scales = rem(stats["y_hat_base"], means, scales, received, mask)
    likelihoods = coder.likelihood_lower_bound(coder._likelihood(ste_round(residual - means),
                                                                 scales.clamp_min(SCALE_FLOOR)))
    bits = -torch.log2(likelihoods)
    return (bits * (1 - mask)).sum(), bits.sum()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", default="weights/vam.safetensors")
    ap.add_argument("--data", default="../shared/data/train")
    ap.add_argument("--share", type=float, default=0.2)
    ap.add_argument("--crop", type=int, default=256)
    ap.add_argument("--crops", type=int, default=800)
    ap.add_argument("--val-crops", type=int, default=96)
    ap.add_argument("--minutes", type=float, default=6.0, help="training time per variant")
    ap.add_argument("--variants", default="shipped,wide")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("-o", "--output", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    model = load_model(args.weights)
    model.set_transform_layout(torch.contiguous_format)
    train_files, val_files = split_holdout(find_images([args.data]))
    started = time.perf_counter()
    train = RemStatisticsCache(model, RandomCrops(train_files, args.crop, seed=1), args.crops, seed=1)
    val = RemStatisticsCache(model, RandomCrops(val_files, args.crop, seed=2), args.val_crops).tensors
    print(f"statistics of {args.crops} + {args.val_crops} crops: {time.perf_counter() - started:.0f} s", flush=True)
    with torch.no_grad():
        before, total = (float(b) for b in residual_bits(val, args.share))
    print(f"share {args.share}: {before / total:.1%} of the held-out residual's bits come after the point", flush=True)

    builders = {"shipped": (lambda: RateEnhancementModule(model.M), 5e-4), "wide": (lambda: WideProbe(model.M), 2e-4)}
    results = []
    for name in args.variants.split(","):
        build, lr = builders[name]
        rem = build()
        optimizer = torch.optim.Adam(rem.parameters(), lr=lr)
        best, history, step, t0 = None, [], 0, time.perf_counter()
        while time.perf_counter() - t0 < 60 * args.minutes:
            after, _ = residual_bits(train.batch(args.batch), args.share, rem)
            optimizer.zero_grad()
            (after / (args.batch * args.crop**2)).backward()
            optimizer.step()
            step += 1
            if step % args.eval_every == 0:
                with torch.no_grad():
                    change = float(residual_bits(val, args.share, rem)[0]) / before - 1
                history.append({"step": step, "after_point": change})
                best = min(best or history[-1], history[-1], key=lambda h: h["after_point"])
                print(f"{name} step {step}: after the point {change:+.2%}, of the residual "
                      f"{change * before / total:+.2%}", flush=True)
        results.append({"variant": name, "parameters": sum(p.numel() for p in rem.parameters()), "lr": lr,
                        "steps": step, "best": best and {**best, "residual": best["after_point"] * before / total},
                        "history": history})
    report = {"weights": args.weights, "share": args.share, "crops": args.crops, "val_crops": args.val_crops,
              "after_point_share_of_bits": before / total, "minutes_per_variant": args.minutes, "variants": results}
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2) + "\n")
    for r in results:
        b = r["best"]
        print(f"{r['variant']}: {r['parameters']:,} parameters; best held-out change "
              + (f"{b['after_point']:+.2%} after the point ({b['residual']:+.2%} of the residual) at step {b['step']}"
                 if b else "none (no evaluation)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
