"""Bulk transcoding on a Dask cluster, for collections that outgrow one machine.

    this process (client)                         Dask workers, on any machines
    reads each input ─────── bytes ─────────►  bulk.code_bytes(kind, data, options)
    writes each output ◄──── bytes ──────────  (each worker process loads the model once)

Workers need progcodec and its weights installed, not the files: inputs and
outputs travel as bytes, so no shared filesystem is assumed, and the tree,
skipping and atomic writes stay the client's (``bulk.run``). A few tasks per
worker thread are in flight at a time, so the client's memory stays bounded
however large the collection. Without a scheduler address, a LocalCluster of
N worker processes runs on this machine.
"""

from __future__ import annotations

import contextlib
import logging
import os

from .bulk import write_output
from .errors import ProgcodecError

TASKS_IN_FLIGHT_PER_THREAD = 2
CONNECT_TIMEOUT = "15s"


def _task(kind: str, data: bytes, options: dict, threads: int | None) -> bytes:
    """Runs on a worker: code one file's bytes (the model stays cached in the worker process)."""
    import warnings

    from .bulk import code_bytes

    if threads:
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return code_bytes(kind, data, options)


@contextlib.contextmanager
def dask_client(scheduler: str | None, workers: int):
    """A Dask client for ``scheduler`` (an address such as tcp://host:8786), or for a new
    LocalCluster of ``workers`` single-threaded processes; yields (client, torch threads per task)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ProgcodecError("--engine dask needs Dask: pip install 'progcodec[dask]'") from None
    if scheduler:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as e:
            raise ProgcodecError(f"cannot reach the Dask scheduler at {scheduler}: {e}") from None
        with client:
            yield client, None        # the cluster's own thread settings
        return
    # silence_logs: a user's terminal gets our summary line, not the nanny's shutdown notes
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        yield client, max(1, (os.cpu_count() or 1) // max(1, workers))


def run_on_dask(todo, kind: str, options: dict, client, threads: int | None):
    """(job, bytes written or the exception) for each job, as the cluster finishes them."""
    from distributed import as_completed

    window = TASKS_IN_FLIGHT_PER_THREAD * max(1, sum(client.nthreads().values()))
    jobs = iter(todo)
    running = as_completed()
    by_future = {}

    def fill():
        """Submit jobs until the window is full; an input that cannot be read fails at once."""
        for job in jobs:
            try:
                data = job.source.read_bytes()
            except OSError as e:
                yield job, e
                continue
            future = client.submit(_task, kind, data, options, threads, pure=False)
            by_future[future] = job
            running.add(future)
            if len(by_future) >= window:
                return

    yield from fill()
    for future in running:
        job = by_future.pop(future)
        try:
            yield job, write_output(job, future.result())
        except Exception as e:  # noqa: BLE001  (one bad file never stops a bulk run)
            yield job, e
        finally:
            future.release()
        yield from fill()
