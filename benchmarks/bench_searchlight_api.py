"""Benchmark ``nidecode.SearchLight(...).fit`` against nilearn's ``SearchLight``.

Real Haxby slice, face vs cat (216 scans), standardized over all scans with
``NiftiMasker(standardize="zscore_sample")`` and given to both as the same 4D
image, radius 5.6 mm, ``LeaveOneGroupOut`` over the runs (12 folds), one core,
in the calling process (no client), in the same run:

* ``nidecode.SearchLight(estimator=SVC(kernel="linear"))`` (the batched solver),
  warm: numba's first call is timed apart, in fresh processes with an empty
  numba cache (compilation) and then with the filled cache (cache load);
* nilearn ``SearchLight(estimator=SVC(kernel="linear"))``, the same problem.

The whole fit is timed (loading and masking the image, spheres, solver), as a
user calls it. Prints spheres per second (CPU time of this process, best of the
repeats; wall time alongside), the ratio and the agreement of the two maps, and
writes them as JSON to ``benchmarks/results/searchlight_api.json``.

Run: ``python benchmarks/bench_searchlight_api.py`` (``--step 9`` centres every
ninth mask voxel, for a smoke run).
"""

from __future__ import annotations

import os

# One core for everyone: set before numpy / BLAS are imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from nidecode.datasets import load_haxby_slice  # noqa: E402

from _common import RESULTS, best_times, data_name, first_call_times, machine, save  # noqa: E402

RADIUS = 5.6

# First fit in a fresh process: numba compiles (empty cache) or loads its cache.
_FIRST_CALL = """
import time
import nibabel as nib, numpy as np
from sklearn.svm import SVC
t0 = time.perf_counter()
import nidecode
t1 = time.perf_counter()
rng = np.random.default_rng(0)
affine = np.diag([3.0, 3.0, 3.0, 1.0])
imgs = nib.Nifti1Image(rng.standard_normal((3, 3, 1, 12)).astype(np.float32), affine)
mask = nib.Nifti1Image(np.ones((3, 3, 1), np.uint8), affine)
nidecode.SearchLight(mask, radius=3.0, estimator=SVC(kernel="linear"), cv=2).fit(
    imgs, np.tile([0, 1], 6))
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def load(data_dir: Path, step: int):
    """The face and cat scans as one standardized 4D image, labels, runs, masks."""
    from nilearn.maskers import NiftiMasker

    labels = pd.read_csv(data_dir / "labels.txt", sep=" ")
    mask_img = nib.load(data_dir / "mask.nii.gz")
    masker = NiftiMasker(mask_img=mask_img, standardize="zscore_sample")
    X = masker.fit_transform(data_dir / "bold.nii.gz")
    keep = labels["labels"].isin(["face", "cat"]).to_numpy()
    mask = np.asarray(mask_img.dataobj) != 0
    centres = np.zeros(mask.size, bool)
    centres[np.flatnonzero(mask)[::step]] = True
    process_img = nib.Nifti1Image(centres.reshape(mask.shape).astype(np.uint8), mask_img.affine)
    return (masker.inverse_transform(X[keep]), labels["labels"].to_numpy()[keep],
            labels["chunks"].to_numpy()[keep], mask_img, process_img)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS / "searchlight_api.json")
    parser.add_argument("--data-dir", type=Path, default=load_haxby_slice())
    parser.add_argument("--step", type=int, default=1,
                        help="centre every STEP-th mask voxel (1: all 530)")
    parser.add_argument("--repeats", type=int, default=5, help="repeats of nidecode's fit")
    parser.add_argument("--nilearn-repeats", type=int, default=1)
    args = parser.parse_args(argv)

    from nilearn.decoding import SearchLight
    from sklearn.model_selection import LeaveOneGroupOut
    from sklearn.svm import SVC

    import nidecode

    warnings.simplefilter("ignore")  # nilearn: "Use a custom estimator at your own risk"
    imgs, y, runs, mask_img, process_img = load(args.data_dir, args.step)
    results: dict = {"data": data_name(args.data_dir), "contrast": "face vs cat",
                     "radius_mm": RADIUS, "cv": "LeaveOneGroupOut (12 runs)",
                     "step": args.step, "machine": machine(),
                     "timing": "best CPU time of this process, one thread; wall time too; "
                               "whole fit (masking, spheres, solver)"}

    def ours():
        return nidecode.SearchLight(mask_img, process_mask_img=process_img, radius=RADIUS,
                                    estimator=SVC(kernel="linear"), cv=LeaveOneGroupOut(),
                                    n_jobs=1).fit(imgs, y, groups=runs)

    def theirs():
        return SearchLight(mask_img=mask_img, process_mask_img=process_img, radius=RADIUS,
                           estimator=SVC(kernel="linear"), cv=LeaveOneGroupOut(),
                           n_jobs=1).fit(imgs, y, groups=runs)

    with threadpool_limits(limits=1):
        print("first fit in fresh processes (numba) ...", flush=True)
        results["first_call"] = first_call_times(_FIRST_CALL)
        first_started = time.perf_counter()
        ours()  # this process's first fit: numba loads its cache (or compiles)
        results["first_fit_in_this_process_s"] = time.perf_counter() - first_started
        print("nidecode.SearchLight, warm ...", flush=True)
        light, cpu, wall = best_times(ours, args.repeats)
        print("nilearn SearchLight(SVC(kernel='linear')) ...", flush=True)
        reference, ref_cpu, ref_wall = best_times(theirs, args.nilearn_repeats)

    n = int(light.n_elements_)
    a, b = light.masked_scores_, np.asarray(reference.masked_scores_)
    results.update({
        "n_spheres": n, "n_scans": int(len(y)), "method": light.method_,
        "nidecode": {"cpu_s": cpu, "wall_s": wall, "spheres_per_s": n / cpu},
        "nilearn_svc_linear_kernel": {"cpu_s": ref_cpu, "wall_s": ref_wall,
                                      "spheres_per_s": n / ref_cpu},
        "speedup": ref_cpu / cpu,
        "agreement": {"equal_fraction": float(np.mean(np.isclose(a, b, rtol=0, atol=1e-9))),
                      "mean_abs_diff": float(np.mean(np.abs(a - b))),
                      "max_abs_diff": float(np.max(np.abs(a - b)))},
    })
    path = save(args.out.stem, results) if args.out.parent == RESULTS else _write(args.out,
                                                                                  results)

    print(f"\n{n} spheres, {len(y)} scans, radius {RADIUS} mm, 12 folds")
    for key in ("cold_cache", "warm_cache"):
        first = results["first_call"][key]
        print(f"first fit, fresh process, {key}: {first['first_call_s']:.2f} s "
              f"(import {first['import_s']:.2f} s)")
    print(f"first fit in this process: {results['first_fit_in_this_process_s']:.2f} s")
    for key in ("nidecode", "nilearn_svc_linear_kernel"):
        row = results[key]
        print(f"{key:28s} CPU {row['cpu_s']:8.3f} s  wall {row['wall_s']:8.3f} s  "
              f"{row['spheres_per_s']:9.1f} spheres/s")
    agree = results["agreement"]
    print(f"speed-up {results['speedup']:.1f}x; equal on {agree['equal_fraction']:.1%} of "
          f"spheres, mean |diff| {agree['mean_abs_diff']:.5f}")
    print(f"written {path}")
    return 0


def _write(path: Path, figures: dict) -> Path:
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=2) + "\n")
    return path


if __name__ == "__main__":
    raise SystemExit(main())
