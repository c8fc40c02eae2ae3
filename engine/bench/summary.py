"""From raw timed repeats to the figures of ``bench.json``: pure functions, no cluster.

For a point (a worker count, a problem size) with ``k`` worker threads and
wall time ``T``:

* ``rate`` = units of work / ``T`` (fits/s, spheres/s, subjects/s);
* ``busy_share`` = Σ task compute time / (``T`` × ``k``); ``overhead_share``
  = 1 − ``busy_share``: scheduling, transfers, idle workers (load imbalance,
  the client planning and writing outputs);
* ``read_share`` = Σ time the workers spent reading data / (``T`` × ``k``);
* strong scaling (fixed problem): ``speedup`` = ``k0`` × ``T(k0)`` / ``T(k)``
  against the smallest worker count ``k0`` (1 unless told otherwise),
  ``efficiency`` = ``speedup`` / ``k``;
* weak scaling (problem growing with ``k``): ``efficiency`` = ``T(k0)`` / ``T(k)``;
* ``cluster_efficiency``: the same on ``T`` minus the client's own time
  (planning and writing outputs, which no worker count shortens): how well
  the parallel part scales, apart from the serial part;
* ``vs_baseline`` = ``rate`` / the baseline's rate (one core).

Speed-ups and efficiencies use the median times of the repeats; every
repeat's raw figures are kept.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from nidecode.bench.machine import spread

FORMAT = "nidecode-bench"
FORMAT_VERSION = 1
PHASES = ("client", "scheduling", "reading", "computing", "writing")

DEFINITIONS = {
    "wall_s": "seconds from submitting the first task to the last output written (client "
              "clock); cluster start-up and warm-up excluded",
    "rate": "units of work per second of wall time (fits/s, spheres/s or subjects/s)",
    "busy_share": "sum of task compute times (distributed.get_task_stream) / (wall x worker "
                  "threads)",
    "overhead_share": "1 - busy_share: scheduling, transfers, idle workers, the client "
                      "planning and writing outputs",
    "read_share": "time workers spent in the engine's read functions (store reads with "
                  "checksum verification; NIfTI reading at ingest) / (wall x worker threads)",
    "speedup": "strong scaling: k0 x T(k0) / T(k), median times, k0 the smallest worker count",
    "efficiency": "strong: speedup / k; weak: T(k0) / T(k)",
    "cluster_efficiency": "efficiency of the wall time minus the client's planning and "
                          "output writing (the serial part): how the parallel part scales",
    "client_s": "seconds the client plans and writes outputs while no task runs",
    "vs_baseline": "rate / the baseline's rate (the baseline runs on one core)",
    "cpu_per_busy": "workers' CPU seconds / task compute seconds: about 1 when running tasks "
                    "had a core to themselves, less when they waited for a CPU or for I/O",
    "worker_peak_mib": "largest peak resident memory of a worker during the run (VmHWM, "
                       "reset before each run)",
    "external_load": "share of the machine's cores used by other programs during the run "
                     "(/proc/stat minus this process tree); LocalCluster only",
    "phases_s": "the median repeat's wall time split: client (planning, writing outputs, "
                "workers idle), scheduling (the rest of the workers' idle time), reading, "
                "computing and writing (worker time / k)",
    "read_bytes_per_task": "bytes returned by store reads (decompressed float32) or NIfTI "
                           "file bytes (ingest), per task",
}


def median_repeat(repeats: Sequence[dict]) -> dict:
    """The repeat of median wall time (the lower one of an even number)."""
    ordered = sorted(repeats, key=lambda repeat: repeat["wall_s"])
    return ordered[(len(ordered) - 1) // 2]


def phases(repeat: dict) -> dict:
    """One repeat's wall time split into :data:`PHASES` (seconds; they sum to the wall time)."""
    workers, wall = repeat["workers"], repeat["wall_s"]
    reading = repeat["read_s"] / workers
    writing = repeat["write_s"] / workers
    computing = max(0.0, repeat["busy_s"] - repeat["read_s"] - repeat["write_s"]) / workers
    client = min(repeat["client_s"], wall)
    scheduling = max(0.0, wall - client - reading - writing - computing)
    return {"client": client, "scheduling": scheduling, "reading": reading,
            "computing": computing, "writing": writing}


def point(repeats: Sequence[dict], subjects: int) -> dict:
    """The figures of one worker count and problem size, from its repeats."""
    def each(figure) -> list:
        return [figure(repeat) for repeat in repeats]

    capacity = [repeat["wall_s"] * repeat["workers"] for repeat in repeats]
    busy = [repeat["busy_s"] / total for repeat, total in zip(repeats, capacity, strict=True)]
    first = repeats[0]
    return {
        "workers": first["workers"], "subjects": subjects, "units": first["units"],
        "tasks": first["tasks"],
        "wall_s": spread(each(lambda repeat: repeat["wall_s"])),
        "client_s": spread(each(lambda repeat: repeat["client_s"])),
        "rate": spread(each(lambda repeat: repeat["units"] / repeat["wall_s"])),
        "busy_share": spread(busy),
        "overhead_share": spread([1 - share for share in busy]),
        "read_share": spread([repeat["read_s"] / total
                              for repeat, total in zip(repeats, capacity, strict=True)]),
        "cpu_per_busy": spread(each(lambda repeat: repeat["worker_cpu_s"] / repeat["busy_s"]
                                    if repeat["busy_s"] else None)),
        "worker_peak_mib": spread(each(lambda repeat: repeat["worker_peak_mib"])),
        "external_load": spread(each(lambda repeat: repeat["external_load"])),
        "read_bytes_per_task": statistics.median(each(
            lambda repeat: repeat["read_bytes"] / max(repeat["tasks"], 1))),
        "phases_s": phases(median_repeat(repeats)),
        "repeats": list(repeats),
    }


def add_scaling(points: list[dict], baseline_rate: float | None, kind: str) -> list[dict]:
    """Add ``speedup``, ``efficiency`` and ``vs_baseline`` to strong or weak scaling points.

    With one point and no smaller worker count to compare with (a
    ``--scheduler`` run), speed-up and efficiency are ``None``.
    """
    if not points:
        return points
    reference = points[0]
    for entry in points:
        if len(points) == 1 and entry["workers"] > 1:
            entry["speedup"] = entry["efficiency"] = entry["cluster_efficiency"] = None
        else:
            entry["speedup"], entry["efficiency"] = _scaling(reference, entry, kind, "wall_s")
            entry["cluster_efficiency"] = _scaling(reference, entry, kind, "cluster")[1]
        entry["vs_baseline"] = (entry["rate"]["median"] / baseline_rate
                                if baseline_rate else None)
    return points


def _scaling(reference: dict, entry: dict, kind: str, time: str) -> tuple[float, float]:
    """Speed-up and efficiency of ``entry`` against ``reference`` on wall or cluster time."""
    def seconds(point: dict) -> float:
        wall = point["wall_s"]["median"]
        return wall if time == "wall_s" else wall - point["client_s"]["median"]

    if kind == "strong":
        speedup = reference["workers"] * seconds(reference) / seconds(entry)
        return speedup, speedup / entry["workers"]
    efficiency = seconds(reference) / seconds(entry)
    return efficiency * entry["workers"], efficiency


def headline(bench: dict) -> list[str]:
    """A few lines that say what was measured, for the terminal."""
    unit = bench["workload"]["unit"]
    lines = [f"{bench['workload']['name']} on {bench['machine']['cores']} cores "
             f"({bench['machine']['cpu']}), repeats: {bench['parameters']['repeats']}, "
             f"{bench['workload']['data']}"]
    if bench["baseline"]:
        load = bench["baseline"]["external_load"]
        lines.append(f"baseline ({bench['baseline']['name']}): "
                     f"{bench['baseline']['rate']['median']:.4g} {unit}s/s"
                     + (f", other programs {load['median']:.0%} of the machine" if load else ""))
    for kind in ("strong", "weak"):
        for entry in bench[kind]:
            efficiency = entry["efficiency"]
            load = entry["external_load"]
            lines.append(
                f"{kind:6s} {entry['workers']:3d} workers {entry['subjects']:3d} subjects: "
                f"{entry['wall_s']['median']:7.2f} s, {entry['rate']['median']:8.4g} {unit}s/s"
                + (f", efficiency {efficiency:.2f} (without the client's serial part "
                   f"{entry['cluster_efficiency']:.2f})" if efficiency is not None else "")
                + (f", x{entry['vs_baseline']:.2f} baseline" if entry["vs_baseline"] else "")
                + f", overhead {entry['overhead_share']['median']:.1%}"
                + f", reading {entry['read_share']['median']:.1%}"
                + f", peak {entry['worker_peak_mib']['median']:.0f} MiB"
                + (f", tasks got {entry['cpu_per_busy']['median']:.0%} of a core"
                   if entry["cpu_per_busy"] else "")
                + (f", other programs {load['median']:.0%} of the machine" if load else ""))
    return lines
