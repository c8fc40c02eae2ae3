"""Leave one subject out (``nidecode decode --cv loso``) against scikit-learn, and worker memory.

N synthetic whole-brain subjects on one grid (about 30 000 voxels, 216 scans
of the pair each: 12 runs of 9 face and 9 house scans), written straight
through the store's writer (no NIfTI, no cleaning: the data are what the
store holds). Timed on this machine in one run:

- ``nidecode decode STORE --cv loso`` as a whole command (a fresh process
  attached to a LocalCluster of 1, then 2 workers), and apart its start-up:
  the same command on a two-subject store of 512 voxels;
- scikit-learn on the concatenated array: ``cross_val_score(SVC(kernel="linear"),
  X_all, y_all, groups=subject, cv=LeaveOneGroupOut())`` (one process; the
  array read from the store first, timed apart).

Each worker's peak resident memory (``resource.getrusage`` in the worker,
workers restarted before each run) is reported against the study's array
and the kernel. Run::

    python benchmarks/bench_loso.py [--subjects 10] [--voxels 30000] [--workers 1,2]
        [--no-sklearn] [--name loso]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from nidecode import store
from nidecode.cluster import get_client

from _common import machine, save

RUNS, PER_CLASS = 12, 9  # 12 runs x (9 face + 9 house) = 216 scans of the pair
SHAPE = (40, 48, 40)


def peak_rss_mib() -> float:
    """This process's peak resident memory (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def whole_brain_mask(n_voxels: int) -> np.ndarray:
    """An ellipsoid of about ``n_voxels`` voxels in :data:`SHAPE` (a synthetic brain)."""
    grid = np.stack(np.meshgrid(*(np.arange(n) - (n - 1) / 2 for n in SHAPE),
                                indexing="ij"), axis=-1)
    axes = np.array(SHAPE) / 2 * 0.95
    radius = np.sqrt(((grid / axes) ** 2).sum(axis=-1))
    return radius <= np.sort(radius.ravel())[n_voxels - 1]


def write_study(path: Path, n_subjects: int, n_voxels: int, seed: int = 0) -> None:
    """Subjects sharing a face-vs-house pattern (10% of the voxels), each with noise."""
    mask = whole_brain_mask(n_voxels)
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    rng = np.random.default_rng(seed)
    pattern = np.where(rng.random(mask.sum()) < 0.1, rng.normal(0, 1, mask.sum()), 0.0)
    runs = np.repeat(np.arange(RUNS), 2 * PER_CLASS)
    for index in range(n_subjects):
        labels = np.concatenate([rng.permutation(["face"] * PER_CLASS + ["house"] * PER_CLASS)
                                 for _ in range(RUNS)])
        sign = np.where(labels == "face", -1.0, 1.0)[:, None]
        X = rng.normal(0, 1, (len(labels), mask.sum())) + 0.15 * sign * pattern
        store.write_subject(path, f"sub{index + 1:03d}", X.astype(np.float32), labels, runs,
                            mask, affine, cleaning={}, source={"synthetic": "bench_loso"})


def run_command(store_path: Path, out: Path, scheduler: str) -> float:
    """Wall seconds of ``nidecode decode --cv loso`` in a fresh process."""
    command = [sys.executable, "-c", "import sys; from nidecode.cli import main; "
               "sys.exit(main(sys.argv[1:]))", "decode", str(store_path), "--out", str(out),
               "--cv", "loso", "--scheduler", scheduler, "--quiet", "--overwrite"]
    started = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - started


def sklearn_loso(store_path: Path, n_folds: int | None = None) -> dict:
    """scikit-learn on the concatenated array (read from the store, timed apart).

    ``n_folds``: only the first folds of ``LeaveOneGroupOut`` (their time is
    extrapolated to all folds in ``fit_s_all_folds_estimated``).
    """
    from sklearn.model_selection import LeaveOneGroupOut, cross_val_score
    from sklearn.svm import SVC

    started = time.perf_counter()
    X, y, groups = [], [], []
    for subject in store.list_subjects(store_path):
        X.append(store.read_timeseries(store_path, subject))
        y.append(store.read_design(store_path, subject).labels)
        groups.append(np.full(len(y[-1]), subject))
    X, y, groups = np.concatenate(X), np.concatenate(y), np.concatenate(groups)
    read_s = time.perf_counter() - started
    splits = list(LeaveOneGroupOut().split(X, y, groups))
    started, cpu = time.perf_counter(), time.process_time()
    scores = cross_val_score(SVC(kernel="linear"), X, y, cv=splits[:n_folds])
    fit_s = time.perf_counter() - started
    return {"read_s": read_s, "fit_s": fit_s, "fit_cpu_s": time.process_time() - cpu,
            "folds_timed": len(scores), "fit_s_all_folds_estimated":
            fit_s * len(splits) / len(scores), "scores": scores,
            "array_mib_float32": X.nbytes / 2**20, "client_peak_mib": peak_rss_mib()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=10)
    parser.add_argument("--voxels", type=int, default=30000)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--no-sklearn", action="store_true",
                        help="skip scikit-learn (a study too large for one process)")
    parser.add_argument("--sklearn-folds", type=int,
                        help="time scikit-learn on the first K folds only (extrapolated)")
    parser.add_argument("--name", default="loso",
                        help="results file benchmarks/results/NAME.json (default loso)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nidecode-loso-"))
    started = time.perf_counter()
    write_study(work / "study.zarr", args.subjects, args.voxels)
    write_study(work / "tiny.zarr", 2, 512, seed=1)
    write_s = time.perf_counter() - started
    n_rows = args.subjects * RUNS * 2 * PER_CLASS
    runs = {}
    for workers in [int(text) for text in args.workers.split(",")]:
        with get_client(workers=workers) as client:
            scheduler = client.scheduler.address
            startup_s = min(run_command(work / "tiny.zarr", work / "tiny-out", scheduler)
                            for _ in range(2))  # the first also warms the file cache
            client.restart()  # fresh workers: the peaks are those of the run alone
            idle = client.run(peak_rss_mib)
            whole_s = run_command(work / "study.zarr", work / f"out-{workers}", scheduler)
            peaks = client.run(peak_rss_mib)
        runs[workers] = {"command_s": whole_s, "startup_s": startup_s,
                         "compute_s": whole_s - startup_s,
                         "worker_idle_mib": sorted(idle.values()),
                         "worker_peak_mib": sorted(peaks.values())}
        print(f"{workers} worker(s): {runs[workers]}", flush=True)
    scores = {workers: pd.read_csv(work / f"out-{workers}" / "scores.csv")["accuracy"]
              .to_numpy() for workers in runs}
    figures = {
        "benchmark": f"nidecode decode --cv loso: {args.subjects} synthetic subjects x "
                     f"{args.voxels} voxels x 216 scans of face vs house, against "
                     f"scikit-learn's cross_val_score(SVC(kernel='linear'), LeaveOneGroupOut)",
        "machine": machine(),
        "subjects": args.subjects, "voxels": args.voxels, "kernel_rows": n_rows,
        "study_mib_float32": n_rows * args.voxels * 4 / 2**20,
        "study_mib_float64": n_rows * args.voxels * 8 / 2**20,
        "kernel_mib_float64": n_rows**2 * 8 / 2**20,
        "block_voxels": 4096,
        "block_mib_float64": n_rows * 4096 * 8 / 2**20,
        "write_store_s": write_s,
        "nidecode": {str(workers): figures for workers, figures in runs.items()},
        "same_scores_all_worker_counts": all(np.array_equal(values, next(iter(scores.values())))
                                             for values in scores.values()),
    }
    if not args.no_sklearn:
        baseline = sklearn_loso(work / "study.zarr", args.sklearn_folds)
        figures["sklearn"] = {key: value for key, value in baseline.items() if key != "scores"}
        timed = len(baseline["scores"])
        figures["scores_equal_sklearn"] = bool(np.array_equal(
            next(iter(scores.values()))[:timed], baseline["scores"]))
        for run in runs.values():
            run["speedup_vs_sklearn_fit"] = (baseline["fit_s_all_folds_estimated"]
                                             / run["command_s"])
    print({key: value for key, value in figures.items() if key != "machine"})
    print(f"saved {save(args.name, figures)}")


if __name__ == "__main__":
    main()
