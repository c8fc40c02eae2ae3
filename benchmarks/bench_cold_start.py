"""The first searchlight on a fresh install: whole processes, empty numba cache.

The real Haxby slice is ingested once (``nidecode ingest --mask mask``, not
timed), then each of these runs as its own process and is timed from start
to exit, as a user feels it:

* ``nidecode searchlight`` of face vs cat, radius 5.6 mm, leave one run out,
  ``--workers 1``, with ``NUMBA_CACHE_DIR`` pointed at a new empty directory
  (numba compiles every solver kernel: a fresh install);
* the same command again with that directory now filled (every later run);
* nilearn's whole process doing the same job: a script that loads the
  slice, z-scores each voxel within runs (as the ingest does) and fits
  ``SearchLight(SVC(kernel="linear"), radius=5.6, cv=LeaveOneGroupOut())``
  on the face and cat scans, imports included.

The three alternate within each repeat so that a busy machine slows them
alike; with ``--repeats N`` each gets N runs (a new empty cache for every
cold one). With ``--before REF`` the package as committed at ``REF`` (``git
archive``, run through ``PYTHONPATH``) runs cold and warm too, alternating
with the current code: before and after in the same run. Results in
``benchmarks/results/cold_start.json``. Run::

    python benchmarks/bench_cold_start.py [--repeats 1] [--before COMMIT]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine, save, spread

RADIUS = 5.6
PAIR = "face,cat"

NILEARN_SCRIPT = """
import sys, warnings
import nibabel as nib
import numpy as np
import pandas as pd
from nilearn.decoding import SearchLight
from nilearn.image import index_img
from sklearn.model_selection import LeaveOneGroupOut
from sklearn.svm import SVC

data = sys.argv[1]
labels = pd.read_csv(f"{data}/labels.txt", sep=" ")
bold = nib.load(f"{data}/bold.nii.gz")
mask = nib.load(f"{data}/mask.nii.gz")
runs = labels["chunks"].to_numpy()
volume = bold.get_fdata(dtype=np.float32)
for run in np.unique(runs):  # z-score each voxel within each run, as the ingest does
    part = volume[..., runs == run]
    std = part.std(axis=-1, ddof=1, keepdims=True)
    volume[..., runs == run] = (part - part.mean(axis=-1, keepdims=True)) / np.where(std, std, 1)
keep = np.flatnonzero(labels["labels"].isin(["face", "cat"]).to_numpy())
imgs = index_img(nib.Nifti1Image(volume, bold.affine), keep)
warnings.filterwarnings("ignore", message="Use a custom estimator", category=UserWarning)
light = SearchLight(mask, radius=float(sys.argv[2]), estimator=SVC(kernel="linear"),
                    cv=LeaveOneGroupOut(), n_jobs=1, verbose=0)
light.fit(imgs, labels["labels"].to_numpy()[keep], groups=runs[keep])
print(float(np.nanmean(light.scores_[np.asarray(mask.dataobj) != 0])))
"""


STALL_S = 300  # a run this long stalled (the worker's import race, see cluster.py)


def wall_time(command: list[str], env: dict | None = None) -> float:
    """Seconds from start to exit of one process (which must succeed)."""
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env, timeout=STALL_S)
    return time.perf_counter() - started


def cold_time(command: list[str], env: dict, cache: Path, stalls: list) -> float:
    """Seconds of a run with a new empty numba cache at ``cache``; a run that stalls
    (code before the warm-up's import fix could) is counted and run again."""
    for _ in range(3):
        shutil.rmtree(cache, ignore_errors=True)
        cache.mkdir()
        try:
            return wall_time(command, dict(env, NUMBA_CACHE_DIR=str(cache)))
        except subprocess.TimeoutExpired:
            stalls.append(" ".join(command[-9:]))
    raise RuntimeError(f"{command} stalled three times")


def searchlight_command(store: Path, out: Path) -> list[str]:
    """The user's first searchlight: ``nidecode searchlight`` on one worker."""
    return [sys.executable, "-m", "nidecode.cli", "searchlight", str(store), "--out", str(out),
            "--categories", PAIR, "--radius", str(RADIUS), "--workers", "1", "--quiet",
            "--overwrite"]


def one_repeat(work: Path, store: Path, data: Path, index: int, stalls: list,
               before: Path | None = None) -> dict[str, float]:
    """Cold, warm and nilearn once each, and the ``before`` package's cold and warm
    first if given; each cold run gets a new empty cache."""
    times = {}
    versions = ([("before_", before)] if before else []) + [("", None)]
    for prefix, package in versions:  # cold runs first, then nilearn, then warm
        env = dict(os.environ)
        if package is not None:
            env["PYTHONPATH"] = str(package)
        times[f"{prefix}nidecode_cold"] = cold_time(
            searchlight_command(store, work / f"{prefix}cold-{index}"), env,
            work / f"numba-cache-{prefix}{index}", stalls)
    times["nilearn"] = wall_time([sys.executable, "-c", NILEARN_SCRIPT, str(data), str(RADIUS)])
    for prefix, package in versions:
        env = dict(os.environ, NUMBA_CACHE_DIR=str(work / f"numba-cache-{prefix}{index}"))
        if package is not None:
            env["PYTHONPATH"] = str(package)
        times[f"{prefix}nidecode_warm"] = wall_time(
            searchlight_command(store, work / f"{prefix}warm-{index}"), env)
    return times


def package_at(commit: str, work: Path) -> Path:
    """The package as committed at ``commit``, importable as ``nidecode`` from the
    returned directory (``git archive`` of ``engine``)."""
    root = work / "before"
    root.mkdir()
    archive = subprocess.run(["git", "archive", commit, "engine"], check=True,
                             capture_output=True, cwd=Path(__file__).resolve().parent.parent).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    (root / "nidecode").symlink_to("engine")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--before", help="also time the package at this commit")
    args = parser.parse_args()
    from nidecode.datasets import load_haxby_slice

    load_start = os.getloadavg()

    data = load_haxby_slice()
    with tempfile.TemporaryDirectory(prefix="nidecode-cold-") as directory:
        work = Path(directory)
        store = work / "slice.zarr"
        subprocess.run([sys.executable, "-m", "nidecode.cli", "ingest", str(data), "--store",
                        str(store), "--mask", "mask", "--quiet"], check=True)
        before = package_at(args.before, work) if args.before else None
        stalls = []
        runs = [one_repeat(work, store, data, index, stalls, before)
                for index in range(args.repeats)]
    times = {key: [run[key] for run in runs] for key in runs[0]}
    best = {key: min(values) for key, values in times.items()}
    figures = {
        "what": "whole-process wall time of the first searchlight of the real slice (face vs "
                f"cat, r = {RADIUS} mm, leave one run out, --workers 1): empty numba cache, "
                "then filled, against nilearn's whole process on the same job",
        "data": "nidecode.datasets.load_haxby_slice()",
        "repeats": args.repeats,
        "seconds": {key: spread(values) for key, values in times.items()},
        "best_s": best,
        "before": args.before,
        "stalled_runs_repeated": stalls,
        "cold_over_nilearn": best["nidecode_cold"] / best["nilearn"],
        "warm_over_nilearn": best["nidecode_warm"] / best["nilearn"],
        "load_average_start": load_start,
        "load_average": os.getloadavg(),
        "machine": machine(),
    }
    path = save("cold_start", figures)
    for key, seconds in best.items():
        print(f"{key:15s} {seconds:6.1f} s")
    print(f"cold / nilearn = {figures['cold_over_nilearn']:.2f}; written {path}")


if __name__ == "__main__":
    main()
