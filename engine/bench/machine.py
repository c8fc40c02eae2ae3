"""The machine a benchmark ran on, how busy other programs kept it, and repeat statistics.

:func:`machine` gives the same keys as ``benchmarks/_common.py`` so that
every figure of the project names its machine the same way.
"""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Sequence
from pathlib import Path

from nidecode.run import versions


def machine() -> dict:
    """CPU model, cores this process may use, memory, Python, platform and versions."""
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": _cpu_model(), "cores": cores, "memory_gib": round(memory_gib, 1),
            "python": platform.python_version(), "platform": platform.platform(),
            "versions": versions(), "load_average": _load_average()}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _load_average() -> list[float] | None:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def spread(values: Sequence[float | None]) -> dict | None:
    """Median, min and max of repeated figures (``None`` when not measured)."""
    known = [value for value in values if value is not None]
    if not known:
        return None
    return {"median": statistics.median(known), "min": min(known), "max": max(known),
            "repeats": len(known)}


def cpu_seconds() -> tuple[float, float] | None:
    """CPU seconds used so far by the whole machine and by this process and its children.

    Linux only (``/proc``); ``None`` elsewhere. Two snapshots around a
    measurement give the share of the machine other programs used
    (:func:`external_load`). The children are the LocalCluster's nannies
    and workers; the scheduler runs in this process.
    """
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        ticks = [int(field) for field in fields]
        busy = sum(ticks) - ticks[3] - (ticks[4] if len(ticks) > 4 else 0)  # minus idle, iowait
        return busy / os.sysconf("SC_CLK_TCK"), _process_tree_seconds(os.getpid())
    except (OSError, ValueError, IndexError):
        return None


def _process_tree_seconds(root: int) -> float:
    """User + system CPU seconds of ``root`` and its descendants, from ``/proc/PID/stat``."""
    parents, seconds = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            after_name = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended meanwhile
        pid = int(entry.name)
        parents[pid] = int(after_name[1])
        seconds[pid] = (int(after_name[11]) + int(after_name[12])) / os.sysconf("SC_CLK_TCK")
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier += children
    return sum(seconds.get(pid, 0.0) for pid in tree)


def external_load(before: tuple[float, float] | None, after: tuple[float, float] | None,
                  wall_s: float) -> float | None:
    """Share of the machine's cores other programs kept busy between two snapshots.

    0 is a quiet machine; 0.5 on 2 cores means one core was taken by
    someone else. ``None`` when not measurable.
    """
    if before is None or after is None or wall_s <= 0:
        return None
    machine_busy = after[0] - before[0]
    ours = after[1] - before[1]
    return max(0.0, machine_busy - ours) / (wall_s * (os.cpu_count() or 1))
