"""Getting a Dask client: a LocalCluster, a running scheduler, or the config.

The only module that starts or connects to clusters. Users name their
cluster once in dask's configuration (``~/.config/dask/nidecode.yaml`` or
environment variables)::

    nidecode:
      scheduler: tcp://10.0.0.5:8786   # attach to a running scheduler
      workers: 8                       # or: size of the LocalCluster

``DASK_NIDECODE__SCHEDULER=tcp://...`` does the same from the environment.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import dask.config
from distributed import Client, LocalCluster, WorkerPlugin

from nidecode.errors import InputError

# The statistical profiler costs the workers of a LocalCluster a few percent.
LOCAL_WORKER_CONFIG = {"distributed.worker.profile.enabled": False}

# glibc's mallopt parameters and the largest thresholds its dynamic tuning reaches.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 32 * 2**20


class MallocTuning(WorkerPlugin):
    """Give a worker glibc's own allocation thresholds back.

    distributed starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which
    also switches off glibc's dynamic mmap threshold: every fit's buffers of
    a few hundred KiB are then mapped and unmapped afresh, and libsvm fits
    run 20-25 % slower than in a plain process. Fixed thresholds at the top
    of glibc's dynamic range restore the plain process's speed, at the cost
    of up to 64 MiB of freed memory kept per worker. No-op without glibc.
    """

    name = "nidecode-malloc-tuning"

    def setup(self, worker=None) -> None:
        tune_malloc()


def tune_malloc() -> bool:
    """Set glibc's trim and mmap thresholds in this process; False without glibc."""
    path = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(path)
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
                    and libc.mallopt(_M_TRIM_THRESHOLD, 2 * _MMAP_THRESHOLD))
    except (OSError, AttributeError, TypeError):
        return False


def default_workers() -> int:
    """The number of cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


@contextmanager
def get_client(workers: int | None = None, scheduler: str | None = None,
               timeout: float = 10.0) -> Iterator[Client]:
    """Yield a Dask client, closing what was started on exit.

    Parameters
    ----------
    workers : int, optional
        Start a LocalCluster of this many single-threaded worker processes
        on 127.0.0.1. Default: ``nidecode.workers`` from dask's config, else
        the number of cores.
    scheduler : str, optional
        Address of a running ``dask scheduler`` (``tcp://host:port``) to
        attach to instead. Default: ``nidecode.scheduler`` from the config.
    timeout : float
        Seconds to wait for the scheduler to answer.

    Yields
    ------
    distributed.Client
    """
    if workers is not None and scheduler is not None:
        raise InputError("--workers and --scheduler: give one of them, not both")
    if workers is None and scheduler is None:
        scheduler = dask.config.get("nidecode.scheduler", None)
        workers = dask.config.get("nidecode.workers", None)
    if scheduler:
        with _connect(scheduler, timeout) as client:
            client.register_plugin(MallocTuning())
            yield client
        return
    workers = int(workers or default_workers())
    if workers < 1:
        raise InputError(f"--workers {workers}: give at least one worker")
    dashboard = "127.0.0.1:0" if importlib.util.find_spec("bokeh") else None
    with dask.config.set(LOCAL_WORKER_CONFIG), \
            LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                         host="127.0.0.1", dashboard_address=dashboard,
                         silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        client.register_plugin(MallocTuning())
        yield client


@contextmanager
def _connect(address: str, timeout: float) -> Iterator[Client]:
    try:
        client = Client(address, timeout=timeout)
    except (OSError, TimeoutError) as error:
        raise InputError(f"--scheduler {address}: no Dask scheduler answered within "
                         f"{timeout:g} s ({type(error).__name__}); start one with 'dask "
                         f"scheduler' or check the address") from None
    with client:
        yield client


def describe(client: Client) -> dict:
    """Scheduler address, dashboard link and worker count, for logs and run.json."""
    info = client.scheduler_info()
    dashboard = client.dashboard_link if "dashboard" in info.get("services", {}) else None
    return {"scheduler": client.scheduler.address, "dashboard": dashboard,
            "n_workers": len(info.get("workers", {}))}
