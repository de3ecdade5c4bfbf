"""Would fp16 weights change the bits? Encode with the fp32 weights and with the
same weights rounded to fp16, and compare the files and the decoded pixels.

    python benchmarks/fp16_check.py ../shared/data/kodak/kodim23.png [--model vam]

The entropy-parameter path runs in float64 from frozen copies of the weights,
so any rounding of h_s or the residual parameter network moves scale indexes:
the files differ unless every index happens to survive the rounding.
"""

import argparse
import copy

import numpy as np
import torch

import progcodec
from progcodec.api import get_model
from progcodec.image import load_image
from progcodec.metrics import psnr_rgb


def rounded_to_fp16(net):
    half = copy.deepcopy(net)
    with torch.no_grad():
        for tensor in list(half.parameters()) + list(half.buffers()):
            if tensor.is_floating_point():
                tensor.copy_(tensor.half().float())
    half.prepare_inference()  # rebuild the float64 copies from the rounded weights
    return half


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("image")
    parser.add_argument("--model", default="vam")
    args = parser.parse_args()
    torch.set_num_threads(1)
    full = get_model(args.model, "cpu")
    half = rounded_to_fp16(full)
    original = np.asarray(load_image(args.image))
    files = {name: progcodec.encode(args.image, model=net) for name, net in (("fp32", full), ("fp16", half))}
    same_bytes = sum(a == b for a, b in zip(files["fp32"], files["fp16"]))
    print(f"file sizes: fp32 {len(files['fp32'])} B, fp16 {len(files['fp16'])} B; "
          f"identical: {files['fp32'] == files['fp16']} ({same_bytes} equal bytes at equal offsets)")
    for layers in range(1, full.num_layers + 1):
        psnr = {name: psnr_rgb(original, np.asarray(progcodec.decode(data, layers=layers, model=net)))
                for (name, data), net in zip(files.items(), (full, half))}
        print(f"layers {layers:2d}: PSNR fp32 {psnr['fp32']:.3f} dB, fp16 {psnr['fp16']:.3f} dB")


if __name__ == "__main__":
    main()
