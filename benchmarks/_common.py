"""Shared helpers of the benchmark scripts: data, timing, saving (machine facts
and spreads come from :mod:`nidecode.bench`, as ``nidecode bench`` reports them)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from nidecode.bench.data import make_subjects
from nidecode.bench.machine import machine, spread
from nidecode.bench.settings import HAXBY_SLICE

RESULTS = Path(__file__).resolve().parent / "results"
__all__ = ["RESULTS", "machine", "save", "spread", "symlinked_subjects", "timed"]


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


def save(name: str, figures: dict) -> Path:
    """Write the figures as JSON under benchmarks/results/ and return the path."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(figures, indent=2) + "\n")
    return path
