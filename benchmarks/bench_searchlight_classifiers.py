"""Closed-form searchlights (GaussianNB, shrinkage LDA) against nilearn's ``SearchLight``.

A whole-brain-sized synthetic subject (``make_subject(seed=3, shape=(40, 64,
64))``: about 28 000 brain voxels, 1452 scans, 3.5 x 3.75 x 3.75 mm voxels,
flipped x axis), face vs house (216 scans), z-scored over those scans by
``NiftiMasker(standardize="zscore_sample")`` and given to everyone as the same
float32 4D image; radius 5.6 mm, ``LeaveOneGroupOut`` over the 12 runs; one
core, in the calling process, warm (numba's cache loaded by a tiny call first),
in the same run:

* solver only: :func:`nidecode.solvers.gnb.searchlight_accuracies` and
  :func:`nidecode.solvers.lda.searchlight_accuracies` on every sphere, from
  the masked data in memory (reading and masking excluded);
* end to end: ``nidecode.SearchLight(estimator=GaussianNB())`` and
  ``LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")`` on every
  sphere (masking, spheres, solver);
* nilearn's ``SearchLight`` with the same estimators on a few hundred evenly
  spread centres (every k-th brain voxel); the maps compared on those centres.

Spheres per second are CPU seconds of this process (best of ``--repeats``),
wall time alongside. With ``--permutations N``: N label permutations within
runs through the GaussianNB solver (solver level, one core), and the projected
wall time of 1000 of them on 2 cores (independent permutations split evenly).
With ``--permutation-run N --workers W``: N GaussianNB permutations at the
solver level (:func:`nidecode.solvers.gnb.permutation_accuracies`) really run
on W worker processes (joblib; the wall time includes starting them and
loading numba's cache); ``--permutations-only`` skips the comparisons and adds
that figure to the saved JSON. Writes
``benchmarks/results/searchlight_classifiers.json``.

Run: ``python benchmarks/bench_searchlight_classifiers.py [--centres 300]
[--permutations 20] [--permutation-run 1000 --workers 2 [--permutations-only]]``
(``--shape 20 24 10`` for a smoke run).
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
from threadpoolctl import threadpool_limits  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import best_times, machine, save  # noqa: E402

RADIUS = 5.6
#: Estimators by name: (scikit-learn estimator factory, solver module name).
CLASSIFIERS = ("gnb", "lda")


def estimator(name: str):
    """The scikit-learn estimator the closed-form solver reproduces."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.naive_bayes import GaussianNB

    if name == "gnb":
        return GaussianNB()
    return LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")


def solver(name: str):
    """The closed-form ``searchlight_accuracies`` of ``name``."""
    from nidecode.solvers import gnb, lda

    return {"gnb": gnb, "lda": lda}[name].searchlight_accuracies


def load(shape: tuple[int, int, int], n_centres: int) -> dict:
    """The subject's face and house scans as a float32 image, masks, labels, runs."""
    from nilearn.maskers import NiftiMasker

    from nidecode.synth import make_subject

    subject = make_subject(seed=3, shape=shape)
    keep = subject.labels["labels"].isin(["face", "house"]).to_numpy()
    masker = NiftiMasker(mask_img=subject.brain_mask, standardize="zscore_sample")
    bold = nib.Nifti1Image(np.asarray(subject.bold.dataobj)[..., keep], subject.bold.affine)
    X = masker.fit_transform(bold).astype(np.float32)
    mask = np.asarray(subject.brain_mask.dataobj) != 0
    step = max(1, int(mask.sum()) // n_centres)
    centres = np.zeros(mask.size, bool)
    centres[np.flatnonzero(mask)[::step]] = True
    return {"imgs": masker.inverse_transform(X), "X": X.astype(np.float64),
            "y": subject.labels["labels"].to_numpy()[keep],
            "runs": subject.labels["chunks"].to_numpy()[keep], "mask_img": subject.brain_mask,
            "mask": mask, "step": step,
            "process_img": nib.Nifti1Image(centres.reshape(mask.shape).astype(np.uint8),
                                           subject.bold.affine)}


def warm() -> None:
    """Load both solvers' compiled code (numba's cache) before timing."""
    import scipy.sparse as sp

    X = np.random.default_rng(0).normal(size=(12, 3))
    folds = [(np.arange(6, 12), np.arange(6)), (np.arange(6), np.arange(6, 12))]
    for name in CLASSIFIERS:
        solver(name)(X, np.tile([0, 1], 6), sp.csr_matrix(np.ones((1, 3))), folds,
                     return_decisions=True)


def permutation_times(data: dict, spheres, folds, n_permutations: int) -> dict:
    """Seconds per GaussianNB permutation (solver level, one core), and 1000 on 2 cores."""
    from nidecode.stats import permute_within_runs

    fit = solver("gnb")
    rng = np.random.default_rng(0)
    started_cpu, started = time.process_time(), time.perf_counter()
    for _ in range(n_permutations):
        fit(data["X"], permute_within_runs(data["y"], data["runs"], rng), spheres, folds)
    cpu, wall = time.process_time() - started_cpu, time.perf_counter() - started
    per = cpu / n_permutations
    return {"n_permutations": n_permutations, "cpu_s": cpu, "wall_s": wall,
            "cpu_s_per_permutation": per,
            "projected_1000_permutations_2_cores_wall_s": 1000 * per / 2}


def _permutation_chunk(X, label_sets, spheres, folds) -> np.ndarray:
    """One worker's share of the permutations: mean accuracy per sphere."""
    from nidecode.solvers.gnb import permutation_accuracies

    return permutation_accuracies(X, label_sets, spheres, folds).mean(axis=2)


def permutation_run(data: dict, spheres, folds, n_permutations: int, workers: int) -> dict:
    """Wall time of ``n_permutations`` GaussianNB permutations on ``workers`` processes."""
    from joblib import Parallel, delayed

    from nidecode.stats import permute_within_runs

    rng = np.random.default_rng(1)
    label_sets = np.stack([permute_within_runs(data["y"], data["runs"], rng)
                           for _ in range(n_permutations)])
    # A few chunks per worker: the load evens out on a shared machine.
    chunks = np.array_split(label_sets, 4 * workers)
    started = time.perf_counter()
    null = np.concatenate(Parallel(n_jobs=workers)(
        delayed(_permutation_chunk)(data["X"], chunk, spheres, folds) for chunk in chunks))
    wall = time.perf_counter() - started
    assert null.shape == (n_permutations, spheres.shape[0])
    return {"n_permutations": n_permutations, "workers": workers, "wall_s": wall,
            "null_mean_accuracy": float(null.mean()),
            "note": "solver level, joblib worker processes (start-up and numba cache load "
                    "included), data in memory"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=(40, 64, 64))
    parser.add_argument("--centres", type=int, default=300,
                        help="about this many evenly spread centres for nilearn")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--permutations", type=int, default=0)
    parser.add_argument("--permutation-run", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--permutations-only", action="store_true")
    args = parser.parse_args(argv)

    from nilearn.decoding import SearchLight as NilearnSearchLight
    from sklearn.model_selection import LeaveOneGroupOut

    import nidecode
    from nidecode.spheres import sphere_neighbourhoods

    warnings.simplefilter("ignore")  # nilearn: "Use a custom estimator at your own risk"
    print("synthetic subject ...", flush=True)
    data = load(tuple(args.shape), args.centres)
    folds = list(LeaveOneGroupOut().split(data["X"], data["y"], data["runs"]))
    _, spheres = sphere_neighbourhoods(data["mask"], data["imgs"].affine, RADIUS)
    results: dict = {
        "data": f"nidecode.synth.make_subject(seed=3, shape={tuple(args.shape)})",
        "contrast": "face vs house", "n_scans": int(len(data["y"])), "radius_mm": RADIUS,
        "cv": "LeaveOneGroupOut (12 runs)", "n_spheres": int(spheres.shape[0]),
        "mean_sphere_voxels": float(np.diff(spheres.indptr).mean()),
        "nilearn_centres_every": data["step"], "machine": machine(),
        "timing": "best CPU time of this process, one thread, warm; wall time too",
    }
    if args.permutations_only:
        return _permutations_only(data, spheres, folds, args)
    sl_args = {"radius": RADIUS, "cv": LeaveOneGroupOut(), "n_jobs": 1}
    with threadpool_limits(limits=1):
        warm()
        for name in CLASSIFIERS:
            print(f"{name}: solver ...", flush=True)
            accuracy, cpu, wall = best_times(
                lambda name=name: solver(name)(data["X"], data["y"], spheres, folds),
                args.repeats)
            row = {"solver_only": {"cpu_s": cpu, "wall_s": wall,
                                   "spheres_per_s": spheres.shape[0] / cpu}}
            print(f"{name}: nidecode.SearchLight ...", flush=True)
            light, cpu, wall = best_times(
                lambda name=name: nidecode.SearchLight(
                    data["mask_img"], estimator=estimator(name), **sl_args
                ).fit(data["imgs"], data["y"], groups=data["runs"]), args.repeats)
            assert light.method_ == name
            row["searchlight_api"] = {"cpu_s": cpu, "wall_s": wall,
                                      "spheres_per_s": light.n_elements_ / cpu}
            print(f"{name}: nilearn SearchLight ...", flush=True)
            reference, cpu, wall = best_times(
                lambda name=name: NilearnSearchLight(
                    data["mask_img"], process_mask_img=data["process_img"],
                    estimator=estimator(name), **sl_args
                ).fit(data["imgs"], data["y"], groups=data["runs"]), 1)
            centres = np.asarray(data["process_img"].dataobj) != 0
            n_ref = int(centres.sum())
            row["nilearn"] = {"n_centres": n_ref, "cpu_s": cpu, "wall_s": wall,
                              "spheres_per_s": n_ref / cpu}
            ours, theirs = light.scores_[centres], reference.scores_[centres]
            solver_map = np.zeros(data["mask"].shape)
            solver_map[data["mask"]] = accuracy.mean(axis=1)
            equal = np.isclose(ours, theirs, rtol=0, atol=1e-9)
            row["agreement"] = {
                "equal_centres": int(equal.sum()), "centres": n_ref,
                "max_abs_diff": float(np.max(np.abs(ours - theirs))),
                "solver_equals_searchlight_api": bool(np.allclose(solver_map[centres], ours,
                                                                  rtol=0, atol=1e-9)),
            }
            for key in ("solver_only", "searchlight_api"):
                row[f"speedup_{key}"] = row[key]["spheres_per_s"] / row["nilearn"]["spheres_per_s"]
            results[name] = row
        if args.permutations:
            print(f"gnb: {args.permutations} permutations ...", flush=True)
            results["gnb_permutations"] = permutation_times(data, spheres, folds,
                                                            args.permutations)
        if args.permutation_run:
            results["gnb_permutation_run"] = permutation_run(data, spheres, folds,
                                                             args.permutation_run, args.workers)
    path = save("searchlight_classifiers", results)
    print(f"\n{results['n_spheres']} spheres ({results['mean_sphere_voxels']:.1f} voxels), "
          f"{results['n_scans']} scans, radius {RADIUS} mm, 12 folds")
    for name in CLASSIFIERS:
        row = results[name]
        for key in ("solver_only", "searchlight_api", "nilearn"):
            print(f"{name} {key:16s} CPU {row[key]['cpu_s']:8.2f} s "
                  f"{row[key]['spheres_per_s']:10.1f} spheres/s")
        agree = row["agreement"]
        print(f"{name}: {row['speedup_solver_only']:.0f}x nilearn (solver), "
              f"{row['speedup_searchlight_api']:.0f}x (SearchLight); maps equal on "
              f"{agree['equal_centres']}/{agree['centres']} centres")
    if args.permutations:
        perm = results["gnb_permutations"]
        print(f"gnb permutations: {perm['cpu_s_per_permutation']:.2f} s each; 1000 on 2 cores "
              f"~{perm['projected_1000_permutations_2_cores_wall_s'] / 60:.1f} min")
    print(f"written {path}")
    return 0


def _permutations_only(data, spheres, folds, args) -> int:
    """Run ``--permutation-run`` alone and add it to the saved results."""
    import json

    from _common import RESULTS

    path = RESULTS / "searchlight_classifiers.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    print(f"gnb: {args.permutation_run} permutations on {args.workers} workers ...", flush=True)
    run = permutation_run(data, spheres, folds, args.permutation_run, args.workers)
    run["machine"] = machine()
    results["gnb_permutation_run"] = run
    save("searchlight_classifiers", results)
    print(f"{run['n_permutations']} permutations, {spheres.shape[0]} spheres, "
          f"{run['workers']} workers: {run['wall_s']:.1f} s wall")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
