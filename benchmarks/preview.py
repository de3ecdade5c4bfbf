"""The vam preview layer (z alone) against placeholders of the same size, and streaming decode time.

    python benchmarks/preview.py ../shared/data/kodak [--model vam] [--limit N] [-o benchmarks/results/preview]

For each image: the preview layer's bytes (header included: what a client must
fetch before it can show anything) and its PSNR-RGB / MS-SSIM; the best JPEG
thumbnail that fits in the same bytes (every width from 8 to 96 pixels and
quality 5-95 tried; upscaled bilinearly to full size, as a browser would);
a BlurHash placeholder (4x3 components, ~30 bytes, ThumbHash-class) for the
picture. Also the time to the first image through ``iter_decode`` and the
total time of decoding every layer with ``iter_decode`` against the sum of
independent ``decode(data, layers=k)`` calls. Writes results.json and
preview.png (original | preview | same-size JPEG | BlurHash, one image).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated")

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

import progcodec  # noqa: E402
from progcodec import metrics  # noqa: E402


def best_jpeg_thumbnail(im: Image.Image, budget: int) -> tuple[Image.Image, int, str]:
    """The JPEG thumbnail of at most ``budget`` bytes whose bilinear upscale scores best (PSNR)."""
    best = None
    target = np.asarray(im, dtype=np.float64)
    for width in range(8, 97, 4):
        height = max(1, round(width * im.height / im.width))
        small = im.resize((width, height), Image.LANCZOS)
        for quality in range(95, 4, -5):
            buf = io.BytesIO()
            small.save(buf, "JPEG", quality=quality, optimize=True)
            if buf.tell() <= budget:
                up = Image.open(io.BytesIO(buf.getvalue())).convert("RGB").resize(im.size, Image.BILINEAR)
                mse = np.mean((np.asarray(up, dtype=np.float64) - target) ** 2)
                if best is None or mse < best[0]:
                    best = (mse, up, buf.tell(), f"{width}x{height} q{quality}")
                break  # the highest quality that fits at this width
    if best is None:
        raise RuntimeError(f"no JPEG thumbnail fits in {budget} bytes")
    return best[1], best[2], best[3]


def blurhash_placeholder(im: Image.Image) -> tuple[Image.Image, int]:
    import blurhash

    small = im.resize((32, round(32 * im.height / im.width)), Image.LANCZOS)
    code = blurhash.encode(np.asarray(small), components_x=4, components_y=3)
    pixels = np.asarray(blurhash.decode(code, 32, small.height), dtype=np.float64)
    thumb = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).convert("RGB")
    return thumb.resize(im.size, Image.BILINEAR), len(code)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("directory", type=Path)
    ap.add_argument("--model", default="vam")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("-o", "--output", type=Path, default=Path("benchmarks/results/preview"))
    ap.add_argument("--timing-images", type=int, default=None,
                    help="time streamed against independent decodes on only the first N images (default: all)")
    args = ap.parse_args(argv)
    from progcodec.image import load_image

    paths = sorted(p for p in args.directory.iterdir() if p.suffix.lower() == ".png")[:args.limit]
    net = progcodec.api.get_model(args.model)
    rows, picture = [], None
    for index, path in enumerate(paths):
        im = load_image(path)
        data = progcodec.encode(im, model=net, preview=True)
        meta = progcodec.info(data)
        budget = meta["layers"][0]["cumulative_bytes"]
        started = time.perf_counter()
        stream = progcodec.iter_decode(data, model=net)
        _, preview = next(stream)
        first_s = time.perf_counter() - started
        timed = args.timing_images is None or index < args.timing_images
        if timed:
            rest = list(stream)
            streamed_s = time.perf_counter() - started
            started = time.perf_counter()
            for k in range(1, len(meta["layers"]) + 1):
                progcodec.decode(data, layers=k, model=net)
            independent_s = time.perf_counter() - started
        else:
            stream.close()
            rest, streamed_s, independent_s = [None] * (len(meta["layers"]) - 1), None, None
        jpeg, jpeg_bytes, jpeg_setting = best_jpeg_thumbnail(im, budget)
        ours, theirs = metrics.score(im, preview), metrics.score(im, jpeg)
        row = {"image": path.name, "preview_bytes": budget, "preview_bpp": budget * 8 / (im.width * im.height),
               "preview_psnr": ours["psnr-rgb"], "preview_ms_ssim": ours["ms-ssim"],
               "jpeg_bytes": jpeg_bytes, "jpeg_setting": jpeg_setting,
               "jpeg_psnr": theirs["psnr-rgb"], "jpeg_ms_ssim": theirs["ms-ssim"],
               "first_image_s": first_s, "iter_decode_all_s": streamed_s, "independent_decodes_s": independent_s,
               "layers": len(rest) + 1}
        rows.append(row)
        print(f"{path.name}: preview {budget} B {ours['psnr-rgb']:.2f} dB / {ours['ms-ssim']:.4f}; "
              f"JPEG {jpeg_bytes} B ({jpeg_setting}) {theirs['psnr-rgb']:.2f} dB / {theirs['ms-ssim']:.4f}; "
              f"first image {first_s:.2f} s" + (f"; all layers {streamed_s:.1f} s streamed vs {independent_s:.1f} s"
                                                if timed else ""), flush=True)
        if picture is None:
            try:
                hashed, hash_bytes = blurhash_placeholder(im)
            except ImportError:
                hashed, hash_bytes = Image.new("RGB", im.size, (128, 128, 128)), 0
            picture = (im, preview, jpeg, hashed, budget, jpeg_bytes, hash_bytes, path.name)

    mean = {k: statistics.mean(r[k] for r in rows if r[k] is not None)
            for k in rows[0] if isinstance(rows[0][k], (int, float))}
    timed_rows = [r for r in rows if r["iter_decode_all_s"] is not None]
    mean["streamed_over_independent"] = (statistics.mean(r["iter_decode_all_s"] for r in timed_rows)
                                         / statistics.mean(r["independent_decodes_s"] for r in timed_rows)
                                         if timed_rows else None)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "results.json").write_text(json.dumps({"model": net.weights_digest.hex(), "mean": mean,
                                                          "images": rows}, indent=2) + "\n")
    im, preview, jpeg, hashed, budget, jpeg_bytes, hash_bytes, name = picture
    w, h = im.width // 2, im.height // 2
    sheet = Image.new("RGB", (4 * w, h + 18), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (tile, label) in enumerate([(im, f"{name} original"), (preview, f"progcodec preview {budget} B"),
                                       (jpeg, f"JPEG thumbnail {jpeg_bytes} B"),
                                       (hashed, f"BlurHash {hash_bytes} B")]):
        sheet.paste(tile.resize((w, h), Image.LANCZOS), (i * w, 18))
        draw.text((i * w + 4, 3), label, fill="black")
    sheet.save(args.output / "preview.png")
    print(f"mean over {len(rows)}: preview {mean['preview_bytes']:.0f} B {mean['preview_psnr']:.2f} dB / "
          f"{mean['preview_ms_ssim']:.4f}; JPEG {mean['jpeg_bytes']:.0f} B {mean['jpeg_psnr']:.2f} dB / "
          f"{mean['jpeg_ms_ssim']:.4f}; first image {mean['first_image_s']:.2f} s"
          + (f"; iter_decode / independent = {mean['streamed_over_independent']:.2f}" if timed_rows else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
