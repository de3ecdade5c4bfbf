"""Two questions about vam's residual, measured on held-out training images (never Kodak):

1. Reconstruction offsets. A received residual symbol q is decoded as μ + q, the centre of its
   quantisation bin; under the model's Gaussian the expected value inside the bin lies closer to
   μ. Do per-(scale index, |q|) offsets, fitted on half of the images, make the picture better?
2. The order. The residual is sent in the order of the hyperprior's σ (variance-aware masking).
   How far is that from an oracle that sends the largest |r - μ| first (which no decoder could
   follow without side information)? The gap bounds what any better σ, from REMs or otherwise,
   could buy by re-ranking.

    python benchmarks/residual_order.py [--model vam] [--images 34] [--threads 1] [--json out.json]

Rates in (2) are the Gaussian model's -log2 of each received symbol's bin mass (the coder pays
this, up to its tables' rounding) over the image's pixels: the residual's share alone, without z
and the base, the same for both orders.
"""

from __future__ import annotations

import argparse
import json
import math
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated")

import numpy as np  # noqa: E402
import torch  # noqa: E402

MAX_Q = 4                  # offsets per |q| up to this, the rest share the last
SHARES = (0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 1.0)


def residual_statistics(net, files: list[Path]) -> list[dict]:
    """Per image: the picture, ŷ_base, and the residual's μ, σ, scale index, symbol q, the error
    e = r - μ - q in [-1/2, 1/2], the σ order as the encoder computes them, and the oracle order
    (largest |r - μ| first)."""
    from progcodec.coding.gaussian import quantize_symbols
    from progcodec.train.data import load_rgb_array

    out = []
    for f in files:
        im = load_rgb_array(f, 256)
        im = im[: im.shape[0] // 64 * 64, : im.shape[1] // 64 * 64]
        x = torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            latents = net.analysis(x)
            y_base, y_top = latents.chunk(2, 1)
            _, z_hat, _ = net.code_hyper_latent(net.hyper_analysis(latents))
            hyper, means_b, _ = net._base_parameters(z_hat)
            y_hat_base = quantize_symbols(y_base, means_b) + means_b
            state = net.residual._start(y_hat_base, hyper, False)
        r = (y_top.double() - y_hat_base).reshape(-1)
        q = torch.round(r - state["means0"])
        e = r - state["means0"] - q
        out.append({"x": x, "y_hat_base": y_hat_base.reshape(-1), "shape": state["shape"],
                    "mu": state["means0"], "sigma": state["scales0"], "index": state["indexes"].long(),
                    "q": q, "e": e, "order": state["order"],
                    "oracle": torch.argsort((q + e).abs(), descending=True, stable=True)})
    return out


def table_key(s: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Each element's cell of the offset table: (scale index, min(|q|, MAX_Q))."""
    return s["index"], s["q"].abs().clamp_max(MAX_Q).long()


def offsets_of(table: torch.Tensor, s: dict) -> torch.Tensor:
    """Each element's offset from the table, signed like its symbol (0 where q = 0)."""
    return table[table_key(s)] * torch.sign(s["q"])


def fit_offsets(stats: list[dict], indexes: int, min_count: int = 50) -> torch.Tensor:
    """Mean of sign(q)·e per (scale index, min(|q|, MAX_Q)); 0 where fewer than ``min_count``."""
    total = torch.zeros(indexes, MAX_Q + 1, dtype=torch.float64)
    count = torch.zeros_like(total)
    for s in stats:
        key = table_key(s)
        total.index_put_(key, s["e"] * torch.sign(s["q"]), accumulate=True)
        count.index_put_(key, torch.ones_like(s["e"]), accumulate=True)
    table = total / count.clamp_min(1)
    table[count < min_count] = 0
    table[:, 0] = 0
    return table


def bin_bits(q: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """-log2 of the mass of q's unit bin under N(0, σ²)."""
    cdf = lambda t: 0.5 * torch.erfc(-t / math.sqrt(2))   # noqa: E731
    return -torch.log2((cdf((q + 0.5) / sigma) - cdf((q - 0.5) / sigma)).clamp_min(1e-9))


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR of float pictures in [0, 1] (not rounded to 8 bits)."""
    from progcodec.metrics import mse_to_psnr

    return mse_to_psnr(float(((a - b) ** 2).mean()), peak=1.0)


def picture(net, s: dict, received: torch.Tensor, offsets: torch.Tensor | None = None) -> torch.Tensor:
    """The synthesis of ŷ_base + the residual: μ + q (+ offset) where received, μ elsewhere."""
    residual = s["mu"].clone()
    residual[received] += s["q"][received]
    if offsets is not None:
        residual[received] += offsets_of(offsets, s)[received]
    return net.synthesize((s["y_hat_base"] + residual).reshape(s["shape"]))


def main() -> None:
    from progcodec import keep_freed_memory
    from progcodec.train.data import find_images, split_holdout
    from progcodec.weights import load_model

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="vam")
    ap.add_argument("--data", type=Path, default=Path("../shared/data/train"))
    ap.add_argument("--images", type=int, default=34, help="held-out images (every 50th of the set)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()

    net = load_model(args.model)
    net.prepare_inference()
    _, held_out = split_holdout(find_images([args.data]))
    stats = residual_statistics(net, held_out[: args.images])
    fit, test = stats[::2], stats[1::2]
    n_indexes = len(net.residual.gaussian_conditional.scale_table)
    table = fit_offsets(fit, n_indexes)
    result = {"model": args.model, "images": len(stats), "fit_images": len(fit), "test_images": len(test)}

    latent = {name: sum(float(((s["e"] - shift(s)) ** 2).sum()) for s in test) / sum(s["e"].numel() for s in test)
              for name, shift in (("centre", lambda s: 0.0),
                                  ("offsets", lambda s: offsets_of(table, s)))}
    result["latent_mse"] = latent
    print(f"latent squared error of the received residual, all received: centre {latent['centre']:.5f}, "
          f"fitted offsets {latent['offsets']:.5f}")
    rows = []
    for share in SHARES:
        row = {"share": share}
        for name, order in (("sigma", "order"), ("oracle", "oracle")):
            bpps, psnrs, offset_psnrs = [], [], []
            for s in test:
                received = s[order][: int(share * s["q"].numel())]
                bpps.append(float(bin_bits(s["q"][received], s["sigma"][received]).sum()) / (s["x"].numel() / 3))
                psnrs.append(psnr(picture(net, s, received), s["x"]))
                if name == "sigma":
                    offset_psnrs.append(psnr(picture(net, s, received, table), s["x"]))
            row[name] = {"residual_bpp": float(np.mean(bpps)), "psnr": float(np.mean(psnrs))}
            if offset_psnrs:
                row["sigma_with_offsets_psnr"] = float(np.mean(offset_psnrs))
        rows.append(row)
        print(f"share {share:.2f}: sigma order {row['sigma']['residual_bpp']:.4f} bpp {row['sigma']['psnr']:.3f} dB "
              f"(offsets {row['sigma_with_offsets_psnr']:.3f} dB); oracle {row['oracle']['residual_bpp']:.4f} bpp "
              f"{row['oracle']['psnr']:.3f} dB", flush=True)
    result["shares"] = rows
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
