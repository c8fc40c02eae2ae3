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
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import dask.config
import psutil
from distributed import Client, LocalCluster, WorkerPlugin

from nidecode import fs
from nidecode._validation import check_float, check_workers
from nidecode.errors import ClusterError, InputError, NidecodeWarning

# The statistical profiler costs the workers of a LocalCluster a few percent.
LOCAL_WORKER_CONFIG = {"distributed.worker.profile.enabled": False}

# Single-threaded CPU-bound workers gain nothing beyond the cores; a little
# oversubscription is allowed (tests, I/O), a worker process needs about this much memory.
OVERSUBSCRIPTION = 2
WORKER_MEMORY = 512 * 2**20

# glibc's mallopt parameters and the largest thresholds its dynamic tuning reaches.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 32 * 2**20

HEARTBEAT_FAILURE = "Failed to communicate with scheduler during heartbeat"


class StorageOptions(WorkerPlugin):
    """Give every worker (also those joining later) the client's ``--storage-options``."""

    name = "nidecode-storage-options"

    def __init__(self, options: dict):
        self.options = options

    def setup(self, worker=None) -> None:
        fs.set_storage_options(self.options)


def _share_storage_options(client: Client) -> None:
    if fs.storage_options():
        client.register_plugin(StorageOptions(fs.storage_options()))


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


def max_local_workers() -> int:
    """The most LocalCluster workers this machine holds.

    :data:`OVERSUBSCRIPTION` workers per core, and :data:`WORKER_MEMORY` of
    the machine's memory per worker; at least one.
    """
    by_memory = psutil.virtual_memory().total // WORKER_MEMORY
    return max(1, min(OVERSUBSCRIPTION * default_workers(), int(by_memory)))


def local_workers(workers: int | None) -> int:
    """The LocalCluster size for ``workers`` (``None``: the cores), capped with a warning.

    Raises
    ------
    ParameterError
        ``workers`` is not an int >= 1.
    """
    workers = check_workers(workers, "get_client")
    if workers is None:
        return default_workers()
    limit = max_local_workers()
    if workers > limit:
        memory = psutil.virtual_memory().total / 2**30
        warnings.warn(f"--workers {workers}: this machine holds at most {limit} workers "
                      f"({default_workers()} cores, {memory:.1f} GiB of memory); starting "
                      f"{limit}. Attach to a larger cluster with --scheduler",
                      NidecodeWarning, stacklevel=3)
        return limit
    return workers


@contextmanager
def get_client(workers: int | None = None, scheduler: str | None = None,
               timeout: float = 10.0) -> Iterator[Client]:
    """Yield a Dask client, closing what was started on exit.

    Parameters
    ----------
    workers : int, optional
        Start a LocalCluster of this many single-threaded worker processes
        on 127.0.0.1. Default: ``nidecode.workers`` from dask's config, else
        the number of cores. More than :func:`max_local_workers` are capped
        to it, with a :class:`~nidecode.errors.NidecodeWarning`.
    scheduler : str, optional
        Address of a running ``dask scheduler`` (``tcp://host:port``) to
        attach to instead. Default: ``nidecode.scheduler`` from the config.
    timeout : float
        Seconds to wait for the scheduler to answer.

    Yields
    ------
    distributed.Client
    """
    timeout = check_float(timeout, "timeout", "get_client", positive=True)
    if workers is not None and scheduler is not None:
        raise InputError("--workers and --scheduler: give one of them, not both")
    if workers is None and scheduler is None:
        scheduler = dask.config.get("nidecode.scheduler", None)
        workers = dask.config.get("nidecode.workers", None)
    if scheduler:
        with _connect(scheduler, timeout) as client:
            client.register_plugin(MallocTuning())
            _share_storage_options(client)
            yield client
        return
    workers = local_workers(workers)
    dashboard = "127.0.0.1:0" if importlib.util.find_spec("bokeh") else None
    with dask.config.set(LOCAL_WORKER_CONFIG), \
            LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                         host="127.0.0.1", dashboard_address=dashboard,
                         silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        client.register_plugin(MallocTuning())
        _share_storage_options(client)
        try:
            yield client
        finally:
            quiet_heartbeats(client)
        # Leaving the with statement closes the client, then the cluster.


class _HeartbeatFailureFilter(logging.Filter):
    """Drop the worker's "Failed to communicate with scheduler during heartbeat" record."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(HEARTBEAT_FAILURE)


def _drop_heartbeat_failures() -> None:
    logging.getLogger("distributed.worker").addFilter(_HeartbeatFailureFilter())


def quiet_heartbeats(client: Client) -> None:
    """Silence the workers' heartbeat failures, just before a LocalCluster closes.

    A heartbeat in flight while the cluster closes its scheduler fails with
    ``CommClosedError``, and distributed logs it with a traceback (at ERROR,
    so ``silence_logs`` lets it through; seen in 1 of 4 first runs of
    ``nidecode demo``; cf. dask/distributed#7192): harmless, since the
    results are in, but it looks like a failure. Only that message is dropped, only from now on;
    best effort (a worker that died needs no silencing).
    """
    try:
        client.run(_drop_heartbeat_failures, on_error="ignore")
    except Exception:  # noqa: BLE001 - the cluster is closing anyway
        pass


@contextmanager
def _connect(address: str, timeout: float) -> Iterator[Client]:
    try:
        client = Client(address, timeout=timeout)
    except (OSError, TimeoutError) as error:
        raise ClusterError(f"--scheduler {address}: no Dask scheduler answered within "
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
