"""Encode/decode speed of a progcodec model on one 768x512 image, against JPEG 2000
and CompressAI's own MeanScaleHyperprior(128, 192), all measured in the same run.

    python benchmarks/speed.py [--model vam] [--random] [--image PATH] [--repeats 3] [--json out.json]
                               [--precision fp32|bf16|auto]

Times are medians of ``--repeats`` runs after one warm-up. Learned codecs are
split into transforms (``g_a`` analysis, ``g_s`` synthesis, timed with forward
hooks inside the real compress/decompress calls) and the rest (hyperprior,
entropy parameters and entropy coding). Ratios are ours / theirs: above 1
means we are slower. With CUDA available, the learned codecs are measured on
the GPU too (JPEG 2000 always runs on the CPU).

MeanScaleHyperprior has random weights (``.update(force=True)``), as the
point is the cost of its transforms and coder, not its rate. ``--precision``
applies to our transforms (the API's ``precision``); theirs stay float32 unless
``--their-precision`` says otherwise.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

WIDTH, HEIGHT = 768, 512


def test_image(path: str | None) -> Image.Image:
    """The image given (resized to 768x512), else skimage's astronaut, else a synthetic one."""
    from progcodec.image import load_image

    if path:
        im = load_image(path)
    else:
        try:
            from skimage.data import astronaut

            im = Image.fromarray(astronaut())
        except ImportError:
            rng = np.random.default_rng(0)
            yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
            base = np.stack([xx / WIDTH, yy / HEIGHT, (xx + yy) / (WIDTH + HEIGHT)], -1) * 200
            im = Image.fromarray(np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8))
    return im if im.size == (WIDTH, HEIGHT) else im.resize((WIDTH, HEIGHT), Image.LANCZOS)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class ModuleTimer:
    """Accumulated wall time inside some submodules' forward calls (CUDA-synchronised)."""

    def __init__(self, net, names, device):
        self.device, self.total, self.handles, self._start = device, {}, [], {}
        for name in names:
            module = getattr(net, name, None)
            if isinstance(module, torch.nn.Module):
                self.total[name] = 0.0
                self.handles.append(module.register_forward_pre_hook(self._pre(name)))
                self.handles.append(module.register_forward_hook(self._post(name)))

    def _pre(self, name):
        def hook(module, args):
            sync(self.device)
            self._start[name] = time.perf_counter()
        return hook

    def _post(self, name):
        def hook(module, args, output):
            sync(self.device)
            self.total[name] += time.perf_counter() - self._start[name]
        return hook

    def reset(self):
        for name in self.total:
            self.total[name] = 0.0

    def close(self):
        for h in self.handles:
            h.remove()


class StageTimer:
    """Accumulated wall time in the codec's other stages, by wrapping the functions that do
    them; where one timed call runs inside another, only the outer one counts."""

    STAGES = {
        "image": [("progcodec.image", "to_tensor"), ("progcodec.image", "to_pil")],
        "params64": [("progcodec.coding.gaussian", "Float64Path.__call__")],
        # the same networks on the integer path, where the weights carry it (format 9)
        "params_int": [("progcodec.coding.integer_path", "IntegerPath.__call__")],
        # the float32 networks that give a mean fill before any residual element
        "params32": [("progcodec.coding.gaussian", "Float32Path.__call__")],
        "ranking": [("progcodec.coding.ranked_residual", "rank_elements")],
        "rans": [("progcodec.coding.gaussian", "GaussianSymbolCoder.encode"),
                 ("progcodec.coding.gaussian", "GaussianSymbolCoder.encode_arrays"),
                 ("progcodec.coding.gaussian", "GaussianSymbolCoder.encode_lists"),
                 ("progcodec.coding.gaussian", "GaussianSymbolCoder.decode"),
                 ("progcodec.coding.gaussian", "SymbolStream.read"),
                 # format 10: symbols grouped by table (coding/grouped_rans.py)
                 ("progcodec.coding.gaussian", "GroupedSymbolStream.read"),
                 ("compressai.entropy_models", "EntropyBottleneck.compress"),
                 ("compressai.entropy_models", "EntropyBottleneck.decompress")],
        "container": [("progcodec.container", "build"), ("progcodec.container", "parse"),
                      ("progcodec.container", "parse_header")],
    }

    def __init__(self, device):
        import importlib

        self.device, self.total, self.patches, self.depth = device, dict.fromkeys(self.STAGES, 0.0), [], 0
        for stage, targets in self.STAGES.items():
            for module_name, attr in targets:
                owner = importlib.import_module(module_name)
                *path, name = attr.split(".")
                for part in path:
                    owner = getattr(owner, part, None)
                original = getattr(owner, name, None)
                if original is None:   # a stage an older progcodec does not have (timing a checkout)
                    continue
                setattr(owner, name, self._wrap(stage, original))
                self.patches.append((owner, name, original))

    def _wrap(self, stage, fn):
        def timed(*args, **kwargs):
            if self.depth:
                return fn(*args, **kwargs)
            self.depth += 1
            sync(self.device)
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                sync(self.device)
                self.total[stage] += time.perf_counter() - start
                self.depth -= 1
        return timed

    def reset(self):
        for name in self.total:
            self.total[name] = 0.0

    def close(self):
        for owner, name, original in reversed(self.patches):
            setattr(owner, name, original)


class Timers:
    """Several timers as one (``measure`` takes one)."""

    def __init__(self, *timers):
        self.timers = timers

    @property
    def total(self):
        return {k: v for t in self.timers for k, v in t.total.items()}

    def reset(self):
        for t in self.timers:
            t.reset()

    def close(self):
        for t in self.timers:
            t.close()


def measure(fn, timer: ModuleTimer | None, device, repeats: int) -> dict:
    """Median total time of ``fn()`` and, per timed module, the median time spent in it."""
    fn()  # warm-up
    totals, parts = [], []
    for _ in range(repeats):
        if timer:
            timer.reset()
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        totals.append(time.perf_counter() - start)
        parts.append(dict(timer.total) if timer else {})
    out = {"total": statistics.median(totals)}
    for name in parts[0]:
        out[name] = statistics.median(p[name] for p in parts)
    return out


def load_ours(model: str, device: torch.device, random_weights: bool):
    from progcodec import api
    from progcodec.models import MODELS
    from progcodec.weights import load_model, save_weights

    if not random_weights:
        return api.get_model(model, str(device))
    if model not in MODELS:
        sys.exit(f"--random needs a registered model name ({', '.join(sorted(MODELS))}), got {model!r}")
    torch.manual_seed(0)
    folder = Path(tempfile.mkdtemp(prefix="progcodec-speed-"))
    save_weights(MODELS[model](), folder / f"{model}.safetensors", {})
    return load_model(str(folder / f"{model}.safetensors"), device)


def bench_ours(im, model, device, repeats, random_weights, layout="channels_last", precision="fp32") -> dict:
    from progcodec import api

    net = load_ours(model, device, random_weights)
    if layout == "contiguous":   # the transforms as before channels_last (loading sets it on the CPU)
        net.set_transform_layout(torch.contiguous_format)
    timer = Timers(ModuleTimer(net, ("g_a", "g_s", "h_a"), device), StageTimer(device))
    data = api.encode(im, model=net, device=device, precision=precision)
    layers = len(api.info(data)["layers"])

    def decode(layers):
        return lambda: api.decode(data, layers=layers, model=net, device=device, precision=precision)

    enc = measure(lambda: api.encode(im, model=net, device=device, precision=precision), timer, device, repeats)
    dec = measure(decode(layers), timer, device, repeats)
    dec1 = measure(decode(1), timer, device, repeats)
    dec2 = measure(decode(2), timer, device, repeats)
    timer.close()
    return {
        "name": f"progcodec-{net.name}", "bytes": len(data), "layers": layers,
        "encode": enc["total"], "decode": dec["total"], "decode_base_layer": dec1["total"],
        "decode_layer_2": dec2["total"],
        "analysis": enc.get("g_a"), "synthesis": dec.get("g_s"),
        "encode_rest": enc["total"] - enc.get("g_a", 0.0), "decode_rest": dec["total"] - dec.get("g_s", 0.0),
        # per stage; "other" is what no timer saw (Python glue, padding, ...)
        "encode_stages": _stages(enc), "decode_stages": _stages(dec), "decode_base_layer_stages": _stages(dec1),
        "decode_layer_2_stages": _stages(dec2),
    }


def _stages(timed: dict) -> dict:
    stages = {k: v for k, v in timed.items() if k != "total"}
    return {**stages, "other": timed["total"] - sum(stages.values())}


def bench_hyperprior(im, device, repeats, precision="fp32") -> dict:
    from compressai.models import MeanScaleHyperprior

    from progcodec.image import to_tensor
    from progcodec.precision import transform_dtype, transform_precision

    dtype = transform_dtype(precision, device)

    torch.manual_seed(0)
    net = MeanScaleHyperprior(128, 192).eval().to(device)
    net.update(force=True)
    x = to_tensor(im).to(device)
    with torch.no_grad():
        out = net.compress(x)
        timer = ModuleTimer(net, ("g_a", "g_s"), device)
        # autocast around the whole call: their g_a/g_s (GDN included), and their
        # hyper-synthesis too, which a real deployment could not do (it must be exact)
        def compress():
            with transform_precision(dtype, device):
                return net.compress(x)

        def decompress():
            with transform_precision(dtype, device):
                return net.decompress(out["strings"], out["shape"])

        enc = measure(compress, timer, device, repeats)
        dec = measure(decompress, timer, device, repeats)
    timer.close()
    return {
        "name": "MeanScaleHyperprior",
        "bytes": sum(len(s[0]) for s in out["strings"]),
        "encode": enc["total"], "decode": dec["total"], "analysis": enc.get("g_a"), "synthesis": dec.get("g_s"),
        "encode_rest": enc["total"] - enc.get("g_a", 0.0), "decode_rest": dec["total"] - dec.get("g_s", 0.0),
    }


def bench_jpeg2000(im, repeats) -> dict | None:
    from progcodec.bench.baselines import make_baseline, unavailable_reason

    if unavailable_reason("jpeg2000"):
        return None
    j2k = make_baseline("jpeg2000")
    top = len(j2k.ladder) - 1
    data = j2k.encode(im, top)
    enc = measure(lambda: j2k.encode(im, top), None, torch.device("cpu"), repeats)
    dec = measure(lambda: j2k.decode(data), None, torch.device("cpu"), repeats)
    return {"name": "jpeg2000 (CPU)", "bytes": len(data), "layers": top + 1, "bpp": j2k.ladder[-1],
            "encode": enc["total"], "decode": dec["total"]}


def _fmt(v):
    return "-" if v is None else f"{v:.3f}"


def _ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


def main(argv=None):
    from progcodec.precision import PRECISIONS

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="vam", help="our model: a registered name or a .safetensors file")
    parser.add_argument("--random", action="store_true",
                        help="seeded random weights for --model (no trained weights needed)")
    parser.add_argument("--image", default=None,
                        help="image to time (resized to 768x512); default: skimage's astronaut")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto: the CPU, and the GPU too where CUDA is available")
    parser.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    parser.add_argument("--layout", choices=("channels_last", "contiguous"), default="channels_last",
                        help="memory layout of our transforms (load_model's default on the CPU: channels_last)")
    parser.add_argument("--system-malloc", action="store_true",
                        help="leave glibc's malloc as it is (default: progcodec.keep_freed_memory, as the CLI does; "
                             "it holds for every codec timed in the run)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="our transforms: float32, or bf16 autocast (auto: where the CPU has native bf16)")
    parser.add_argument("--their-precision", choices=PRECISIONS, default="fp32",
                        help="MeanScaleHyperprior's calls, under bf16 autocast as a whole (an upper bound on "
                             "what bf16 could give it)")
    args = parser.parse_args(argv)
    import progcodec

    kept = False if args.system_malloc else progcodec.keep_freed_memory()

    from rich.console import Console
    from rich.table import Table

    from progcodec.coding.integer_path import gemm_engine
    from progcodec.cpu_features import BF16_FLAGS, INT8_DOT_FLAGS, cpu_flags

    # the flags that choose our paths (bf16 transforms, the int8 GEMM engine), recorded with the times
    notable_flags = {"avx2", "avx512f"} | BF16_FLAGS | INT8_DOT_FLAGS

    devices = {"auto": ["cpu"] + (["cuda"] if torch.cuda.is_available() else []),
               "cpu": ["cpu"], "cuda": ["cuda"]}[args.device]
    if "cuda" in devices and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device available")
    im = test_image(args.image)
    console = Console()
    report = {"image": f"{WIDTH}x{HEIGHT}", "torch_threads": torch.get_num_threads(), "layout": args.layout,
              "keep_freed_memory": kept, "precision": args.precision, "their_precision": args.their_precision,
              "gemm_engine": gemm_engine(), "cpu_flags": sorted(cpu_flags() & notable_flags), "devices": {}}
    j2k = bench_jpeg2000(im, args.repeats)
    report["jpeg2000"] = j2k
    for name in devices:
        device = torch.device(name)
        if device.type == "cuda":
            report["gpu"] = torch.cuda.get_device_name(device)
        with console.status(f"timing on {name}..."):
            ours = bench_ours(im, args.model, device, args.repeats, args.random, args.layout, args.precision)
            msh = bench_hyperprior(im, device, args.repeats, args.their_precision)
        report["devices"][name] = {
            "ours": ours, "mean_scale_hyperprior": msh,
            "ratios": {
                "encode_vs_hyperprior": _ratio(ours["encode"], msh["encode"]),
                "decode_vs_hyperprior": _ratio(ours["decode"], msh["decode"]),
                "analysis_vs_hyperprior": _ratio(ours["analysis"], msh["analysis"]),
                "synthesis_vs_hyperprior": _ratio(ours["synthesis"], msh["synthesis"]),
                "encode_rest_vs_hyperprior": _ratio(ours["encode_rest"], msh["encode_rest"]),
                "decode_rest_vs_hyperprior": _ratio(ours["decode_rest"], msh["decode_rest"]),
                "encode_vs_jpeg2000": _ratio(ours["encode"], j2k and j2k["encode"]),
                "decode_vs_jpeg2000": _ratio(ours["decode"], j2k and j2k["decode"]),
            },
        }

        where = report["gpu"] if device.type == "cuda" else f"{torch.get_num_threads()} torch threads"
        table = Table(title=f"{WIDTH}x{HEIGHT} on {name} ({where}), median of {args.repeats}, seconds; "
                            f"transforms: ours {args.precision}, theirs {args.their_precision}",
                      title_justify="left", caption_justify="left",
                      caption="g_a / g_s: analysis / synthesis transforms; rest: hyperprior, entropy "
                              "parameters and entropy coding. MeanScaleHyperprior: compressai's (128, 192), "
                              "random init."
                              + (f" jpeg2000: {j2k['layers']} quality layers up to {j2k['bpp']} bpp." if j2k else ""))
        table.add_column("codec", no_wrap=True)
        for col in ("bytes", "encode", "g_a", "enc rest", "decode", "g_s", "dec rest"):
            table.add_column(col, justify="right")
        table.add_row(f"{ours['name']} ({ours['layers']} layers)", str(ours["bytes"]), _fmt(ours["encode"]),
                      _fmt(ours["analysis"]), _fmt(ours["encode_rest"]), _fmt(ours["decode"]),
                      _fmt(ours["synthesis"]), _fmt(ours["decode_rest"]))
        table.add_row(f"{ours['name']} (layer 1)", "", "", "", "", _fmt(ours["decode_base_layer"]), "", "")
        table.add_row(f"{ours['name']} (layer 2)", "", "", "", "", _fmt(ours["decode_layer_2"]), "", "")
        table.add_row(msh["name"], str(msh["bytes"]), _fmt(msh["encode"]), _fmt(msh["analysis"]),
                      _fmt(msh["encode_rest"]), _fmt(msh["decode"]), _fmt(msh["synthesis"]),
                      _fmt(msh["decode_rest"]))
        if j2k:
            table.add_row(j2k["name"], str(j2k["bytes"]), _fmt(j2k["encode"]), "", "",
                          _fmt(j2k["decode"]), "", "")
        console.print(table)
        for key, label in (("encode_stages", "encode"), ("decode_stages", "decode, all layers"),
                           ("decode_base_layer_stages", "decode, layer 1"),
                           ("decode_layer_2_stages", "decode, layer 2")):
            console.print(f"{label} by stage: " + ", ".join(f"{k} {v:.3f}" for k, v in ours[key].items()))
        ratios = report["devices"][name]["ratios"]
        console.print("ours / theirs (above 1: we are slower): " + ", ".join(
            f"{k.replace('_vs_', ' vs ').replace('_', ' ')} {v:.2f}x" for k, v in ratios.items() if v is not None))
    if j2k is None:
        console.print("note: this Pillow has no JPEG 2000 (OpenJPEG); skipped")
    console.print(f"integer parameter path's GEMMs: {report['gemm_engine']} "
                  f"(CPU flags: {', '.join(report['cpu_flags']) or 'none of note'})")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
