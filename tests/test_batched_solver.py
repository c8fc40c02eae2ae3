"""``--solver batched``: exact folds from the all-scans solution, libsvm at near ties."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.svm import SVC

from nidecode.solvers import batched, libsvm, reference
from tests._solver_cases import agreement, synthetic_searchlight, unbalanced_searchlight


def test_real_slice_agrees_with_libsvm_and_finishes_exactly(face_cat):
    d = face_cat
    ours, info = batched.searchlight_accuracies(d["X"], d["y"], d["spheres"], d["folds"],
                                                return_info=True)
    on_path = libsvm.searchlight_accuracies(d["X"], d["y"], d["spheres"], d["folds"])
    equal, mad = agreement(ours.mean(1), on_path.mean(1))
    # 98.9 % and 0.00005 here; the issue asks for 0.90 and 0.001.
    assert equal >= 0.97 and mad <= 1e-4
    assert info["failed"] == 0 and info["exact"] + info["near_tie"] == 530 * 12
    assert 0 < info["near_tie"] < 0.1 * 530 * 12 and 1 <= info["mean_steps"] < 60


def test_without_refits_the_predictions_are_the_exact_optimum(face_cat):
    d = face_cat
    rows = d["spheres"][np.arange(0, 530, 53)]
    np.testing.assert_array_equal(
        batched.searchlight_accuracies(d["X"], d["y"], rows, d["folds"], tie_margin=0.0),
        _exact_reference(d["X"], d["y"], rows, d["folds"]))


@pytest.mark.parametrize("C", [0.1, 1.0, 5.0])
def test_synthetic_spheres_and_folds_of_any_kind(C):
    # GroupKFold folds, spheres of 1 to 15 voxels, several C.
    X, y, spheres, folds = synthetic_searchlight(1)
    ours, info = batched.searchlight_accuracies(X, y, spheres, folds, C=C, return_info=True)
    ref = reference.searchlight_accuracies(X, y, spheres, folds, C=C)
    equal, mad = agreement(ours.mean(1), ref.mean(1))
    assert equal >= 0.95 and mad <= 0.001 and info["failed"] == 0


def test_a_large_baseline_changes_neither_accuracies_nor_decisions():
    # Raw BOLD sits on a baseline of ~1000: the optimal weights and decisions do not
    # depend on it (the intercept absorbs it), and the solver centres each voxel, so
    # neither do its results (without centring, 11 of these 150 folds differed and
    # decisions moved by ~4 at 1e3).
    X, y, spheres, folds = synthetic_searchlight(1)
    X = X.astype(np.float64)
    runs = [batched.searchlight_accuracies(X + baseline, y, spheres, folds, tie_margin=0.0,
                                           rank_margin=0.0, return_decisions=True)
            for baseline in (0.0, 1e3, 1e5)]
    for accuracy, decisions in runs[1:]:
        np.testing.assert_array_equal(accuracy, runs[0][0])
        np.testing.assert_allclose(decisions, runs[0][1], rtol=0, atol=1e-9)


def _exact_reference(X, y, spheres, folds, C=1.0, class_weight=None):
    """SVC at tol=1e-10: the exact optimum, far below any decision value here."""
    return np.array([[np.mean(SVC(kernel="linear", C=C, tol=1e-10, class_weight=class_weight)
                              .fit(X[:, cols][train], y[train])
                              .predict(X[:, cols][test]) == y[test])
                      for train, test in folds]
                     for cols in (np.sort(spheres[row].indices)
                                  for row in range(spheres.shape[0]))])


def test_one_voxel_separable_and_overlapping_folds_reach_the_exact_optimum():
    # One voxel, separable or pure noise: degenerate problems where libsvm's
    # tol=1e-3 answer can sit visibly off the optimum.
    X, y, _, folds = synthetic_searchlight(3, separable=True)
    one_voxel = sp.csr_matrix(np.eye(X.shape[1], dtype=bool)[:8])
    for C in (1.0, 100.0):
        np.testing.assert_array_equal(
            batched.searchlight_accuracies(X, y, one_voxel, folds, C=C, tie_margin=0.0),
            _exact_reference(X, y, one_voxel, folds, C))
    # Folds whose test sets overlap and leave scans out: each training set is
    # still solved from the all-scans fit.
    train, test = folds[0]
    odd = [(train[np.arange(len(train)) % 3 != 0], test),
           (np.concatenate([train[::3], test[:3]]), test[3:])]
    np.testing.assert_array_equal(
        batched.searchlight_accuracies(X, y, one_voxel, odd, tie_margin=0.0),
        _exact_reference(X, y, one_voxel, odd))


def test_rank_deficient_spheres_fall_back_and_agree():
    # Repeated voxels and duplicated scans: the margin set cannot reach d + 1
    # affinely independent scans, and ties between scans are exact. Every fold
    # is solved exactly or refitted on libsvm's path; none is lost.
    X, y, spheres, folds = synthetic_searchlight(4)
    X = np.hstack([X, X[:, :6], 2 * X[:, :6]])  # voxels 40..51 repeat 0..5
    X[1::12] = X[::12]  # scan pairs with the same data, opposite labels
    n = X.shape[1]
    rows = [np.r_[k, 40 + k, 46 + k] for k in range(6)] + [np.arange(6), np.arange(40, n)]
    dense = np.zeros((len(rows), n), dtype=bool)
    for row, cols in enumerate(rows):
        dense[row, cols] = True
    ours, info = batched.searchlight_accuracies(X, y, sp.csr_matrix(dense), folds,
                                                return_info=True)
    on_path = libsvm.searchlight_accuracies(X, y, sp.csr_matrix(dense), folds)
    assert info["exact"] + info["near_tie"] + info["failed"] == len(rows) * len(folds)
    equal, mad = agreement(ours.mean(1), on_path.mean(1))
    assert equal >= 0.85 and mad <= 0.01


# --------------------------------------------------------------------------------------
# balanced class weights: per-class bounds in the dual, per-scan penalties in the primal
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("C", [0.1, 1.0, 5.0])
def test_balanced_class_weights_agree_with_svc_on_unbalanced_folds(C):
    X, y, spheres, folds = unbalanced_searchlight(11)
    ours, info = batched.searchlight_accuracies(X, y, spheres, folds, C=C,
                                                class_weight="balanced", return_info=True)
    ref = reference.searchlight_accuracies(X, y, spheres, folds, C=C, class_weight="balanced")
    equal, mad = agreement(ours.mean(1), ref.mean(1))
    assert equal >= 0.95 and mad <= 0.001 and info["failed"] == 0
    # Without refits: the exact optimum of the weighted problem.
    np.testing.assert_array_equal(
        batched.searchlight_accuracies(X, y, spheres, folds, C=C, class_weight="balanced",
                                       tie_margin=0.0),
        _exact_reference(X, y, spheres, folds, C, class_weight="balanced"))


def test_balanced_class_weights_on_the_rare_cat_slice(face_cat):
    # 3 of every 9 cat scans kept: 36 cat against 108 face scans.
    d = face_cat
    cat = np.flatnonzero(d["y"] == "cat")
    keep = np.setdiff1d(np.arange(len(d["y"])), cat[np.arange(len(cat)) % 9 >= 3])
    X, y, runs = d["X"][keep], d["y"][keep], d["runs"][keep]
    folds = [(np.flatnonzero(runs != run), np.flatnonzero(runs == run))
             for run in np.unique(runs)]
    ours, info = batched.searchlight_accuracies(X, y, d["spheres"], folds,
                                                class_weight="balanced", return_info=True)
    on_path = libsvm.searchlight_accuracies(X, y, d["spheres"], folds, class_weight="balanced")
    equal, mad = agreement(ours.mean(1), on_path.mean(1))
    # 522 of 530 spheres (98.5 %) here, as without weights on the balanced pair.
    assert equal >= 0.98 and mad <= 1e-3
    assert info["failed"] == 0 and info["exact"] + info["near_tie"] == 530 * 12
    unweighted = libsvm.searchlight_accuracies(X, y, d["spheres"], folds)
    assert np.mean(unweighted.mean(1) != on_path.mean(1)) > 0.5  # the weights matter


# --------------------------------------------------------------------------------------
# libsvm's SMO outside the kernel: the refits after it, the first sphere's start
# --------------------------------------------------------------------------------------


def _refit_every_fold_with_sklearn(X, y, spheres, folds, class_weight=None):
    """Every fold of every sphere through the refit pass that runs while libsvm's
    replica is not compiled (scikit-learn's libsvm): accuracies and decisions."""
    X, y, spheres, folds = batched._prepare(X, y, spheres, folds)
    arrays = batched._kernel_arrays(X, y, spheres, folds)
    shape = (spheres.shape[0], len(folds))
    accuracy, outcome = np.empty(shape), np.full(shape, batched._NEAR_TIE)
    decisions = np.full((shape[0], arrays[0].shape[1]), np.nan)
    batched._refit_with_sklearn(arrays, np.arange(outcome.size), outcome, accuracy, decisions,
                                1.0, 1e-3, class_weight == "balanced")
    return accuracy, batched._scatter_decisions(decisions, folds, len(y))


@pytest.mark.parametrize("case", ["slice", "balanced"])
def test_refits_on_scikit_learns_libsvm_are_libsvm_paths_bit_for_bit(face_cat, case):
    # A fresh install refits near ties with scikit-learn's libsvm (nothing to compile),
    # later ones with the compiled replica: the same accuracies and decisions.
    if case == "slice":
        d = face_cat
        X, y, spheres, folds, weights = (d["X"], d["y"], d["spheres"][np.arange(0, 530, 53)],
                                         d["folds"], None)
    else:
        X, y, spheres, folds = unbalanced_searchlight(11)
        weights = "balanced"
    accuracy, decisions = _refit_every_fold_with_sklearn(X, y, spheres, folds, weights)
    on_path, path_decisions = libsvm.searchlight_accuracies(X, y, spheres, folds,
                                                            return_decisions=True,
                                                            class_weight=weights)
    np.testing.assert_array_equal(accuracy, on_path)
    np.testing.assert_array_equal(decisions, path_decisions)


@pytest.mark.parametrize("counts", [(5, 5), (3, 8), (8, 3), (1, 6)])
@pytest.mark.parametrize("balanced", [False, True])
def test_the_first_spheres_start_is_a_feasible_vertex(counts, balanced):
    y01 = np.random.default_rng(sum(counts)).permutation(np.repeat([0, 1], counts))
    bounds = np.array(batched._class_bounds(2.0, y01, balanced))
    alpha = batched._balanced_start(y01, bounds)
    assert (alpha >= 0).all() and (alpha <= bounds[y01]).all()
    assert alpha[y01 == 0].sum() == pytest.approx(alpha[y01 == 1].sum(), rel=1e-12)
    assert ((alpha > 0) & (alpha < bounds[y01])).sum() <= 1  # at most one free coefficient


def test_separable_spheres_all_scans_fits_need_no_libsvm_start():
    # Separable spheres at C=5: the dual active set from the previous sphere's
    # coefficients ran out of steps on two of them; the primal method reaches
    # every all-scans optimum, and every fold is exact.
    X, y, spheres, folds = synthetic_searchlight(3, separable=True)
    ours, info = batched.searchlight_accuracies(X, y, spheres, folds, C=5.0, tie_margin=0.0,
                                                return_info=True)
    assert info["libsvm_seeds"] == 0 and info["failed"] == 0
    np.testing.assert_array_equal(ours, _exact_reference(X, y, spheres, folds, 5.0))


def test_a_sphere_whose_all_scans_fit_fails_starts_from_libsvm_and_stays_exact(monkeypatch):
    # The kernel stops at the sphere whose all-scans fit failed (here: it is handed
    # the first two spheres only, as if the third failed); the caller starts it
    # again there from scikit-learn's libsvm fit, and every fold is still exact.
    X, y, spheres, folds = synthetic_searchlight(3, separable=True)
    kernel, calls = batched._searchlight_kernel, []

    def stop_at_the_third_sphere(Xt, y01, sph_ptr, *args):
        calls.append(args[9])  # q_start
        return kernel(Xt, y01, sph_ptr[:3] if len(calls) == 1 else sph_ptr, *args)

    monkeypatch.setattr(batched, "_searchlight_kernel", stop_at_the_third_sphere)
    ours, info = batched.searchlight_accuracies(X, y, spheres, folds, C=5.0, tie_margin=0.0,
                                                return_info=True)
    assert calls == [0, 2] and info["libsvm_seeds"] == 1 and info["failed"] == 0
    np.testing.assert_array_equal(ours, _exact_reference(X, y, spheres, folds, 5.0))


def test_scikit_learns_refits_pay_toward_compiling_the_replica(tmp_path):
    # Their seconds add up across runs in numba's cache directory; at the replica's
    # compile time it compiles (ski rental).
    assert batched._rent_paid(tmp_path / "cache") == 0.0
    batched._pay_rent(3.0, tmp_path / "cache")
    batched._pay_rent(batched._REPLICA_COMPILE_S - 2.5, tmp_path / "cache")
    assert batched._rent_paid(tmp_path / "cache") == batched._REPLICA_COMPILE_S + 0.5
    assert batched._replica_ready(tmp_path / "cache")
