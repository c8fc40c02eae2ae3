"""Timing the engine on a Dask cluster: start-up, warm-up, scheduler cost, timed runs.

The only module of :mod:`nidecode.bench` that talks to Dask. A timed run
measures, around one call of the workload's entry point:

* the wall time (``time.perf_counter`` in the client);
* the compute time of every task, from ``distributed.get_task_stream``
  (the ``compute`` start-stops: time inside the task function on a worker);
* the time workers spent reading data and writing the store, from the
  timers :mod:`nidecode.bench.probes` wraps around the engine's read and
  write functions (so reading includes the store's checksum verification);
* each worker's peak resident memory and CPU seconds (``client.run``);
* on a LocalCluster, the share of the machine other programs used
  (:func:`nidecode.bench.machine.external_load`).
"""

from __future__ import annotations

import gc
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from distributed import Client, get_task_stream

from nidecode.bench import probes
from nidecode.bench.machine import cpu_seconds, external_load
from nidecode.cluster import get_client


@contextmanager
def cluster(workers: int | None = None, scheduler: str | None = None
            ) -> Iterator[tuple[Client, float]]:
    """A client and the seconds it took to start the cluster (or connect to it)."""
    started = time.perf_counter()
    with get_client(workers=workers, scheduler=scheduler) as client:
        if workers is not None:
            client.wait_for_workers(workers)
        startup_s = time.perf_counter() - started
        yield client, startup_s
        if scheduler is not None:  # its workers outlive the benchmark: remove the timers
            client.run(probes.uninstall)


def threads(client: Client) -> int:
    """Worker threads of the cluster: the cores it computes on."""
    return sum(worker["nthreads"] for worker in client.scheduler_info()["workers"].values())


def warm_up(client: Client, warm_task: Callable[[int], tuple[Callable, tuple]]) -> float:
    """Install the probes and run one small task of the workload on every worker.

    Imports, caches and compiled code (numba) are then ready before timing
    starts. Returns the seconds it took.
    """
    started = time.perf_counter()
    client.run(probes.install)
    futures = []
    for index, address in enumerate(client.scheduler_info()["workers"]):
        function, args = warm_task(index)
        futures.append(client.submit(function, *args, workers=[address],
                                     allow_other_workers=False, pure=False))
    client.gather(futures)
    del futures
    return time.perf_counter() - started


def scheduler_cost(client: Client, n_tasks: int) -> dict:
    """Time ``n_tasks`` empty tasks: the scheduler's throughput and cost per task."""
    started = time.perf_counter()
    futures = client.map(probes.noop, range(n_tasks), pure=False)
    client.gather(futures)
    seconds = time.perf_counter() - started
    del futures
    return {"tasks": n_tasks, "seconds": seconds, "tasks_per_s": n_tasks / seconds,
            "ms_per_task": 1000 * seconds / n_tasks}


def timed_run(client: Client, run: Callable[[Client, Path], object], out: Path, *,
              local: bool) -> dict:
    """Time one run of a workload and gather what the workers measured.

    Parameters
    ----------
    client : distributed.Client
    run : callable
        ``run(client, out)`` runs the workload and returns an
        :class:`~nidecode.bench.workloads.EngineRun`.
    out : Path
        Output directory of the run, emptied before and removed after.
    local : bool
        The cluster runs on this machine (the other programs' load is measured).

    Returns
    -------
    dict
        One repeat's raw figures (seconds, bytes, MiB); see :mod:`nidecode.bench.summary`.
    """
    shutil.rmtree(out, ignore_errors=True)
    gc.collect()
    before = client.run(probes.reset)
    machine_before = cpu_seconds() if local else None
    with get_task_stream(client) as stream:
        started = time.perf_counter()
        engine = run(client, out)
        wall_s = time.perf_counter() - started
    machine_after = cpu_seconds() if local else None
    after = client.run(probes.collect)
    shutil.rmtree(out, ignore_errors=True)
    computes = [step["stop"] - step["start"] for task in stream.data
                for step in task["startstops"] if step["action"] == "compute"]
    return {
        "wall_s": wall_s, "units": engine.units, "tasks": engine.tasks,
        "workers": threads(client), "client_s": engine.client_s,
        "busy_s": sum(computes), "tasks_seen": len(computes),
        "read_s": sum(worker["read_s"] for worker in after.values()),
        "read_bytes": sum(worker["read_bytes"] for worker in after.values()),
        "reads": sum(worker["reads"] for worker in after.values()),
        "write_s": sum(worker["write_s"] for worker in after.values()),
        "worker_cpu_s": sum(after[name]["cpu_s"] - before[name]["cpu_s"] for name in after
                            if name in before),
        "worker_peak_mib": max(worker["peak_mib"] for worker in after.values()),
        "external_load": external_load(machine_before, machine_after, wall_s),
    }
