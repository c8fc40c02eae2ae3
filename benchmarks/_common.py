"""Shared helpers of the benchmark scripts: data, timing, saving (machine facts
and spreads come from :mod:`nidecode.bench`, as ``nidecode bench`` reports them)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nidecode.bench.data import make_subjects
from nidecode.bench.machine import machine, spread
from nidecode.bench.settings import HAXBY_SLICE

RESULTS = Path(__file__).resolve().parent / "results"
__all__ = ["RESULTS", "best_times", "data_name", "first_call_times", "machine", "save", "spread",
           "symlinked_subjects", "timed"]


def symlinked_subjects(directory: Path, n: int) -> list[Path]:
    """``n`` subject directories that all point at the real Haxby slice."""
    if not (HAXBY_SLICE / "bold.nii.gz").exists():
        raise SystemExit(f"the real Haxby slice is needed at {HAXBY_SLICE}")
    return list(make_subjects("real", n, directory).subject_dirs)


def timed(function, repeats: int) -> tuple[list[float], object]:
    """Wall times of ``repeats`` calls and the last call's result."""
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return times, result


def data_name(directory: Path) -> str:
    """How results name their data: the packaged slice by its loader, not a machine path."""
    from nidecode.datasets import load_haxby_slice

    return ("nidecode.datasets.load_haxby_slice()" if directory == load_haxby_slice()
            else directory.name)


def first_call_times(snippet: str) -> dict:
    """Seconds of import and first call in fresh processes: empty numba cache, then filled.

    ``snippet`` is Python that prints the two times, separated by a space.
    """
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for key in ("cold_cache", "warm_cache"):
            done = subprocess.run([sys.executable, "-c", snippet], env=env,
                                  capture_output=True, text=True, check=True)
            t_import, t_first = map(float, done.stdout.split())
            out[key] = {"import_s": t_import, "first_call_s": t_first}
    return out


def best_times(function, repeats: int) -> tuple[object, float, float]:
    """The last call's result and the best CPU and wall seconds of ``repeats`` calls."""
    best_cpu = best_wall = float("inf")
    result = None
    for _ in range(repeats):
        cpu, wall = time.process_time(), time.perf_counter()
        result = function()
        best_cpu = min(best_cpu, time.process_time() - cpu)
        best_wall = min(best_wall, time.perf_counter() - wall)
    return result, best_cpu, best_wall


def save(name: str, figures: dict) -> Path:
    """Write the figures as JSON under benchmarks/results/ and return the path."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(figures, indent=2) + "\n")
    return path
