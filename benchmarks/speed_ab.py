"""Encode and decode time of two progcodec checkouts, alternating in one process.

    python benchmarks/speed_ab.py OTHER_SRC [--image PATH] [--rounds 20] [--precision auto]
                                  [--model weights/vam.safetensors] [--json out.json]

``OTHER_SRC`` is the ``src`` folder of another checkout (``git worktree add /tmp/base <commit>``
makes one: ``/tmp/base/src``). Its package is copied under another name, so both versions load
in one process, each with its own model from the same weights file, and every round times an
encode and a full decode of each, the two in alternating order. On a shared 2-core machine
separate runs of ``speed.py`` drift by 5-10 % within minutes, more than most single changes are
worth; times taken side by side drift together. The two files must be the same bytes (a speed
change must not change the file), else it stops.

Prints and records the medians (ms) and each version's median ratio new/other.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import json
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated")

ALIAS = "progcodec_other"


def load_other(src: str):
    """The other checkout's ``progcodec`` package, imported as ``progcodec_other`` (its modules
    import one another relatively, so a renamed copy is self-contained)."""
    package = Path(src) / "progcodec"
    if not (package / "api.py").is_file():
        sys.exit(f"{src}: no progcodec package (give the src folder of a checkout)")
    folder = Path(tempfile.mkdtemp(prefix="progcodec-ab-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)   # at exit: its modules import lazily
    shutil.copytree(package, folder / ALIAS, ignore=shutil.ignore_patterns("__pycache__"))
    sys.path.insert(0, str(folder))
    return importlib.import_module(f"{ALIAS}.api")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("other_src", help="the src folder of the checkout to compare with")
    parser.add_argument("--image", default=None, help="image (default: skimage's astronaut), resized to 768x512")
    parser.add_argument("--model", default=str(Path(__file__).resolve().parents[1] / "weights" / "vam.safetensors"),
                        help="a weights file both versions load")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--precision", default="auto", help="the API's precision for both (default: auto)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)

    import torch

    import progcodec
    from progcodec import api

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from speed import test_image

    torch.set_num_threads(args.threads)
    progcodec.keep_freed_memory()
    other = load_other(args.other_src)
    im = test_image(args.image)
    versions = {"this": (api, api.get_model(args.model, "cpu")), "other": (other, other.get_model(args.model, "cpu"))}
    files = {}
    for name, (module, net) in versions.items():
        for _ in range(3):   # warm-up: caches, packed weights, allocator
            files[name] = module.encode(im, model=net, precision=args.precision)
            module.decode(files[name], model=net, precision=args.precision)
    if files["this"] != files["other"]:
        sys.exit(f"the two versions write different files ({len(files['this'])} B, {len(files['other'])} B)")
    times = {f"{name}_{what}": [] for name in versions for what in ("encode", "decode")}
    order = list(versions)
    for r in range(args.rounds):
        for name in (order if r % 2 == 0 else order[::-1]):
            module, net = versions[name]
            start = time.perf_counter()
            module.encode(im, model=net, precision=args.precision)
            times[f"{name}_encode"].append(time.perf_counter() - start)
            start = time.perf_counter()
            module.decode(files[name], model=net, precision=args.precision)
            times[f"{name}_decode"].append(time.perf_counter() - start)
    medians = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    report = {"image": args.image or "astronaut", "rounds": args.rounds, "threads": args.threads,
              "precision": args.precision, "bytes": len(files["this"]), "other_src": args.other_src,
              "median_ms": medians,
              "ratio_this_over_other": {w: medians[f"this_{w}"] / medians[f"other_{w}"] for w in ("encode", "decode")},
              "times_ms": {k: [t * 1e3 for t in v] for k, v in times.items()}}
    for what in ("encode", "decode"):
        print(f"{what}: this {medians[f'this_{what}']:.1f} ms, other {medians[f'other_{what}']:.1f} ms "
              f"({report['ratio_this_over_other'][what]:.3f}x), medians of {args.rounds} alternating rounds")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
