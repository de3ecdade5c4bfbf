"""Bulk transcoding: a folder tree of images to .pgc files (or back), on local worker processes.

    plan(source_dir, out_dir, "encode")  ->  [Job(source, target), ...]   (the tree kept)
    run(jobs, "encode", workers=N)        ->  Summary(done, skipped, failed)
    run(jobs, "encode", engine="dask")    ->  the same on a Dask cluster (cluster.py)

Each worker process loads its model once and codes job after job; a file that
fails is reported in the summary and does not stop the others. Targets that
exist are skipped unless ``force``. Writes are atomic, so a killed run leaves
no partial file and the next run picks up where it stopped.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ProgcodecError
from .image import IMAGE_SUFFIXES

OUTPUT_SUFFIX = {"encode": ".pgc", "decode": ".png"}


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path


@dataclass
class Summary:
    done: list[Job] = field(default_factory=list)
    skipped: list[Job] = field(default_factory=list)
    failed: list[tuple[Job, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        return len(self.done) / self.seconds if self.seconds else 0.0


def plan(source_dir: Path, out_dir: Path, kind: str) -> list[Job]:
    """Every input file below ``source_dir`` (images to encode, .pgc files to decode), sorted,
    with its target at the same relative path below ``out_dir``."""
    source_dir, out_dir = Path(source_dir), Path(out_dir)
    if not source_dir.is_dir():
        raise ProgcodecError(f"{source_dir} is not a folder")
    if out_dir.resolve() == source_dir.resolve() or source_dir.resolve() in out_dir.resolve().parents:
        raise ProgcodecError(f"the output folder {out_dir} must lie outside {source_dir}")
    suffixes = IMAGE_SUFFIXES if kind == "encode" else (".pgc",)
    files = sorted(p for p in source_dir.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    return [Job(p, (out_dir / p.relative_to(source_dir)).with_suffix(OUTPUT_SUFFIX[kind])) for p in files]


_options: dict = {}


def _init_worker(options: dict, threads: int) -> None:
    """In each worker process: its share of the cores, and the coding options."""
    import torch

    torch.set_num_threads(threads)
    _options.clear()
    _options.update(options)


def code_bytes(kind: str, data: bytes, options: dict) -> bytes:
    """One file's bytes coded: an image to ``.pgc`` (encode) or a ``.pgc`` to PNG (decode)."""
    import io

    from . import api

    if kind == "encode":
        return api.encode(data, **options)
    buf = io.BytesIO()
    api.decode(data, **options).save(buf, "PNG")
    return buf.getvalue()


def write_output(job: Job, data: bytes) -> int:
    """The coded bytes at the job's target (folders made, written atomically); returns their size."""
    from .weights import atomic_write_bytes

    job.target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(job.target, data)
    return len(data)


def _code_one(kind: str, job: Job, options: dict | None = None) -> int:
    """Code one file; returns the bytes written. ``options`` default to the worker's."""
    options = dict(_options if options is None else options)
    return write_output(job, code_bytes(kind, job.source.read_bytes(), options))


def _reason(e: Exception) -> str:
    return str(e) if isinstance(e, (ProgcodecError, OSError)) else f"{type(e).__name__}: {e}"


@contextlib.contextmanager
def open_engine(engine: str = "local", workers: int = 1, scheduler: str | None = None):
    """Yields ``execute(todo, kind, options)``, an iterator of (job, bytes written or the exception):
    ``"local"``, on ``workers`` processes of this machine; ``"dask"``, on the Dask cluster at
    ``scheduler`` or a new LocalCluster of ``workers`` processes (connected before this yields,
    so a bad address fails before any work starts)."""
    if engine == "local":
        if scheduler is not None:
            raise ProgcodecError("--scheduler is for --engine dask")
        yield functools.partial(_run_locally, workers=workers)
    elif engine == "dask":
        from .cluster import dask_client, run_on_dask

        with dask_client(scheduler, workers) as (client, threads):
            yield functools.partial(run_on_dask, client=client, threads=threads)
    else:
        raise ProgcodecError(f"unknown engine {engine!r}: choose local or dask")


def run(jobs: list[Job], kind: str, workers: int = 1, force: bool = False, options: dict | None = None,
        on_event=None, engine="local", scheduler: str | None = None) -> Summary:
    """Code ``jobs`` with ``engine`` (a name for :func:`open_engine`, or what it yielded);
    ``on_event("done"|"skipped"|"failed", job, info)``."""
    if isinstance(engine, str):
        with open_engine(engine, workers, scheduler) as execute:
            return run(jobs, kind, workers, force, options, on_event, execute)
    emit = on_event or (lambda *a: None)
    summary = Summary()
    todo = []
    for job in jobs:
        if job.target.exists() and not force:
            summary.skipped.append(job)
            emit("skipped", job, None)
        else:
            todo.append(job)
    started = time.monotonic()
    for job, outcome in engine(todo, kind, options or {}):
        if isinstance(outcome, BaseException):
            summary.failed.append((job, _reason(outcome)))
            emit("failed", job, _reason(outcome))
        else:
            summary.done.append(job)
            emit("done", job, outcome)
    summary.seconds = time.monotonic() - started
    return summary


def _run_locally(todo: list[Job], kind: str, options: dict, workers: int):
    """(job, bytes written or the exception) for each job, in this process or on worker processes."""
    import warnings

    threads = max(1, (os.cpu_count() or 1) // max(1, workers))
    if workers <= 1:  # in this process: no start-up cost, the model cache is shared
        for job in todo:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    yield job, _code_one(kind, job, options)
            except Exception as e:  # noqa: BLE001  (one bad file never stops a bulk run)
                yield job, e
        return
    import multiprocessing

    # spawn, not fork: a forked child inherits torch's thread pools half-initialised
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_init_worker, initargs=(options, threads)) as pool:
        futures = {pool.submit(_code_one, kind, job): job for job in todo}
        for future in as_completed(futures):
            try:
                yield futures[future], future.result()
            except Exception as e:  # noqa: BLE001
                yield futures[future], e
