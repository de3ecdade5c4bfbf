"""Time to decode every layer with ``iter_decode`` against independent ``decode(data, layers=k)`` calls.

    python benchmarks/stream_speed.py ../shared/data/kodak/kodim05.png ... [--threads 2] [--repeats 3] [-o out.json]

Issue 20's measure: one ``iter_decode`` pass that yields every layer (it keeps
the header, hyper path and residual decoded so far, and runs the synthesis
again per layer) against the sum of independent decodes of each prefix. Each
figure is the median of --repeats runs after one untimed warm-up decode; the
ratio is the sum of the medians of the streamed passes over the sum of the
medians of the independent ones. Run it on a quiet machine: a second busy
process on a 2-core CPU changes both figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated")

import torch  # noqa: E402

import progcodec  # noqa: E402
from progcodec.image import load_image  # noqa: E402


def seconds(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("images", type=Path, nargs="+")
    ap.add_argument("--model", default="vam")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("-o", "--output", type=Path, default=None)
    ap.add_argument("--system-malloc", action="store_true",
                    help="leave glibc's malloc as it is (the CLI calls progcodec.keep_freed_memory)")
    args = ap.parse_args(argv)
    if not args.system_malloc:
        progcodec.keep_freed_memory()
    torch.set_num_threads(args.threads)
    net = progcodec.api.get_model(args.model)
    rows = []
    for path in args.images:
        data = progcodec.encode(load_image(path), model=net)
        n = len(progcodec.info(data)["layers"])
        progcodec.decode(data, model=net)  # warm-up: lazy tables and allocator
        streamed = [seconds(lambda: list(progcodec.iter_decode(data, model=net))) for _ in range(args.repeats)]
        independent = [seconds(lambda: [progcodec.decode(data, layers=k, model=net) for k in range(1, n + 1)])
                       for _ in range(args.repeats)]
        row = {"image": path.name, "layers": n, "iter_decode_s": statistics.median(streamed),
               "independent_s": statistics.median(independent)}
        row["ratio"] = row["iter_decode_s"] / row["independent_s"]
        rows.append(row)
        print(f"{path.name}: {n} layers, iter_decode {row['iter_decode_s']:.2f} s, independent "
              f"{row['independent_s']:.2f} s, ratio {row['ratio']:.3f}", flush=True)
    total = sum(r["iter_decode_s"] for r in rows) / sum(r["independent_s"] for r in rows)
    print(f"over {len(rows)} images: iter_decode / independent = {total:.3f} "
          f"({args.threads} threads, median of {args.repeats})")
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps({"model": net.weights_digest.hex(), "threads": args.threads,
                                           "keep_freed_memory": not args.system_malloc,
                                           "repeats": args.repeats, "ratio": total, "images": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
