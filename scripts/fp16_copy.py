"""Write an fp16 copy of exported weights, small enough to travel to a remote trainer.

    python scripts/fp16_copy.py weights/vam.safetensors gpu/init/vam.safetensors

Only for `progcodec train --init`: training goes on in fp32 from the rounded
values. Not for shipping: rounding moves scale indexes, so the files change
(benchmarks/fp16_check.py). The manifest is copied beside it so the trainer
still counts the earlier steps.
"""

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    args = parser.parse_args()
    state = load_file(str(args.source))
    half = {k: v.half() if v.dtype == torch.float32 else v for k, v in state.items()}
    args.target.parent.mkdir(parents=True, exist_ok=True)
    save_file(half, str(args.target))
    manifest = json.loads(args.source.with_suffix(".json").read_text())
    manifest["fp16_copy_of"] = manifest.pop("sha256")  # this file is not the one that sha256 names
    args.target.with_suffix(".json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {args.target} ({args.target.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
