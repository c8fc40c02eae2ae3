"""Shared helpers of the benchmark scripts: machine description, data, timing."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HAXBY_SLICE = REPO.parent / "shared" / "data" / "haxby2001-slice"
RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    """What the figures were measured on."""
    from engine.run import versions

    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": _cpu_model(), "cores": len(os.sched_getaffinity(0)),
            "memory_gib": round(memory_gib, 1), "python": platform.python_version(),
            "platform": platform.platform(), "versions": versions()}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def symlinked_subjects(directory: Path, n: int) -> list[Path]:
    """``n`` subject directories that all point at the real Haxby slice."""
    if not (HAXBY_SLICE / "bold.nii.gz").exists():
        raise SystemExit(f"the real Haxby slice is needed at {HAXBY_SLICE}")
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(1, n + 1):
        path = directory / f"sub-{index:02d}"
        if not path.exists():
            path.symlink_to(HAXBY_SLICE, target_is_directory=True)
        paths.append(path)
    return paths


def timed(function, repeats: int) -> tuple[list[float], object]:
    """Wall times of ``repeats`` calls and the last call's result."""
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return times, result


def spread(times: list[float]) -> dict:
    """Median, min and max of repeated timings."""
    return {"median": statistics.median(times), "min": min(times), "max": max(times),
            "repeats": len(times)}


def save(name: str, figures: dict) -> Path:
    """Write the figures as JSON under benchmarks/results/ and return the path."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(figures, indent=2) + "\n")
    return path
