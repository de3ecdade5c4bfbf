#!/usr/bin/env python
"""Coverage-guided fuzzing of ``.pgc`` decoding with atheris (libFuzzer for Python).

    pip install atheris
    python benchmarks/atheris_fuzz.py [--target decode|parse] [libFuzzer flags] [CORPUS_DIR ...]
    python benchmarks/atheris_fuzz.py benchmarks/fuzz-corpus/decode -runs=100000 -timeout=30 \\
        -rss_limit_mb=3072 -max_len=8192 -print_final_stats=1

Every input must either decode (a PIL RGB image of the header's size, with
``container.parse`` and ``progcodec.info`` agreeing that the file is valid)
or raise ``ProgcodecError``; anything else is a finding, and libFuzzer writes
the input as ``crash-*`` (``timeout-*`` past ``-timeout``, ``oom-*`` past
``-rss_limit_mb``). Coverage comes from atheris' bytecode instrumentation of
``progcodec`` (torch, numpy and CompressAI's C++ coder are not instrumented:
they are fuzzed through our calls, not measured).

Getting past the CRCs: most mutations (3 in 4) are followed by a repair that
recomputes every layer's CRC and the header CRC where the mutated header puts
them, so inputs reach the layer parser, the rANS decoder, the checksums and the
models; the rest keep their broken CRCs, which tests those checks.

The weights are the seeded, untrained models of ``benchmarks/fuzz.py``, narrower
than the shipped ones (N=32, M=48: the same code paths, fast, and the same on every
machine with the same torch), vam with one Rate Enhancement Module, written to a temporary folder
on ``PROGCODEC_WEIGHTS``. With no corpus given, the seeds in
``benchmarks/fuzz-corpus/seeds`` are used (``--make-seeds`` writes them: small
files of both models, several ladders, rate targets, fine ladders, previews and
version-1 layouts). ``--coverage DIR...`` replays a corpus under coverage.py
and prints the lines of src/progcodec it reaches.
"""

from __future__ import annotations

import argparse
import os
import random
import struct
import sys
import tempfile
import warnings
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEEDS = HERE / "fuzz-corpus" / "seeds"
SMALL = {"N": 32, "M": 48}   # narrower nets than shipped: every code path, a fraction of the convolutions
sys.path.insert(0, str(HERE))
warnings.filterwarnings("ignore")

fuzzlib = None  # benchmarks/fuzz.py (seeded models, header editing), imported by main() after coverage starts


def save_weights(folder: Path) -> list[Path]:
    """Seeded vam and progdtd weights in ``folder``, and the vam ones with an integer parameter
    path (``vam-integer``, calibrated on the sample image) for format-9 files that use it."""
    from progcodec.image import to_tensor
    from progcodec.weights import load_model, save_weights as save

    vam = fuzzlib.save_seeded_weights(folder, 0, "vam", rem_shares=(0.1,), **SMALL)
    dtd = fuzzlib.save_seeded_weights(folder, 0, "progdtd", **SMALL)
    model = load_model(str(vam))
    model.calibrate_integer_params([to_tensor(fuzzlib.sample_image(64, 64))])
    integer = folder / "vam-integer.safetensors"
    save(model, integer, {"note": "seeded vam with an integer parameter path, for the fuzz seeds"})
    return [vam, dtd, integer]


def prepare_weights() -> Path:
    """:func:`save_weights` in a temporary folder, put first on PROGCODEC_WEIGHTS."""
    folder = Path(tempfile.mkdtemp(prefix="progcodec-atheris-"))
    save_weights(folder)
    os.environ["PROGCODEC_WEIGHTS"] = str(folder)
    return folder


def make_seeds(folder: Path) -> list[Path]:
    """Small valid files of every layout the encoder writes, tiled ones included. The seeds of earlier
    format versions are kept from the builds that wrote them (``vam-v1``, ``vam-v2``, ``vam-v6`` to
    ``vam-v9``, ``progdtd-fine-v3``, ``*-tiled-v4``, ``vam-tiled-v5``): from version 10 the layers
    code their symbols otherwise, so a new file cannot be converted back."""
    import progcodec
    from progcodec import container

    folder.mkdir(parents=True, exist_ok=True)
    weights = Path(os.environ["PROGCODEC_WEIGHTS"])
    vam, dtd = str(weights / "vam.safetensors"), str(weights / "progdtd.safetensors")
    small, wide = fuzzlib.sample_image(64, 48), fuzzlib.sample_image(130, 20)
    files = {
        "vam-default": progcodec.encode(small, model=vam),                  # with its REM
        "vam-no-rem": progcodec.encode(small, model=vam, rem=False),
        "vam-3-no-preview": progcodec.encode(small, model=vam, ladder=3, preview=False),
        "vam-trained": progcodec.encode(wide, model=vam, ladder="trained", preview=False, rem=False),
        "progdtd-default": progcodec.encode(small, model=dtd),
        "progdtd-3": progcodec.encode(wide, model=dtd, ladder=3),
    }
    full = progcodec.info(files["vam-3-no-preview"])["layers"]
    base, top = full[0]["cumulative_bytes"], full[-1]["cumulative_bytes"]
    files["vam-targets"] = progcodec.encode(small, model=vam, max_bytes=[base + 20, (base + top) // 2, top - 10])
    full = progcodec.info(files["progdtd-default"])["layers"]
    files["progdtd-fine"] = progcodec.encode(small, model=dtd, max_bytes=[full[0]["cumulative_bytes"] + 30,
                                                                          full[-1]["cumulative_bytes"] - 40])
    files["vam-integer"] = progcodec.encode(small, model=str(weights / "vam-integer.safetensors"), ladder=4)
    tall = fuzzlib.sample_image(40, 300)    # two 256-px tiles
    files["vam-tiled"] = progcodec.encode(tall, model=vam, ladder=4, tile=256)
    files["progdtd-tiled"] = progcodec.encode(tall, model=dtd, ladder=3, tile=256)
    assert all(container.parse(data).header.version == container.FORMAT_VERSION for data in files.values())
    paths = []
    for name, data in files.items():
        (folder / name).write_bytes(data)
        paths.append(folder / name)
    return paths


def repair_crcs(data: bytes) -> bytes:
    """Every layer CRC the file declares (in the header, or from version 6 at each layer's end)
    recomputed over the bytes it covers, then the header CRC."""
    layout = fuzzlib.header_layout(data)
    if layout is None or layout["hcrc"][0] + 4 > len(data):
        return data
    count = len(fuzzlib.element_spans(data, "lengths"))
    out = bytearray(data)
    pos = layout["hcrc"][0] + 4
    for i in range(count):
        length = fuzzlib.get_field(data, "lengths", i)
        if pos + length > len(out):
            break
        if "crcs" in layout:
            struct.pack_into(">I", out, layout["crcs"][0] + 4 * i, zlib.crc32(out[pos:pos + length]))
        elif length >= 4:
            struct.pack_into(">I", out, pos + length - 4, zlib.crc32(out[pos:pos + length - 4]))
        pos += length
    return fuzzlib.fix_header_crc(bytes(out))


def custom_mutator(data: bytes, max_size: int, seed: int) -> bytes:
    import atheris

    mutated = atheris.Mutate(data, max_size)
    return repair_crcs(mutated) if random.Random(seed).random() < 0.75 else mutated


def check_parse(data: bytes) -> None:
    from progcodec import container
    from progcodec.errors import ProgcodecError

    try:
        container.parse(data)
    except ProgcodecError:
        pass


def check_decode(data: bytes) -> None:
    """Decode or a clean ``ProgcodecError``; a valid-looking file decodes to its header's size."""
    import progcodec
    from progcodec import container
    from progcodec.errors import ProgcodecError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            pgc = container.parse(data)
        except ProgcodecError:
            pgc = None
        try:
            progcodec.info(data)
            valid = True
        except ProgcodecError:
            valid = False
        if valid != (pgc is not None):
            raise AssertionError("container.parse and progcodec.info disagree on validity")
        try:
            image = progcodec.decode(data)
        except ProgcodecError:
            return
    if pgc is None or image.mode != "RGB" or image.size != (pgc.header.width, pgc.header.height):
        raise AssertionError(f"decode returned {image!r} for {pgc and (pgc.header.width, pgc.header.height)}")


def replay_with_coverage(cov, folders: list[Path]) -> None:
    """Run every corpus input through the decode check under ``cov`` (started before progcodec was
    imported, so module-level lines count); print the lines of src/progcodec reached."""
    count = 0
    for folder in folders:
        for path in sorted(folder.iterdir()):
            if path.is_file():
                try:
                    check_decode(path.read_bytes())
                except AssertionError as e:
                    print(f"finding: {path}: {e}")
                count += 1
    cov.stop()
    total = covered = 0
    per_file = []
    source = HERE.parent / "src" / "progcodec"
    for name in sorted(str(p) for p in source.rglob("*.py")):
        _, statements, _, missing, _ = cov.analysis2(name)
        total += len(statements)
        covered += len(statements) - len(missing)
        per_file.append((str(Path(name).relative_to(source)), len(statements) - len(missing), len(statements)))
    print(f"{count} inputs replayed; lines of src/progcodec reached: {covered} of {total} "
          f"({100 * covered / total:.1f} %; the CLI, training and bench are not on the decode path)")
    for name, hit, n in sorted(per_file):
        print(f"  {name:24s} {hit:4d}/{n:4d}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], add_help=True)
    parser.add_argument("--target", choices=["decode", "parse"], default="decode")
    parser.add_argument("--make-seeds", action="store_true", help=f"write the seed files to {SEEDS} and stop")
    parser.add_argument("--coverage", nargs="+", type=Path, metavar="DIR", help="replay corpus folders, report lines")
    args, libfuzzer_args = parser.parse_known_args()
    cov = None
    if args.coverage:
        import coverage

        cov = coverage.Coverage(source_pkgs=["progcodec"], data_file=None)
        cov.start()
    global fuzzlib
    fuzzing = not (args.make_seeds or args.coverage)
    if fuzzing:  # instrument progcodec's bytecode: it must be imported here first, inside the hook
        import atheris

        with atheris.instrument_imports(include=["progcodec"]):
            import fuzz as fuzzlib
            import progcodec.api
            import progcodec.models
            import progcodec.weights  # noqa: F401
    else:
        import fuzz as fuzzlib
    prepare_weights()
    import torch

    torch.set_num_threads(1)
    if args.make_seeds:
        for path in make_seeds(SEEDS):
            print(path)
        return
    if args.coverage:
        replay_with_coverage(cov, args.coverage)
        return
    corpora = [a for a in libfuzzer_args if not a.startswith("-")]
    if not corpora:
        libfuzzer_args.append(str(SEEDS))
    target = check_decode if args.target == "decode" else check_parse
    atheris.Setup([sys.argv[0], *libfuzzer_args], target, custom_mutator=custom_mutator)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
