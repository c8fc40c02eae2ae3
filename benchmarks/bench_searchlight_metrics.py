"""What the searchlight's extra metrics cost: accuracy alone against balanced
accuracy and ROC AUC (issue #15), with the default ``batched`` solver.

Real Haxby slice, face vs cat, radius 5.6 mm, leave one run out, one core, in
this process (solver and metrics: the part of a searchlight task that the
metrics change; reading and writing are the same for every choice). Three
contenders in the same run, best CPU time of the repeats:

* ``accuracy``: the solver as ``--scoring accuracy`` calls it;
* ``+ balanced_accuracy``: decisions returned, metrics from them
  (:func:`nidecode.stats.sphere_fold_metrics`), no extra refits;
* ``+ roc_auc``: also the folds whose test decisions nearly tie in rank are
  refitted on libsvm's path (the default ``rank_margin``, a fraction of the
  two decisions' sensitivities, as ``--scoring roc_auc`` runs it), so the AUC
  is SVC's on >= 98 % of spheres;
* ``+ roc_auc, rank_margin=3e-4``: fewer refits, for comparison;
* ``+ roc_auc, rank_margin=0``: no rank refits, the AUC of the exact optimum's
  decisions (their order may differ from SVC's, which stops at ``tol=1e-3``).

For each ROC AUC contender, the spheres whose AUC (mean over folds) equals the
AUC of ``SVC(kernel="linear")``'s decisions fitted fold by fold (scikit-learn's
``roc_auc_score``), and the largest difference.

Run: ``python benchmarks/bench_searchlight_metrics.py [--repeats 5]``.
"""

from __future__ import annotations

import os

# One core for everyone: set before numpy / BLAS are imported.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402

import numpy as np  # noqa: E402
from bench_searchlight_solver import load  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from sklearn.svm import SVC  # noqa: E402

from nidecode.datasets import load_haxby_slice  # noqa: E402
from nidecode.solvers.batched import searchlight_accuracies  # noqa: E402
from nidecode.stats import sphere_fold_metrics  # noqa: E402

from _common import best_times, machine, save  # noqa: E402

RADIUS = 5.6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    X, y, _, spheres, folds, _, _, _ = load(load_haxby_slice(), RADIUS)
    y01 = (y == np.unique(y)[1]).astype(int)
    tests = [test for _, test in folds]

    def scored(metrics, **rank_margin):
        def run():
            accuracy, decisions = searchlight_accuracies(X, y, spheres, folds,
                                                         return_decisions=True, **rank_margin)
            return accuracy, sphere_fold_metrics(decisions, y01, tests, metrics)
        return run

    every = ("accuracy", "balanced_accuracy", "roc_auc")
    contenders = {
        "accuracy": lambda: searchlight_accuracies(X, y, spheres, folds),
        "+ balanced_accuracy": scored(("accuracy", "balanced_accuracy"), rank_margin=0.0),
        "+ roc_auc": scored(every),
        "+ roc_auc, rank_margin=3e-4": scored(every, rank_margin=3e-4),
        "+ roc_auc, rank_margin=0": scored(every, rank_margin=0.0),
    }
    contenders["accuracy"]()  # compile or load numba's cache
    scored(("accuracy",))()
    cpu = {name: best_times(run, args.repeats)[1] for name, run in contenders.items()}
    n_spheres = spheres.shape[0]
    svc_auc = _svc_auc(X, y01, spheres, folds)
    agreement = {}
    for name, run in contenders.items():
        if "roc_auc" in name:
            difference = np.abs(run()[1]["roc_auc"].mean(axis=1) - svc_auc)
            agreement[name] = {"spheres_equal": int((difference < 1e-12).sum()),
                               "max_abs_difference": float(difference.max())}
    figures = {
        "what": "batched solver + metrics on the real slice, face vs cat, r = 5.6 mm, "
                "leave one run out, one core, best CPU time",
        "n_spheres": n_spheres, "repeats": args.repeats,
        "cpu_s": cpu,
        "spheres_per_s": {name: n_spheres / seconds for name, seconds in cpu.items()},
        "extra_cost": {name: seconds / cpu["accuracy"] - 1 for name, seconds in cpu.items()},
        "auc_against_svc": agreement,
        "machine": machine(),
    }
    path = save("searchlight_metrics", figures)
    for name, seconds in cpu.items():
        print(f"{name:28s} {seconds:7.3f} s  {n_spheres / seconds:8.1f} spheres/s  "
              f"{figures['extra_cost'][name]:+.0%}")
    for name, figures_of in agreement.items():
        print(f"{name:28s} AUC equal to SVC's on {figures_of['spheres_equal']}/{n_spheres} "
              f"spheres, largest difference {figures_of['max_abs_difference']:.4f}")
    print(f"written {path}")


def _svc_auc(X, y01, spheres, folds) -> np.ndarray:
    """Each sphere's mean over folds of ``roc_auc_score`` of ``SVC(kernel="linear")``'s
    test decisions: the reference of the AUC maps."""
    spheres = spheres.tocsr()
    auc = np.empty((spheres.shape[0], len(folds)))
    for q in range(spheres.shape[0]):
        Xs = X[:, spheres.indices[spheres.indptr[q]:spheres.indptr[q + 1]]]
        for f, (train, test) in enumerate(folds):
            svc = SVC(kernel="linear").fit(Xs[train], y01[train])
            auc[q, f] = roc_auc_score(y01[test], svc.decision_function(Xs[test]))
    return auc.mean(axis=1)


if __name__ == "__main__":
    main()
