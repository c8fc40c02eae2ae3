"""Instruments run inside the worker processes (with ``client.run``) during a benchmark.

:func:`install` wraps the functions through which the engine's tasks read
and write data (the store reads, NIfTI reading at ingest, the store write),
timing every call; the wrappers change no result. :func:`reset` starts a
measurement (counters at zero, cached subjects forgotten so every repeat
reads its data as a fresh run would, peak memory reset) and :func:`collect`
ends it. :func:`uninstall` puts the original functions back.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import resource
import sys
import threading
import time
from pathlib import Path

#: (module, function, phase, how to count the bytes of a call)
TARGETS = (
    ("nidecode.store", "read_timeseries", "read", "result"),
    ("nidecode.store", "read_design", "read", "none"),
    ("nidecode.ingest", "_read_masked", "read", "file"),
    ("nidecode.store", "write_subject", "write", "none"),
)

_ORIGINALS: dict[tuple[str, str], object] = {}
_LOCK = threading.Lock()
_COUNTERS = {"read_s": 0.0, "read_bytes": 0, "reads": 0, "write_s": 0.0, "writes": 0}


def install() -> int:
    """Wrap the read and write functions with timers; returns how many are wrapped."""
    for module_name, name, phase, count in TARGETS:
        if (module_name, name) in _ORIGINALS:
            continue
        module = importlib.import_module(module_name)
        original = getattr(module, name)
        _ORIGINALS[(module_name, name)] = original
        setattr(module, name, _timed(original, phase, count))
    return len(_ORIGINALS)


def uninstall() -> int:
    """Put the original functions back; returns how many were restored."""
    restored = 0
    for (module_name, name), original in list(_ORIGINALS.items()):
        setattr(sys.modules[module_name], name, original)
        del _ORIGINALS[(module_name, name)]
        restored += 1
    return restored


def _timed(function, phase: str, count: str):
    @functools.wraps(function)
    def timed(*args, **kwargs):
        started = time.perf_counter()
        result = function(*args, **kwargs)
        elapsed = time.perf_counter() - started
        size = 0
        if count == "result":
            size = int(getattr(result, "nbytes", 0))
        elif count == "file" and args:
            size = _file_size(args[0])
        with _LOCK:
            _COUNTERS[f"{phase}_s"] += elapsed
            _COUNTERS[f"{phase}s"] += 1
            if phase == "read":
                _COUNTERS["read_bytes"] += size
        return result

    return timed


def _file_size(path) -> int:
    try:
        return os.path.getsize(path)
    except (OSError, TypeError):
        return 0


def reset() -> dict:
    """Start a measurement: zero the counters, forget cached subjects, reset peak memory.

    Returns
    -------
    dict
        ``cpu_s``: the process's CPU seconds so far.
    """
    with _LOCK:
        for key in _COUNTERS:
            _COUNTERS[key] = 0 if isinstance(_COUNTERS[key], int) else 0.0
    tasks = sys.modules.get("nidecode.analyses.tasks")
    if tasks is not None:
        for cached in ("_load_subject", "_read_design"):
            if hasattr(getattr(tasks, cached, None), "cache_clear"):
                getattr(tasks, cached).cache_clear()
    _reset_peak_memory()
    return {"cpu_s": _cpu_seconds()}


def collect() -> dict:
    """End a measurement: the counters, the peak resident memory (MiB) and CPU seconds."""
    with _LOCK:
        counters = dict(_COUNTERS)
    return {**counters, "peak_mib": peak_memory_mib(), "cpu_s": _cpu_seconds()}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _reset_peak_memory() -> bool:
    """Make the peak resident memory start again from now (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_memory_mib() -> float:
    """Peak resident memory of this process since the last reset (``VmHWM``), in MiB.

    Where ``/proc`` is missing, the peak over the process's life from
    ``resource.getrusage`` (KiB on Linux, bytes on macOS).
    """
    try:
        status = Path("/proc/self/status").read_text()
        found = re.search(r"^VmHWM:\s+(\d+)\s+kB", status, re.MULTILINE)
        if found:
            return int(found.group(1)) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def noop(value: int) -> int:
    """An empty task: timing many of them gives the scheduler's cost per task."""
    return value
