"""Put the Rate Enhancement Modules of one vam weights file onto another vam's backbone.

    python scripts/attach_rems.py runs/vam/vam.safetensors runs/rem/vam.safetensors -o runs/cmp/new-rem.safetensors

`progcodec train --stage rem` trains REMs on a frozen backbone; when a longer
backbone run finishes later, its REMs can be carried over before they are
retrained on it. The result is only worth shipping where a Kodak bench of that
very file shows it (the REMs saw the other backbone). Every tensor but the REMs
comes from BACKBONE, bit for bit; the manifest keeps BACKBONE's training record
and adds where the REMs came from.

With `--none` instead of REMS it writes BACKBONE without its REMs: the baseline
of a with/without-REM bench of the same weights.
"""

import argparse
import json
from pathlib import Path

from safetensors.torch import load_file

from progcodec.models import MODELS
from progcodec.weights import save_weights, sha256_of


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("backbone", type=Path)
    parser.add_argument("rems", type=Path, nargs="?")
    parser.add_argument("--none", action="store_true", help="write BACKBONE with its REMs removed")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()
    if args.none == (args.rems is not None):
        raise SystemExit("give either REMS or --none")
    backbone = json.loads(args.backbone.with_suffix(".json").read_text())
    config = {k: v for k, v in backbone["config"].items() if k != "rem_shares"}
    state = {k: v for k, v in load_file(str(args.backbone)).items() if not k.startswith("residual.rems.")}
    if args.none:
        rems_record = {"removed_from": sha256_of(args.backbone)}
    else:
        donor = json.loads(args.rems.with_suffix(".json").read_text())
        if backbone["model"] != "vam" or not donor["config"].get("rem_shares"):
            raise SystemExit("BACKBONE must be vam weights and REMS vam weights that carry REMs")
        config["rem_shares"] = donor["config"]["rem_shares"]
        state.update((k, v) for k, v in load_file(str(args.rems)).items() if k.startswith("residual.rems."))
        rems_record = {"from": str(args.rems), "sha256": sha256_of(args.rems), "training": donor["training"],
                       "backbone_sha256": sha256_of(args.backbone)}
    model = MODELS[backbone["model"]](**config)
    model.load_state_dict(state, strict=True)
    manifest = save_weights(model, args.output, {"training": backbone["training"], "rems": rems_record})
    print(f"wrote {args.output} (sha256 {manifest['sha256'][:16]}...)")

if __name__ == "__main__":
    main()
