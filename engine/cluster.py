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
import threading
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


def warm_up_solvers(client: Client, classifier: str = "svc", solver: str = "batched") -> None:
    """Start compiling the default searchlight solver on every worker, in the background.

    On a fresh install numba compiles the SVM kernels on their first call
    (tens of seconds); a thread started on each worker now does it while the
    client plans the run and the worker reads its first voxel block, and the
    first task's call then waits on numba's compiler lock for what is left
    instead of starting from zero. With the compiled code already in numba's
    cache this loads it (a fraction of a second). Only for ``--classifier
    svc --solver batched`` (the default); a no-op otherwise. Best effort:
    never raises.

    Parameters
    ----------
    client : distributed.Client
    classifier, solver : str
        The run's ``--classifier`` and ``--solver``.
    """
    if (classifier, solver) != ("svc", "batched"):
        return
    try:
        client.run(_start_warm_up)  # returns once each worker has imported and started
    except Exception:  # noqa: BLE001 - a warm-up that cannot start costs only time
        logging.getLogger(__name__).debug("solver warm-up not started", exc_info=True)


def _start_warm_up() -> None:
    """On a worker: compile in a daemon thread, so the worker's event loop stays free.

    The solver (with numba, scikit-learn and scipy.sparse) is imported here, in
    the worker's event loop, before the thread starts: imported in the thread, a
    package could be half initialised when the event loop unpickles the first
    task, which imports it too (a circular-import error that stalls the run,
    seen with scipy.sparse and sklearn.base). The worker needs these modules for
    its first task anyway."""
    if any(thread.name == "nidecode-warm-up" for thread in threading.enumerate()):
        return
    import scipy.sparse  # noqa: F401 - see above

    import nidecode.cv  # noqa: F401 - sklearn.model_selection, for the tasks' unpickling
    import nidecode.solvers.batched  # noqa: F401 - see above
    import nidecode.solvers.warm  # noqa: F401 - the thread's problem, imported here too

    threading.Thread(target=_compile_batched, name="nidecode-warm-up", daemon=True).start()


def _compile_batched() -> None:
    """Call the batched solver once on a tiny problem with the argument types of a real run
    (``nidecode compile``'s first group, :mod:`nidecode.solvers.warm`).

    Without the ROC AUC's rank refits: those, and the near-tie refits once they pay
    for it, compile libsvm's SMO replica when a run needs it."""
    try:
        from nidecode.solvers.warm import solver_groups

        solver_groups()["batched searchlight"]()
    except Exception:  # noqa: BLE001 - the real task compiles then, and reports its errors
        logging.getLogger(__name__).debug("solver warm-up failed", exc_info=True)
