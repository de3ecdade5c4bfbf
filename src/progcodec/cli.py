"""The ``progcodec`` command line: thin click commands over the Python API."""

from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings
from pathlib import Path

import click

# CompressAI's import triggers torch's TorchScript deprecation notice: noise for a user.
warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated")

from .allocator import keep_freed_memory  # noqa: E402
from .device import DEVICE_CHOICES  # noqa: E402
from .errors import ProgcodecError  # noqa: E402
from .precision import PRECISIONS  # noqa: E402

DEVICE_OPTION = click.option("--device", type=click.Choice(DEVICE_CHOICES), default="auto", show_default=True,
                             help="Where the transforms run; entropy parameters always run on the CPU, in integers "
                                  "(weights with an integer path) or float64.")


class _Group(click.Group):
    """Turn ProgcodecError into one line on stderr and exit code 1; show warnings as one line."""

    def invoke(self, ctx):
        def show_warning(message, category, filename, lineno, file=None, line=None):
            click.echo(f"warning: {message}", err=True)

        warnings.showwarning = show_warning
        keep_freed_memory()  # large tensors reuse freed heap memory instead of page-faulting afresh
        try:
            return super().invoke(ctx)
        except ProgcodecError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(1)


@click.group(cls=_Group)
@click.version_option(package_name="progcodec")
def main():
    """progcodec: a progressive learned image codec.

    One .pgc file decodes from any prefix of its layers: the first layer gives
    a coarse picture, every further layer sharpens it.
    """


@main.command()
@click.argument("data_dir", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--model", default="vam", show_default=True, help="Model family to train.")
@click.option("--out", "out", type=click.Path(path_type=Path), default=None,
              help="Exported weights (default: weights/MODEL.safetensors); checkpoints go beside it as .ckpt.")
@click.option("--steps", default=10_000, show_default=True, help="Total optimiser steps (also when resuming).")
@click.option("--batch", default=8, show_default=True)
@click.option("--crop", default=128, show_default=True, help="Random crop size in pixels.")
@click.option("--lambda-base", default=0.0035, show_default=True, help="Distortion weight of the base layer.")
@click.option("--lambda-top", default=0.0483, show_default=True, help="Distortion weight of the full file.")
@click.option("--lambda-preview", default=0.0, show_default=True,
              help="vam: distortion weight of the preview point (z alone, everything else at its predicted mean).")
@click.option("--precision", type=click.Choice(PRECISIONS), default="auto", show_default=True,
              help="Transforms under bfloat16 autocast (GDN, entropy models and loss stay float32); "
                   "auto: bf16 on CPUs with native bf16, fp32 elsewhere. Weights are float32 either way.")
@click.option("--lr", default=1e-4, show_default=True, help="Peak learning rate (after warm-up).")
@click.option("--warmup", default=500, show_default=True, help="Linear warm-up steps.")
@click.option("--max-minutes", type=float, default=None,
              help="Stop after this much wall time: checkpoint, then export the weights as they stand.")
@click.option("--ema", type=click.FloatRange(0.0, 1.0, max_open=True), default=0.0, show_default=True,
              metavar="DECAY",
              help="Keep a moving average of the weights (decay per step, e.g. 0.999) and export it in place "
                   "of the last step's weights; it travels in the checkpoint (0: off).")
@click.option("--stage", type=click.Choice(["full", "rem"]), default="full", show_default=True,
              help="rem (vam): train Rate Enhancement Modules alone on the frozen --init weights, with a rate loss.")
@click.option("--rem-shares", default=None, metavar="LIST",
              help="vam: where each REM runs, as shares of the ranked residual, e.g. 0.05 or 0.03,0.2 "
                   "(default with --stage rem: 0.05).")
@click.option("--rem-loss", type=click.Choice(["rate", "rd"]), default="rate", show_default=True,
              help="--stage rem: rate (the paper's: bits of the residual after each REM point) or rd "
                   "(also the distortion of a later layer, whose unreceived elements take the refined means).")
@click.option("--rem-cache", type=click.IntRange(min=0), default=0, show_default=True, metavar="N",
              help="--stage rem, rate loss: compute the frozen backbone's statistics of N crops once and train "
                   "the REMs on batches drawn from them (about 0.8 MB a 256-px crop; 0: fresh crops every step).")
@click.option("--integer-params/--no-integer-params", default=True, show_default=True,
              help="Export with the integer entropy-parameter path (bit-exact on every CPU, faster "
                   "coding), calibrated on the held-out validation crops.")
@click.option("--resume", type=click.Path(exists=True), default=None, help="Checkpoint to continue from.")
@click.option("--init", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Fine-tune: start from exported .safetensors weights with a fresh optimiser.")
@click.option("--val", type=click.Path(exists=True, file_okay=False), default=None,
              help="Validation folder (default: a fixed 2% of the training files, held out). Never Kodak.")
@click.option("--val-every", default=500, show_default=True)
@click.option("--threads", type=int, default=None, help="CPU threads for torch.")
@click.option("--seed", default=0, show_default=True)
@DEVICE_OPTION
def train(data_dir, model, out, **options):
    """Train MODEL on the photos under DATA_DIR... and export its weights.

    Checkpoints are written every few minutes; --resume continues exactly
    where a killed run stopped. Under `torchrun --nproc_per_node N` the same
    command trains with DistributedDataParallel.
    """
    from .train.loop import TrainConfig, train as run_training
    from .train.progress import TrainingProgress

    shares = options.pop("rem_shares")
    try:
        options["rem_shares"] = tuple(float(v) for v in shares.split(",")) if shares else ()
    except ValueError:
        raise click.BadParameter(f"{shares!r} is not a comma-separated list of numbers", param_hint="--rem-shares")
    cfg = TrainConfig(data=[str(d) for d in data_dir], model=model,
                      out=str(out or Path("weights") / f"{model}.safetensors"), **options)
    with TrainingProgress() as progress:
        try:
            manifest = run_training(cfg, on_event=progress.on_event)
        except ValueError as e:   # a setting that cannot work (checked before the first step)
            raise click.UsageError(str(e)) from None
    if manifest:
        click.echo(f"wrote {cfg.out} (sha256 {manifest['sha256'][:16]}...)")


@main.command("pack-crops")
@click.argument("data_dir", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write OUTPUT/train (JPEG crops) and OUTPUT/val (held-out PNG crops) into.")
@click.option("--crop", default=256, show_default=True, help="Crop size in pixels.")
@click.option("--per-image", default=1, show_default=True, help="Random crops taken from each training image.")
@click.option("--quality", default=95, show_default=True, help="JPEG quality of the training crops.")
@click.option("--seed", default=0, show_default=True)
def pack_crops(data_dir, output, crop, per_image, quality, seed):
    """Pack a compact copy of the photos under DATA_DIR... for a remote trainer.

    For a GPU machine the whole data set cannot be copied to: train there with
    `progcodec train OUTPUT/train --val OUTPUT/val --crop C --device cuda`.
    The held-out images are the ones `progcodec train` would hold out.
    """
    from rich.progress import Progress

    from .train.pack import pack_crops as pack

    if output.exists() and any(output.iterdir()):
        raise ProgcodecError(f"{output} is not empty: pack into a new folder")
    try:
        with Progress(transient=True) as bar:
            task = bar.add_task("packing", total=None)
            written = pack([str(d) for d in data_dir], output, crop=crop, per_image=per_image, quality=quality,
                           seed=seed, on_progress=lambda done, total: bar.update(task, completed=done, total=total))
    except ValueError as e:
        raise ProgcodecError(str(e)) from None
    click.echo(f"wrote {written['train']} training and {written['val']} validation crops to {output} "
               f"({written['bytes'] / 2**20:.1f} MiB)")


def _read_input(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ProgcodecError(f"cannot read {path}: {e.strerror or e}") from None


def _check_output(path: str, source: str | None, force: bool) -> None:
    """Before any work: never the input file; never an existing file without --force."""
    if path == "-":
        return
    if source not in (None, "-") and Path(path).resolve() == Path(source).resolve():
        raise ProgcodecError(f"refusing to overwrite the input file {source}")
    if not force and os.path.lexists(path):
        raise ProgcodecError(f"{path} exists: pass --force (-f) to replace it")


def _write_output(path: str, data: bytes, source: str | None = None, force: bool = False) -> None:
    """stdout for '-', else an atomic write (checked again: nothing appeared meanwhile)."""
    from .weights import atomic_write_bytes

    if path == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    _check_output(path, source, force)
    try:
        atomic_write_bytes(Path(path), data)
    except OSError as e:
        raise ProgcodecError(f"cannot write {path}: {e.strerror or e}") from None


def _report(quiet: bool, message: str) -> None:
    """The one line on stderr after a command (as cjxl and gzip -v do); -q silences it."""
    if not quiet:
        click.echo(message, err=True)


def _size(n: int) -> str:
    return f"{n:,} B" if n < 10_000 else f"{n / 1024:,.1f} KiB"


def _default_output(source: str, suffix: str) -> str:
    if source == "-":
        return "-"
    return str(Path(source).with_suffix(suffix))


def _ladder_option(value: str | None):
    if value is None or value == "trained":
        return value
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither a layer count nor 'trained'", param_hint="--ladder") from None


def _byte_count(value: str) -> int:
    """'4711', '4k' (x1000), '16KiB' (x1024), '2M'..."""
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(k|kb|kib|m|mb|mib)?\s*", value.lower())
    if not m:
        raise click.BadParameter(f"{value!r} is not a byte count (e.g. 4711, 4k, 16KiB)", param_hint="--bytes")
    scale = {None: 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 10**6, "mb": 10**6, "mib": 2**20}[m.group(2)]
    return int(float(m.group(1)) * scale)


FORCE_OPTION = click.option("-f", "--force", is_flag=True, help="Replace OUTPUT if it exists (never the input).")
QUIET_OPTION = click.option("-q", "--quiet", is_flag=True, help="No summary line on stderr.")
CODING_PRECISION_OPTION = click.option(
    "--precision", type=click.Choice(PRECISIONS), default="fp32", show_default=True,
    help="The networks that only shape pixels (analysis and synthesis transforms, mean fills) in float32 or "
         "under bfloat16 autocast; auto: bf16 on CPUs with native bf16 (AVX512-BF16, AMX), where it is faster. "
         "Entropy parameters stay on their exact path (integer or float64): any file decodes at any precision.")
ENGINE_OPTION = click.option("--engine", type=click.Choice(["local", "dask"]), default="local", show_default=True,
                             help="Folder mode: --jobs local worker processes, or a Dask cluster "
                                  "(pip install 'progcodec[dask]'); files travel to its workers as bytes.")
SCHEDULER_OPTION = click.option("--scheduler", default=None, metavar="ADDRESS",
                                help="Folder mode with --engine dask: an existing cluster's scheduler, "
                                     "e.g. tcp://scheduler:8786. Default: a LocalCluster of --jobs workers here.")


@main.command()
@click.argument("image", type=str)
@click.option("-o", "--output", default=None, help="Output .pgc file ('-' for stdout). Default: IMAGE with .pgc.")
@click.option("--model", default="vam", show_default=True, help="Model name, or a .safetensors weights file.")
@click.option("--ladder", default=None, metavar="N|trained",
              help="Layers in the file: N (vam 3-64 with a preview, 2-64 without; progdtd 1-64), spaced for similar "
                   "quality steps, or 'trained' for the weights' own schedule. Default: vam 16, progdtd 8.")
@click.option("--preview/--no-preview", default=None,
              help="vam: layer 1 is a ~400-byte preview (z alone). Default: on for vam.")
@click.option("--bpp", "bpp", default=None, metavar="LIST",
              help="Rate targets, one layer each, e.g. 0.1,0.25,0.5,1 (cumulative, header included; each met "
                   "within 3 % or 256 bytes). The first layer is vam's base, or progdtd's z, plus as much of "
                   "the rest as fits.")
@click.option("--bytes", "max_bytes", default=None, metavar="LIST",
              help="The same as byte counts, e.g. 4k,16k,64k.")
@click.option("--rem/--no-rem", default=None,
              help="vam: code later layers with the weights' Rate Enhancement Modules (parameters refined from "
                   "the layers before). Default: on where the weights have them.")
@click.option("--layers", type=int, default=None, help="Keep only the first K layers. Default: all.")
@click.option("--tile", type=int, default=None, metavar="PX",
              help="Images larger than PX on a side are coded in tiles of at most PX x PX (a multiple of 64 "
                   "from 256 to 4096), layer by layer over the whole image, in bounded memory; 0 codes the "
                   "image whole (up to 16.7 MP). Default: 1024; up to 268 MP in tiles.")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Folder mode: worker processes (each loads the model once).")
@ENGINE_OPTION
@SCHEDULER_OPTION
@FORCE_OPTION
@QUIET_OPTION
@DEVICE_OPTION
@CODING_PRECISION_OPTION
def encode(image, output, model, ladder, preview, bpp, max_bytes, rem, layers, tile, jobs, engine, scheduler, force,
           quiet, device, precision):
    """Compress IMAGE (any format Pillow reads, '-' for stdin) into a .pgc file.

    IMAGE may be a folder: every image below it is encoded to the same path
    under -o OUTDIR (the tree kept), existing outputs skipped unless --force,
    failures listed at the end. An existing output file is never replaced
    without --force.
    """
    from . import api

    if bpp is not None:
        try:
            bpp = [float(v) for v in bpp.split(",")]
        except ValueError:
            raise click.BadParameter(f"{bpp!r} is not a comma-separated list of numbers", param_hint="--bpp") from None
    if max_bytes is not None:
        max_bytes = [_byte_count(v) for v in max_bytes.split(",")]
    if image != "-" and Path(image).is_dir():
        options = {"model": model, "layers": layers, "device": device, "ladder": _ladder_option(ladder),
                   "preview": preview, "bpp": bpp, "max_bytes": max_bytes, "rem": rem, "tile": tile,
                   "precision": precision}
        return _bulk("encode", image, output, options, jobs, force, quiet, engine, scheduler)
    _single_file_only(engine, scheduler)
    out = output or _default_output(image, ".pgc")
    if output is None and out == image and image != "-":
        out = image + ".pgc"  # IMAGE already ends in .pgc: never replace it
    _check_output(out, image, force)
    started = time.monotonic()
    source = _read_input(image) if image == "-" else image
    with _tile_progress("encoding tiles", quiet) as progress:
        data = api.encode(source, model=model, layers=layers, device=device, ladder=_ladder_option(ladder),
                          preview=preview, bpp=bpp, max_bytes=max_bytes, rem=rem, tile=tile, progress=progress,
                          precision=precision)
    _write_output(out, data, image, force)
    meta = api.info(data)
    _report(quiet, f"wrote {'stdout' if out == '-' else out}: {_size(len(data))}, {len(meta['layers'])} layers, "
                   f"{meta['width']}x{meta['height']}, {meta['layers'][-1]['bpp']:.3f} bpp, "
                   f"{time.monotonic() - started:.1f} s")


@main.command()
@click.argument("file", type=str)
@click.option("-o", "--output", default=None,
              help="Output image ('-' for PNG on stdout). Default: FILE.decoded.png, or FILE.L3.png with --layers 3, "
                   "so the photo a FILE was made from is never replaced.")
@click.option("--layers", type=int, default=None, help="Decode from the first L layers. Default: all present.")
@click.option("--each-layer", is_flag=True,
              help="Write an image for every layer as soon as it arrives (FILE may be '-', a stream); "
                   "OUTPUT is a pattern such as out_%02d.png. Default: FILE.L%02d.png.")
@click.option("--weights", "weights", multiple=True, type=click.Path(exists=True),
              help="Weights file or folder to search first for the weights the file was made with (repeatable).")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Folder mode: worker processes.")
@ENGINE_OPTION
@SCHEDULER_OPTION
@FORCE_OPTION
@QUIET_OPTION
@DEVICE_OPTION
@CODING_PRECISION_OPTION
def decode(file, output, layers, each_layer, weights, jobs, engine, scheduler, force, quiet, device, precision):
    """Reconstruct an image from a .pgc FILE, or from any prefix of its layers.

    The weights are found by the id in FILE's header: --weights, then the
    PROGCODEC_WEIGHTS path list, the shipped weights, and the user folder
    (`progcodec weights list` shows them all).
    """
    import io

    from . import api

    if file != "-" and Path(file).is_dir() and not each_layer:  # every .pgc below FILE to PNG under -o OUTDIR
        return _bulk("decode", file, output, {"layers": layers, "device": device, "weights": tuple(weights),
                                              "precision": precision},
                     jobs, force, quiet, engine, scheduler)
    _single_file_only(engine, scheduler)
    if each_layer:
        return _decode_each_layer(file, output, layers, weights, force, quiet, device, precision)
    out = output or _default_output(file, ".decoded.png" if layers is None else f".L{layers}.png")
    _check_output(out, file, force)
    started = time.monotonic()
    data = _read_input(file)
    with _tile_progress("decoding tiles", quiet) as progress:
        image = api.decode(data, layers=layers, device=device, weights=weights, progress=progress,
                           precision=precision)
    buf = io.BytesIO()
    fmt = "PNG" if out == "-" else None
    try:
        image.save(buf, format=fmt or (_image_format_for(out)))
    except (KeyError, ValueError) as e:
        raise ProgcodecError(f"cannot write {out}: unknown image format ({e})") from None
    _write_output(out, buf.getvalue(), file, force)
    with warnings.catch_warnings():  # decode has already warned about a cut or damaged file
        warnings.simplefilter("ignore")
        used = layers or len(api.info(data)["layers"])
    _report(quiet, f"wrote {'stdout' if out == '-' else out}: {image.width}x{image.height} from {used} layer(s), "
                   f"{_size(buf.tell())}, {time.monotonic() - started:.1f} s")


@contextlib.contextmanager
def _tile_progress(kind: str, quiet: bool):
    """A callback ``(done, total)`` that shows a progress bar on stderr once a tiled image is under way."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    state = {}

    def update(done: int, total: int) -> None:
        if quiet:
            return
        if "bar" not in state:
            state["bar"] = Progress(TextColumn(f"[bold]{kind}"), BarColumn(), MofNCompleteColumn(),
                                    TimeRemainingColumn(), console=Console(stderr=True), transient=True)
            state["bar"].start()
            state["task"] = state["bar"].add_task(kind, total=total)
        state["bar"].update(state["task"], completed=done, total=total)

    try:
        yield update
    finally:
        if "bar" in state:
            state["bar"].stop()


def _single_file_only(engine, scheduler):
    if engine != "local" or scheduler is not None:
        raise click.UsageError("--engine and --scheduler are for folders (IMAGE or FILE a directory)")


def _bulk(kind, source, output, options, jobs, force, quiet, engine="local", scheduler=None):
    """encode/decode of a folder tree: a progress bar with images/s, failures listed at the end."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from . import bulk

    if output is None:
        raise click.UsageError(f"{kind} of a folder needs -o OUTDIR")
    jobs_list = bulk.plan(Path(source), Path(output), kind)
    if not jobs_list:
        raise ProgcodecError(f"nothing to {kind} below {source}")
    err = Console(stderr=True, quiet=quiet)
    with bulk.open_engine(engine, jobs, scheduler) as execute, \
            Progress(TextColumn(f"[bold]{kind}"), BarColumn(), MofNCompleteColumn(),
                     TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=err, transient=True) as bar:
        task = bar.add_task(kind, total=len(jobs_list), rate="")
        started = time.monotonic()

        def on_event(what, job, info):
            done = bar.tasks[0].completed + 1
            bar.update(task, advance=1, rate=f"{done / max(time.monotonic() - started, 1e-9):.2f} images/s")

        summary = bulk.run(jobs_list, kind, force=force, options=options, on_event=on_event, engine=execute)
    for job, reason in summary.failed:
        click.echo(f"failed: {reason if str(job.source) in reason else f'{job.source}: {reason}'}", err=True)
    _report(quiet, f"{kind}d {len(summary.done)} file(s) into {output} in {summary.seconds:.1f} s "
                   f"({summary.images_per_second:.2f} images/s), skipped {len(summary.skipped)} existing, "
                   f"{len(summary.failed)} failed")
    if summary.failed:
        sys.exit(1)


def _decode_each_layer(file, pattern, layers, weights, force, quiet, device, precision="fp32"):
    """decode --each-layer: one image per layer, written as each layer's bytes arrive."""
    import io

    from . import api

    if file == "-" and pattern is None:
        raise click.UsageError("--each-layer from stdin needs -o PATTERN (e.g. frame_%02d.png)")
    pattern = pattern or str(Path(file).with_suffix("")) + ".L%02d.png"
    try:
        names = {pattern % k for k in (1, 2)}
    except (TypeError, ValueError):
        raise click.BadParameter(f"{pattern!r} has no %d-style field for the layer number", param_hint="-o") from None
    if len(names) != 2 or pattern == "-":
        raise click.BadParameter(f"{pattern!r} must name a different file per layer (e.g. out_%02d.png)",
                                 param_hint="-o")
    fmt = _image_format_for(pattern % 1)
    started = time.monotonic()
    source = sys.stdin.buffer if file == "-" else _open_input(file)
    written = 0
    try:
        for count, image in api.iter_decode(source, device=device, weights=weights, precision=precision):
            out = pattern % count
            buf = io.BytesIO()
            image.save(buf, format=fmt)
            _write_output(out, buf.getvalue(), file, force)
            written = count
            _report(quiet, f"wrote {out}: layer {count}, {time.monotonic() - started:.1f} s")
            if layers is not None and count >= layers:
                break
    finally:
        if source is not sys.stdin.buffer:
            source.close()
    if not written:
        raise ProgcodecError("no layer decoded")


def _open_input(path: str):
    try:
        return open(path, "rb")
    except OSError as e:
        raise ProgcodecError(f"cannot read {path}: {e.strerror or e}") from None


def _image_format_for(path: str) -> str:
    from PIL import Image

    ext = Path(path).suffix.lower()
    Image.init()
    if ext not in Image.EXTENSION:
        raise ProgcodecError(f"cannot tell the image format of {path} from its extension")
    return Image.EXTENSION[ext]


@main.command()
@click.argument("file", type=str)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info(file, as_json):
    """Show what a .pgc FILE holds: model, size, and each layer's bytes and bpp."""
    import json

    from . import api

    meta = api.info(_read_input(file))
    if as_json:
        click.echo(json.dumps(meta))
        return
    if meta["ladder"] == "trained":
        ladder = "trained ladder"
    elif meta["model"] == "vam":   # cumulative residual shares, stored in units of 2**-24
        ladder = "residual shares " + ",".join(f"{q / 2**24:.3g}" for q in meta["ladder"])
    elif meta["fine_ladder"]:      # channel counts in units of 2**-16
        from .container import FINE_CHANNEL_UNIT

        ladder = "channels " + ",".join(f"{v / FINE_CHANNEL_UNIT:.4f}" for v in meta["ladder"])
    else:
        ladder = "channels " + ",".join(map(str, meta["ladder"]))
    click.echo(f"{file}: {meta['model']} {meta['width']}x{meta['height']}, "
               f"{len(meta['layers'])} of {meta['declared_layers']} layer(s), weights {meta['weights']}, "
               f"format {meta['format_version']}, {'preview layer, ' if meta['preview'] else ''}"
               f"{'REMs, ' if meta['rem'] else ''}{'integer parameters, ' if meta['integer_params'] else ''}"
               f"{_tiles_text(meta['tiles'])}{ladder}")
    for layer in meta["layers"]:
        click.echo(f"  layer {layer['index']:2d}: {layer['bytes']:8d} B, ends at {layer['cumulative_bytes']:8d} B, "
                   f"{layer['bpp']:.4f} bpp")


def _tiles_text(tiles) -> str:
    return f"{tiles[1]}x{tiles[0]} tiles of {tiles[3]}x{tiles[2]} (width x height), " if tiles else ""


@main.command()
@click.argument("file", type=str)
@click.option("--layers", type=int, default=None, help="Number of layers to keep.")
@click.option("--bytes", "max_bytes", default=None, metavar="N",
              help="Keep the most whole layers that fit in N bytes (4711, 4k, 16KiB).")
@click.option("--bpp", "max_bpp", type=float, default=None, help="Keep the most whole layers within this bpp.")
@click.option("-o", "--output", required=True, help="Output .pgc file ('-' for stdout).")
@FORCE_OPTION
@QUIET_OPTION
def truncate(file, layers, max_bytes, max_bpp, output, force, quiet):
    """Keep a whole-layer prefix of a .pgc FILE: a smaller, valid .pgc file.

    Say how much with exactly one of --layers, --bytes or --bpp; nothing is re-encoded.
    """
    from . import api

    if sum(v is not None for v in (layers, max_bytes, max_bpp)) != 1:
        raise click.UsageError("give exactly one of --layers, --bytes, --bpp")
    _check_output(output, file, force)
    data = api.truncate(_read_input(file), layers=layers,
                        max_bytes=None if max_bytes is None else _byte_count(max_bytes), max_bpp=max_bpp)
    _write_output(output, data, file, force)
    meta = api.info(data)
    _report(quiet, f"wrote {'stdout' if output == '-' else output}: {_size(len(data))}, "
                   f"{len(meta['layers'])} layers, {meta['layers'][-1]['bpp']:.3f} bpp")


@main.group()
def weights():
    """Weights files: which are found, and adding one to the user folder.

    A .pgc file names its weights by id (16 hex digits of their sha256);
    decode searches --weights, the PROGCODEC_WEIGHTS path list, the shipped
    weights (current and kept earlier releases) and the user folder.
    """


@weights.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array.")
def weights_list(as_json):
    """Every weights file found, in search order: model, id, steps, where it lives."""
    import json

    from .weights import list_weights

    found = list_weights()
    if as_json:
        click.echo(json.dumps(found))
        return
    for entry in found:
        click.echo(f"{entry['model'] or '?':8s} {entry['id']}  {entry['steps'] or '?':>7} steps  "
                   f"{entry['source']:17s} {entry['path']}")
    if not found:
        click.echo("no weights found", err=True)


@weights.command("add")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@QUIET_OPTION
def weights_add(file, quiet):
    """Copy the weights FILE (and its .json manifest) into the user folder, after checking its sha256."""
    from .weights import add_weights

    dest = add_weights(Path(file))
    _report(quiet, f"added {dest}")


@weights.command("integerize")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("data_dir", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The new weights (.safetensors; the .json manifest goes beside it).")
@QUIET_OPTION
def weights_integerize(file, data_dir, output, quiet):
    """Give weights FILE an integer entropy-parameter path, calibrated on DATA_DIR's held-out photos.

    The float weights stay as they are; the integer versions of the networks that predict
    the entropy parameters (vam: the hyper-synthesis and the residual's parameter network;
    progdtd: the hyper-synthesis) are added, so the result is a new release (new id).
    Files encoded with it compute their entropy parameters in integer arithmetic: bit-exact
    on every CPU, and faster (format version 9). Training adds this path itself.
    """
    from .train.integer_params import integerize_weights

    if output.suffix != ".safetensors":
        raise click.BadParameter("the output is a .safetensors file", param_hint="--output")
    try:
        manifest = integerize_weights(file, list(data_dir), output)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    _report(quiet, f"wrote {output} (id {manifest['sha256'][:16]})")


@weights.command("average")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--data", "data_dir", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Photos to calibrate the integer parameter path on (the training folder: its held-out "
                   "images are used); needed when the weights have that path.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The averaged weights (.safetensors; the .json manifest goes beside it).")
@QUIET_OPTION
def weights_average(files, data_dir, output, quiet):
    """Average weights FILES of runs that started from the same weights (a model soup).

    Two runs fine-tuned side by side from the same weights, averaged, usually code
    better than either (Wortsman et al. 2022); the average costs nothing when coding.
    The learnt parameters are averaged; the CDF tables and the integer parameter path
    are made again from the mean. Weights of other models or configurations, or that
    share no start in their manifests, are refused.
    """
    from .train.soup import average_weights

    if output.suffix != ".safetensors":
        raise click.BadParameter("the output is a .safetensors file", param_hint="--output")
    try:
        manifest = average_weights(list(files), output, list(data_dir))
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    _report(quiet, f"wrote {output} (id {manifest['sha256'][:16]}, the mean of {len(files)} weights)")


@main.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", "outdir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("bench-results"), show_default=True,
              help="Folder for results.json, bd_rate.json, rd.png and layers.png.")
@click.option("--model", "models", multiple=True, default=("vam",), show_default=True,
              help="Model name or .safetensors weights; repeat to put several models on one rd.png.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N images (by file name).")
@click.option("--baselines", default="jpeg,jpeg2000,webp,avif,jxl", show_default=True,
              help="Comma-separated Pillow codecs to compare with ('none' for none); missing ones are skipped.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads for torch (1 is fastest while another job keeps the cores busy).")
@click.option("--ladder", default=None, metavar="N|trained", help="Our files' layers, as for encode.")
@click.option("--preview/--no-preview", default=None, help="vam: a preview layer first, as for encode.")
@click.option("--independent-decodes", is_flag=True,
              help="Decode each layer prefix from scratch (default: one streaming decode per file, "
                   "the same pixels; decoding time is then the time to each layer).")
@DEVICE_OPTION
@CODING_PRECISION_OPTION
def bench(directory, outdir, models, limit, baselines, threads, ladder, preview, independent_decodes, device,
          precision):
    """Rate-distortion benchmark of our model(s) on the images in DIRECTORY.

    Each image is encoded once and decoded from every prefix of its layers
    (bpp of the real file prefix, PSNR-RGB, MS-SSIM, times), and compared with
    JPEG, JPEG 2000 (layered), WebP, AVIF and JPEG XL ladders and CompressAI's
    published bmshj2018-hyperprior curve. Writes OUTDIR/results.json
    (CompressAI format), bd_rate.json, rd.png and layers.png.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn

    from . import bench as bench_pkg

    if threads:
        import torch

        torch.set_num_threads(threads)
    try:
        names = bench_pkg.parse_baselines(baselines)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--baselines") from None
    images = bench_pkg.list_images(directory, limit)
    err = Console(stderr=True)
    progress = Progress(TextColumn("[bold]bench"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        TimeRemainingColumn(), TextColumn("{task.fields[what]}"), console=err)
    task = progress.add_task("bench", total=None, what="loading models")

    def on_event(kind, info):
        if kind == "plan":
            progress.update(task, total=info["total"])
        elif kind == "step":
            progress.update(task, completed=info["done"], what=f"{info['codec']} {info['image']}")
        elif kind == "note":
            progress.console.log(f"note: {info['message']}")

    with progress:
        result = bench_pkg.run_bench(images, models=models, baselines=names, device=device, on_event=on_event,
                                     ladder=_ladder_option(ladder), preview=preview,
                                     independent_decodes=independent_decodes, precision=precision)
    report = bench_pkg.write_report(result, outdir)

    out = Console()
    for entry in result.entries:
        out.print(bench_pkg.codec_table(entry))
    if report["bd_rate"]:
        out.print(bench_pkg.bd_table(report["bd_rate"]))
    for note in result.notes:
        out.print(f"note: {note}")
    out.print(f"{len(result.images)} image(s); wrote " + ", ".join(str(p) for p in report["paths"].values()))
