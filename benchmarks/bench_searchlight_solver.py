"""Benchmark the compiled searchlight SVM solvers against nilearn's SearchLight.

Real Haxby slice, face vs cat (216 scans), data standardized over all scans with
``NiftiMasker(standardize="zscore_sample")``, radius 5.6 mm, leave-one-run-out
(12 folds), one core for every contender. Runs in the same process:

* nilearn ``SearchLight(estimator="svc")`` (nilearn's "svc" is ``LinearSVC``),
* nilearn ``SearchLight(estimator=SVC(kernel="linear"))``, the model the
  solvers reproduce,
* the default batched solver, every fold solved exactly from the sphere's
  all-scans solution and refitted on libsvm's path at near ties
  (``nidecode.solvers.batched.searchlight_accuracies``), with how its folds
  were solved, and the same without refits (``tie_margin=0``: the exact
  optimum's map),
* libsvm's own path for every fit
  (``nidecode.solvers.libsvm.searchlight_accuracies``, ``--solver libsvm``),
* optionally the per-sphere scikit-learn reference path
  (``nidecode.solvers.reference.searchlight_accuracies``, ``--with-sklearn``).

Prints spheres per second (CPU time of this process, so other load on the machine
matters less; wall time is recorded too), speed ratios, numba compile and cache-load
times (measured in fresh subprocesses) and the agreement of sphere accuracies, and
writes everything as JSON to ``--out``.

Run: ``/work/venv/bin/python benchmarks/bench_searchlight_solver.py``
"""

from __future__ import annotations

import os

# One core for everyone: set before numpy / BLAS are imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from nidecode.datasets import load_haxby_slice  # noqa: E402
from nidecode.solvers.batched import (  # noqa: E402
    searchlight_accuracies as batched_accuracies,
)
from nidecode.solvers.libsvm import (  # noqa: E402
    searchlight_accuracies as libsvm_accuracies,
)
from nidecode.solvers.reference import (  # noqa: E402
    searchlight_accuracies as reference_accuracies,
)
from nidecode.spheres import sphere_neighbourhoods  # noqa: E402

from _common import RESULTS, best_times, data_name, first_call_times  # noqa: E402

DEFAULT_DATA = load_haxby_slice()

_COMPILE_SNIPPET = """
import time
t0 = time.perf_counter()
import numpy as np, scipy.sparse as sp
from nidecode.solvers.batched import searchlight_accuracies
t1 = time.perf_counter()
X = np.random.default_rng(0).standard_normal((12, 3))
y = np.tile([0, 1], 6)
folds = [(np.arange(6, 12), np.arange(6)), (np.arange(6), np.arange(6, 12))]
searchlight_accuracies(X, y, sp.csr_matrix(np.ones((1, 3), dtype=bool)), folds)
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def load(data_dir: Path, radius: float):
    from nilearn.maskers import NiftiMasker
    from sklearn.model_selection import LeaveOneGroupOut

    labels = pd.read_csv(data_dir / "labels.txt", sep=" ")
    bold = nib.load(data_dir / "bold.nii.gz")
    mask_img = nib.load(data_dir / "mask.nii.gz")
    masker = NiftiMasker(mask_img=mask_img, standardize="zscore_sample")
    X_all = masker.fit_transform(bold)
    keep = labels["labels"].isin(["face", "cat"]).to_numpy()
    X = X_all[keep]
    y = labels["labels"].to_numpy()[keep]
    runs = labels["chunks"].to_numpy()[keep]
    mask = np.asarray(mask_img.dataobj) != 0
    t0 = time.perf_counter()
    _, spheres = sphere_neighbourhoods(mask, mask_img.affine, radius)
    t_spheres = time.perf_counter() - t0
    folds = list(LeaveOneGroupOut().split(X, y, runs))
    imgs = masker.inverse_transform(X)
    return X, y, runs, spheres, folds, imgs, mask_img, t_spheres


def run_nilearn(imgs, y, runs, mask_img, radius: float, estimator):
    from nilearn.decoding import SearchLight
    from sklearn.model_selection import LeaveOneGroupOut

    sl = SearchLight(
        mask_img=mask_img, radius=radius, estimator=estimator, cv=LeaveOneGroupOut(), n_jobs=1
    )
    sl.fit(imgs, y, groups=runs)
    return np.asarray(sl.masked_scores_)


def agreement(a: np.ndarray, b: np.ndarray) -> dict:
    return {
        "equal_fraction": float(np.mean(np.isclose(a, b, rtol=0, atol=1e-9))),
        "mean_abs_diff": float(np.mean(np.abs(a - b))),
        "max_abs_diff": float(np.max(np.abs(a - b))),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=RESULTS / "searchlight_solver.json"
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--radius", type=float, default=5.6)
    parser.add_argument("--repeats", type=int, default=5, help="repeats of the batched run")
    parser.add_argument("--nilearn-repeats", type=int, default=2,
                        help="repeats of each nilearn run (best CPU time kept)")
    parser.add_argument("--with-sklearn", action="store_true", help="also time the SVC loop")
    parser.add_argument("--skip-nilearn", action="store_true")
    args = parser.parse_args(argv)

    from sklearn.svm import SVC

    warnings.simplefilter("ignore")
    results: dict = {
        "data": data_name(args.data_dir),
        "contrast": "face vs cat",
        "radius_mm": args.radius,
        "cv": "LeaveOneGroupOut (12 runs)",
        "machine": {"python": platform.python_version(), "cpu": platform.processor()},
        "timing": "best CPU time of this process, one thread; wall time alongside",
    }
    with threadpool_limits(limits=1):
        print("numba compile (fresh processes) ...", flush=True)
        results["compile"] = first_call_times(_COMPILE_SNIPPET)
        X, y, runs, spheres, folds, imgs, mask_img, t_spheres = load(args.data_dir, args.radius)
        n = spheres.shape[0]
        results["n_spheres"] = int(n)
        results["n_scans"] = int(len(y))
        results["sphere_sizes"] = {
            "min": int(np.diff(spheres.indptr).min()),
            "max": int(np.diff(spheres.indptr).max()),
        }
        results["spheres_build_s"] = t_spheres

        batched_accuracies(X, y, spheres[:2], folds)  # compile / load from cache
        libsvm_accuracies(X, y, spheres[:2], folds)
        print("batched solver ...", flush=True)
        (acc, info), cpu, wall = best_times(
            lambda: batched_accuracies(X, y, spheres, folds, return_info=True),
            args.repeats,
        )
        batched = acc.mean(1)
        results["batched"] = {
            "cpu_s": cpu,
            "wall_s": wall,
            "spheres_per_s": n / cpu,
            "fits": int(acc.size),
            "folds": info,
            "mean_accuracy": float(batched.mean()),
        }

        print("libsvm path ...", flush=True)
        (libsvm, n_iter), cpu, wall = best_times(
            lambda: libsvm_accuracies(X, y, spheres, folds, return_n_iter=True),
            args.repeats,
        )
        contenders = {"libsvm_path": (libsvm.mean(1), cpu, wall)}
        print("exact optimum, no refits ...", flush=True)
        exact, cpu, wall = best_times(
            lambda: batched_accuracies(X, y, spheres, folds, tie_margin=0.0),
            args.repeats,
        )
        contenders["batched_without_refits"] = (exact.mean(1), cpu, wall)
        results["smo_iterations_mean_libsvm_path"] = float(np.abs(n_iter).mean())
        if not args.skip_nilearn:
            for key, est in (
                ("nilearn_svc_default_linearsvc", "svc"),
                ("nilearn_svc_linear_kernel", SVC(kernel="linear")),
            ):
                print(f"{key} ...", flush=True)
                scores, cpu, wall = best_times(
                    lambda est=est: run_nilearn(imgs, y, runs, mask_img, args.radius, est),
                    args.nilearn_repeats,
                )
                contenders[key] = (scores, cpu, wall)
        if args.with_sklearn:
            print("sklearn reference path ...", flush=True)
            ref, cpu, wall = best_times(lambda: reference_accuracies(X, y, spheres, folds), 1)
            contenders["sklearn_svc_loop"] = (ref.mean(1), cpu, wall)

    for key, (scores, cpu, wall) in contenders.items():
        results[key] = {
            "cpu_s": cpu,
            "wall_s": wall,
            "spheres_per_s": n / cpu,
            "batched_speedup": cpu / results["batched"]["cpu_s"],
            "agreement_with_batched": agreement(batched, scores),
            "mean_accuracy": float(np.mean(scores)),
        }

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")

    b = results["batched"]
    print(f"\n{n} spheres, {len(folds)} folds, {len(y)} scans, radius {args.radius} mm")
    print(f"spheres built in {t_spheres * 1e3:.1f} ms")
    for key in ("cold_cache", "warm_cache"):
        c = results["compile"][key]
        print(f"numba first call, {key}: {c['first_call_s']:.2f} s (import {c['import_s']:.2f} s)")
    print(f"{'contender':34s} {'CPU s':>8s} {'spheres/s':>10s} {'speedup':>8s} "
          f"{'equal':>7s} {'MAD':>8s}")  # fmt: skip
    print(f"{'batched':34s} {b['cpu_s']:8.3f} {b['spheres_per_s']:10.1f} {'1':>8s}")
    for key in contenders:
        r = results[key]
        a = r["agreement_with_batched"]
        print(
            f"{key:34s} {r['cpu_s']:8.3f} {r['spheres_per_s']:10.1f} "
            f"{r['batched_speedup']:7.1f}x {a['equal_fraction']:7.3f} {a['mean_abs_diff']:8.5f}"
        )
    print(f"\nwritten {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
