"""Which reconstruction should a vam file's layer 1 give?

Compares, on a folder of images, the two candidates the design left open:
``g_s(ŷ_base)`` (the base latent alone) and ``g_s(ŷ_base + μ_r)`` (the top
path with every residual element mean-filled, what progcodec decodes).

    python benchmarks/base_layer_choice.py ../shared/data/kodak [--limit N]
"""

import argparse
from pathlib import Path

import torch

from progcodec.api import get_model
from progcodec.metrics import psnr_rgb
from progcodec.image import crop, load_image, pad, to_pil, to_tensor


@torch.no_grad()
def both_reconstructions(net, x):
    padded = pad(x, net.stride)
    latent_size = (padded.shape[-2] // net.latent_stride, padded.shape[-1] // net.latent_stride)
    hyper, y_hat_base = net.decode_base(net.compress(padded)["layers"][0], latent_size)
    mean_fill = net.residual.decompress([], y_hat_base, hyper)["r_hat"]
    base_only = net.g_s(y_hat_base.float()).clamp(0, 1)
    top_mean = net.g_s((y_hat_base + mean_fill).float()).clamp(0, 1)
    return crop(base_only, *x.shape[-2:]), crop(top_mean, *x.shape[-2:])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    net = get_model("vam", "cpu")
    files = sorted(p for p in args.folder.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"})[:args.limit]
    sums = [0.0, 0.0]
    for f in files:
        original = load_image(f)
        base_only, top_mean = both_reconstructions(net, to_tensor(original))
        sums[0] += psnr_rgb(original, to_pil(base_only))
        sums[1] += psnr_rgb(original, to_pil(top_mean))
    n = len(files)
    print(f"{n} images: g_s(y_base) {sums[0] / n:.2f} dB, g_s(y_base + mu_r) {sums[1] / n:.2f} dB")


if __name__ == "__main__":
    main()
