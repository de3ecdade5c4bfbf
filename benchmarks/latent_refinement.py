"""Does the encoder gain from refining vam's latents by gradient descent? (Held-out images, never Kodak.)

The decoder stays as it is: the encoder takes g_a's latents as a starting point and lowers the
training objective of that one image over them (Yang et al., "Improving Inference for Neural Image
Compression", NeurIPS 2020, do this with stochastic Gumbel annealing over thousands of steps; this
checks the cheap version a CPU could afford per image: a few dozen Adam steps on the training proxy,
uniform noise for the rates and straight-through rounding for the latents), then codes the refined
latents for real and measures every layer against the plain encode of the same image::

    x ─► g_a ─► latents ─► Adam on  Σ_f rate(f) + λ(f)·D(f)  (f: shares of the ranked residual)
                                     └─► compress_latents ─► .pgc ─► decode every layer prefix

    python benchmarks/latent_refinement.py [--images 1] [--steps 30] [--lr 0.01] [--threads 2] [--json out.json]

BD-rate is of the refined ladder against the plain one (negative: the refinement saves bits).
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated")

import torch  # noqa: E402

FRACTIONS = (0.05, 0.2, 0.5, 1.0)   # operating points of the objective, across the ladder


def refinement_loss(net, x: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
    """vam's training objective at the FRACTIONS (and its base point), over the latents
    instead of g_a's weights; the model in training mode, so rates are priced with noise."""
    from progcodec.coding.gaussian import ste_round
    from progcodec.models.base import bits

    pixels = x.shape[2] * x.shape[3]
    y_base, y_top = latents.chunk(2, 1)
    z_hat, z_likelihoods = net.entropy_bottleneck(net.h_a(latents))
    hyper = net.h_s(z_hat)
    scales_b, means_b = hyper.chunk(2, 1)
    _, base_likelihoods = net.gaussian_conditional(y_base, scales_b, means=means_b)
    y_hat_base = ste_round(y_base, means_b)
    loss = (bits(z_likelihoods) + bits(base_likelihoods)) / pixels * len(FRACTIONS)
    for f in FRACTIONS:
        res = net.residual(y_top, y_hat_base, hyper, torch.tensor([f]))
        lam = net.lambda_base * (net.lambda_top / net.lambda_base) ** f
        loss = (loss - (torch.log2(res["likelihoods"]) * res["mask"]).sum() / pixels
                + 255**2 * lam * ((net.g_s(res["y_hat_top"]) - x) ** 2).mean())
    return loss + 255**2 * net.lambda_base * ((net.g_s(res["y_mean_top"]) - x) ** 2).mean()


def ladder(net, image, data: bytes) -> list[tuple[float, float]]:
    """(bpp, PSNR) after each layer of ``data``, decoded as one stream (each layer entropy-decoded once)."""
    from progcodec import api
    from progcodec.metrics import psnr_rgb

    pixels = image.width * image.height
    return [(layer["cumulative_bytes"] * 8 / pixels, psnr_rgb(image, decoded))
            for layer, (_, decoded) in zip(api.info(data)["layers"], api.iter_decode(data, model=net))]


def refine(net, x: torch.Tensor, steps: int, lr: float) -> torch.Tensor:
    latents = net.analysis(x).clone().requires_grad_(True)
    optimizer = torch.optim.Adam([latents], lr=lr)
    for p in net.parameters():
        p.requires_grad_(False)
    net.train()
    try:
        for _ in range(steps):
            loss = refinement_loss(net, x, latents)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    finally:
        net.eval()
    return latents.detach()


def main(argv=None) -> int:
    from PIL import Image

    from progcodec import api
    from progcodec.bench.report import bd_rate
    from progcodec.image import pad, to_tensor
    from progcodec.train.data import find_images, split_holdout
    from progcodec.weights import load_model, resolve_weights

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="../shared/data/train")
    parser.add_argument("--model", default="vam")
    parser.add_argument("--images", type=int, default=1, help="the first N held-out training images")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    net = load_model(resolve_weights(args.model)).eval()
    _, held_out = split_holdout(find_images([Path(args.data)]))
    rows = []
    for path in held_out[:args.images]:
        image = Image.open(path).convert("RGB")
        x = pad(to_tensor(image), net.stride)
        plain = api.encode(image, model=net)
        started = time.perf_counter()
        refined = refine(net, x, args.steps, args.lr)
        seconds = time.perf_counter() - started
        analysis, net.analysis = net.analysis, (lambda _x: refined)
        try:
            data = api.encode(image, model=net)
        finally:
            net.analysis = analysis
        before, after = ladder(net, image, plain), ladder(net, image, data)
        curve = {name: {"name": name, "results": {"bpp": [b for b, _ in pts], "psnr-rgb": [p for _, p in pts]}}
                 for name, pts in (("plain", before), ("refined", after))}
        row = {"image": str(path), "steps": args.steps, "lr": args.lr, "refine_s": round(seconds, 1),
               "bytes": [len(plain), len(data)], "plain": before, "refined": after,
               "bd_rate": bd_rate(curve["plain"], curve["refined"])["bd_rate"]}
        rows.append(row)
        print(f"{path.name}: {len(plain)} -> {len(data)} B, BD-rate {row['bd_rate']:+.2f} % "
              f"({args.steps} steps, lr {args.lr}, {seconds:.0f} s)")
        for k, ((b0, p0), (b1, p1)) in enumerate(zip(before, after), 1):
            print(f"  layer {k:2d}: {b0:.4f} bpp / {p0:.2f} dB -> {b1:.4f} / {p1:.2f}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
