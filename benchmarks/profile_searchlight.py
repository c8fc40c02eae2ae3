"""Where a searchlight's time goes per sphere: all-scans solve, folds, refits, reading, writing.

Two cases, one process, one thread, numba warm (compiled before timing):

* ``slice``: the real Haxby slice (face vs cat, 12 runs), its ~530 spheres
  of about 9 voxels at r = 5.6 mm;
* ``wholebrain``: the synthetic 40 x 64 x 64 subject of
  ``bench_searchlight_wholebrain.py`` (face vs house, 1452 scans), a block of
  ``--spheres`` consecutive centres from the middle of the mask (about 19
  voxels each).

The batched solver is timed as a task runs it, then with parts switched off
(the differences are the parts): ``tie_margin=0`` (no near-tie refits on
libsvm's path), one fold instead of all (cost = all-scans solve + one fold),
``return_decisions`` (the ROC AUC's rank refits). The near-tie refits run on
the compiled replica of libsvm's SMO (as on an install that has compiled it)
and again on scikit-learn's libsvm (as before the replica is compiled, see
docs/performance.md). Reading is the store read
of the sphere block's voxels, writing one map through ``to_nifti`` and
``nib.save``. Best of ``--repeats``. Figures in
``benchmarks/results/profile_searchlight.json``; read in docs/performance.md. Run::

    python benchmarks/profile_searchlight.py [--spheres 3000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from sklearn.model_selection import LeaveOneGroupOut

from nidecode import store
from nidecode.datasets import load_haxby_slice
from nidecode.ingest import ingest
from nidecode.results import to_nifti
from nidecode.solvers import batched
from nidecode.solvers.batched import searchlight_accuracies
from nidecode.spheres import sphere_neighbourhoods
from nidecode.synth import make_subject, write_subject

from _common import machine, save

RADIUS = 5.6


def best(function, repeats: int) -> tuple[float, object]:
    """Best wall seconds of ``repeats`` calls, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return min(times), result


def case(store_path: Path, pair: list[str], centres: slice | None, repeats: int) -> dict:
    """The per-sphere breakdown of one subject x pair's spheres (``centres``: all if None)."""
    subject = store.list_subjects(store_path)[0]
    design = store.read_design(store_path, subject)
    mask, affine = store.read_geometry(store_path, subject)
    _, spheres = sphere_neighbourhoods(mask, affine, RADIUS)
    spheres = spheres.tocsr()
    if centres is not None:
        spheres = spheres[centres]
    voxels = np.unique(spheres.indices)
    read_s, X = best(lambda: store.read_timeseries(store_path, subject, voxels), repeats)
    keep = np.isin(design.labels, pair)
    X, y, runs = X[keep], design.labels[keep], design.runs[keep]
    block = spheres[:, voxels]  # the task's re-indexed spheres
    folds = list(LeaveOneGroupOut().split(X, y, runs))
    # numba's compiled code, the refits' replica included, not timed
    searchlight_accuracies(X, y, block[:2], folds[:2], return_decisions=True, rank_margin=np.inf)

    def run(use_folds=folds, **options):
        return best(lambda: searchlight_accuracies(X, y, block, use_folds, return_info=True,
                                                   **options), repeats)

    full_s, (accuracy, info) = run()
    no_tie_s, _ = run(tie_margin=0.0)
    one_fold_s, _ = run(folds[:1], tie_margin=0.0)
    auc_s, _ = run(return_decisions=True)
    sklearn_s = np.nan  # code that refits only on its replica (PYTHONPATH: an older commit)
    replica_ready = getattr(batched, "_replica_ready", None)
    if replica_ready is not None:
        batched._replica_ready = lambda: False  # as before the replica is compiled
        try:
            sklearn_s, _ = run()
        finally:
            batched._replica_ready = replica_ready
    n_spheres, n_folds = block.shape[0], len(folds)
    per_fold = (no_tie_s - one_fold_s) / (n_folds - 1)
    values = np.zeros(int(mask.sum()))
    with tempfile.TemporaryDirectory() as directory:
        write_s, _ = best(lambda: nib.save(to_nifti(values, mask, affine),
                                           Path(directory) / "map.nii.gz"), repeats)
    us = 1e6 / n_spheres
    return {
        "spheres": n_spheres, "mean_voxels": float(np.diff(block.indptr).mean()),
        "scans": int(len(y)), "folds": n_folds,
        "folds_refitted_near_tie": info["near_tie"] + info["non_unique"] + info["failed"],
        "folds_total": n_spheres * n_folds, "mean_active_set_steps": info["mean_steps"],
        "seconds": {"full": full_s, "no_near_tie_refits": no_tie_s, "one_fold": one_fold_s,
                    "with_decisions": auc_s, "full_sklearn_refits": sklearn_s,
                    "read_block": read_s, "write_one_map": write_s},
        "us_per_sphere": {
            "total_accuracy": full_s * us,
            "all_scans_solve": (one_fold_s - per_fold) * us,
            "folds_exact": per_fold * n_folds * us,
            "near_tie_refits": (full_s - no_tie_s) * us,
            "near_tie_refits_on_sklearn": (sklearn_s - no_tie_s) * us,
            "rank_refits_for_auc": (auc_s - full_s) * us,
            "read": read_s * us,
            "write_one_map_over_all_mask_spheres": write_s * 1e6 / int(mask.sum()),
        },
        "mean_accuracy": float(accuracy.mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spheres", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--name", default="profile_searchlight", help="results file name")
    args = parser.parse_args()
    figures = {"what": __doc__.split("\n\n")[0], "radius_mm": RADIUS}
    with tempfile.TemporaryDirectory(prefix="nidecode-profile-") as directory:
        work = Path(directory)
        ingest([load_haxby_slice()], work / "slice.zarr", "mask")
        figures["slice"] = case(work / "slice.zarr", ["face", "cat"], None, args.repeats)
        subject = write_subject(make_subject(seed=3, shape=(40, 64, 64)), work / "sub-01")
        ingest([subject], work / "brain.zarr", "mask")
        n_mask = int(store.read_geometry(work / "brain.zarr", "sub-01")[0].sum())
        middle = n_mask // 2 - args.spheres // 2
        figures["wholebrain"] = case(work / "brain.zarr", ["face", "house"],
                                     slice(middle, middle + args.spheres), args.repeats)
    figures["machine"] = machine()
    figures["code"] = batched.__file__
    path = save(args.name, figures)
    for name in ("slice", "wholebrain"):
        parts = figures[name]["us_per_sphere"]
        print(name, {key: round(value, 1) for key, value in parts.items()})
    print(f"written {path}")


if __name__ == "__main__":
    main()
