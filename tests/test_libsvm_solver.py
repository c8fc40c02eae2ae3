"""``--solver libsvm``: libsvm's SMO in numba against scikit-learn's SVC and nilearn."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.model_selection import LeaveOneGroupOut
from sklearn.svm import SVC

from nidecode.errors import InputError
from nidecode.solvers import libsvm, reference
from nidecode.solvers.libsvm import decision_function_gram, fit_linear_svm_gram
from tests._solver_cases import agreement, synthetic_searchlight, unbalanced_searchlight

# --------------------------------------------------------------------------------------
# single problems against SVC
# --------------------------------------------------------------------------------------


def random_problem(seed: int):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(8, 120))
    d = int(rng.integers(1, 12))
    X = rng.standard_normal((n, d))
    noise = rng.uniform(0.05, 3.0)
    y = (X[:, 0] + noise * rng.standard_normal(n) > 0).astype(int)
    y[:2] = [0, 1]  # both classes present
    return X, y, rng.standard_normal((25, d))


def svc_dual(clf: SVC, n: int) -> np.ndarray:
    full = np.zeros(n)
    full[clf.support_] = clf.dual_coef_[0]
    return full


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("C", [0.01, 1.0, 10.0])
def test_single_fit_matches_svc_linear(seed, C):
    X, y, X_test = random_problem(seed)
    clf = SVC(kernel="linear", C=C).fit(X, y)
    dual, intercept, n_iter = fit_linear_svm_gram(X @ X.T, y, C=C, return_n_iter=True)
    scale = max(1.0, np.abs(clf.dual_coef_).max())
    np.testing.assert_allclose(dual, svc_dual(clf, len(y)), atol=1e-6 * scale)
    np.testing.assert_allclose(intercept, clf.intercept_[0], atol=1e-6 * scale)
    ours = decision_function_gram(X_test @ X.T, dual, intercept)
    ref = clf.decision_function(X_test)
    np.testing.assert_allclose(ours, ref, rtol=1e-3, atol=1e-3)
    # Same path as libsvm: same number of SMO iterations.
    assert n_iter == clf.n_iter_[0]


@pytest.mark.parametrize("seed", range(6))
def test_single_fit_matches_svc_precomputed(seed):
    X, y, X_test = random_problem(100 + seed)
    K = X @ X.T
    clf = SVC(kernel="precomputed", C=0.5).fit(K, y)
    dual, intercept = fit_linear_svm_gram(K, y, C=0.5)
    np.testing.assert_allclose(dual, svc_dual(clf, len(y)), atol=1e-9)
    np.testing.assert_allclose(intercept, clf.intercept_[0], atol=1e-9)
    K_test = X_test @ X.T
    np.testing.assert_allclose(
        decision_function_gram(K_test, dual, intercept), clf.decision_function(K_test), atol=1e-9
    )


def test_label_order_and_sign_convention():
    # Any two labels; positive decision means classes_[1] (the larger label), as SVC.
    X, y, X_test = random_problem(7)
    labels = np.where(y == 1, "b_face", "a_cat")
    clf = SVC(kernel="linear").fit(X, labels)
    dual, intercept = fit_linear_svm_gram(X @ X.T, labels)
    dec = decision_function_gram(X_test @ X.T, dual, intercept)
    pred = np.where(dec > 0, clf.classes_[1], clf.classes_[0])
    np.testing.assert_array_equal(pred, clf.predict(X_test))
    # Training order does not matter for the solution (libsvm groups by class).
    perm = np.random.default_rng(0).permutation(len(y))
    dual_p, intercept_p = fit_linear_svm_gram((X @ X.T)[np.ix_(perm, perm)], labels[perm])
    clf_p = SVC(kernel="linear").fit(X[perm], labels[perm])
    np.testing.assert_allclose(dual_p, svc_dual(clf_p, len(y)), atol=1e-9)
    np.testing.assert_allclose(intercept_p, clf_p.intercept_[0], atol=1e-9)


def test_zero_decision_goes_to_second_class():
    # Symmetric problem: the test point on the boundary has decision exactly 0, which
    # libsvm (and so SVC.predict) assigns to classes_[1].
    X = np.array([[-1.0], [1.0], [-2.0], [2.0]])
    y = np.array([0, 1, 0, 1])
    X_test = np.array([[0.0]])
    clf = SVC(kernel="linear").fit(X, y)
    assert clf.decision_function(X_test)[0] == 0.0
    folds = [(np.arange(4), np.array([4]))]
    Xa = np.vstack([X, X_test])
    ya = np.array([0, 1, 0, 1, clf.predict(X_test)[0]])
    acc = libsvm.searchlight_accuracies(Xa, ya, sp.csr_matrix(np.ones((1, 1))), folds)
    assert clf.predict(X_test)[0] == 1
    assert acc[0, 0] == 1.0
    ya[4] = 0
    assert libsvm.searchlight_accuracies(Xa, ya, sp.csr_matrix(np.ones((1, 1))), folds)[0, 0] == 0.0


# --------------------------------------------------------------------------------------
# searchlight accuracies against the reference path (synthetic, fast)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("C", [0.1, 1.0, 5.0])
def test_searchlight_matches_reference_path(C):
    X, y, spheres, folds = synthetic_searchlight(1)
    ours = libsvm.searchlight_accuracies(X, y, spheres, folds, C=C)
    ref = reference.searchlight_accuracies(X, y, spheres, folds, C=C)
    assert ours.shape == (spheres.shape[0], len(folds))
    np.testing.assert_array_equal(ours, ref)


def test_one_voxel_spheres():
    X, y, _, folds = synthetic_searchlight(2)
    spheres = sp.csr_matrix(np.eye(X.shape[1], dtype=bool)[:8])
    ours = libsvm.searchlight_accuracies(X, y, spheres, folds)
    np.testing.assert_array_equal(ours, reference.searchlight_accuracies(X, y, spheres, folds))


def test_separable_training_folds():
    X, y, spheres, folds = synthetic_searchlight(3, separable=True)
    spheres = sp.csr_matrix(np.eye(X.shape[1], dtype=bool)[:5])  # the informative voxels
    for C in (1.0, 100.0):
        ours = libsvm.searchlight_accuracies(X, y, spheres, folds, C=C)
        np.testing.assert_array_equal(
            ours, reference.searchlight_accuracies(X, y, spheres, folds, C=C)
        )
        assert ours.mean() > 0.95


def test_unused_scans_and_label_values_are_ignored():
    # Scans no fold uses do not change anything; labels may be any two values.
    X, y, spheres, folds = synthetic_searchlight(4)
    extra = np.random.default_rng(0).standard_normal((10, X.shape[1])).astype(np.float32)
    X2 = np.vstack([X, extra])
    y2 = np.concatenate([y, np.zeros(10, dtype=int)])
    labels = np.where(y2 == 1, "face", "cat")
    np.testing.assert_array_equal(
        libsvm.searchlight_accuracies(X2, labels, spheres, folds),
        libsvm.searchlight_accuracies(X, y, spheres, folds),
    )


def test_tol_and_max_iter():
    X, y, spheres, folds = synthetic_searchlight(5)
    tight = libsvm.searchlight_accuracies(X, y, spheres, folds, tol=1e-6)
    np.testing.assert_array_equal(
        tight, reference.searchlight_accuracies(X, y, spheres, folds, tol=1e-6)
    )
    with pytest.warns(UserWarning, match="max_iter"):
        libsvm.searchlight_accuracies(X, y, spheres, folds, max_iter=3)


def test_bad_inputs_raise_input_error():
    X, y, spheres, folds = synthetic_searchlight(6)
    with pytest.raises(InputError, match="single class"):
        one_class = [(np.flatnonzero(y == 0), np.flatnonzero(y == 1))]
        libsvm.searchlight_accuracies(X, y, spheres, one_class)
    with pytest.raises(InputError, match="voxel columns"):
        libsvm.searchlight_accuracies(X[:, :10], y, spheres, folds)
    with pytest.raises(InputError, match="2 classes"):
        libsvm.searchlight_accuracies(X, np.arange(len(y)) % 3, spheres, folds)
    with pytest.raises(InputError, match="empty"):
        libsvm.searchlight_accuracies(X, y, sp.csr_matrix((2, X.shape[1]), dtype=bool), folds)
    with pytest.raises(InputError, match="NaN"):
        X_nan = X.copy()
        X_nan[0, 0] = np.nan
        libsvm.searchlight_accuracies(X_nan, y, spheres, folds)
    with pytest.raises(InputError, match="indices"):
        libsvm.searchlight_accuracies(X, y, spheres, [(np.array([0, 1, 999]), np.array([2]))])
    with pytest.raises(InputError, match="'C' parameter of searchlight_accuracies must be "
                                         "a positive finite"):
        libsvm.searchlight_accuracies(X, y, spheres, folds, C=0.0)


# --------------------------------------------------------------------------------------
# the real Haxby slice: face vs cat, radius 5.6 mm, leave-one-run-out
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def libsvm_real(face_cat):
    d = face_cat
    return libsvm.searchlight_accuracies(d["X"], d["y"], d["spheres"], d["folds"])


def test_real_slice_matches_reference_path(face_cat, libsvm_real):
    d = face_cat
    assert libsvm_real.shape == (530, 12)
    rows = np.arange(0, 530, 5)  # a subset keeps the slow reference path short
    ref = reference.searchlight_accuracies(d["X"], d["y"], d["spheres"][rows], d["folds"])
    equal, mad = agreement(libsvm_real[rows].mean(1), ref.mean(1))
    assert equal >= 0.90
    assert mad <= 0.001
    # In practice the solver follows libsvm's path exactly.
    np.testing.assert_array_equal(libsvm_real[rows], ref)


def test_real_slice_decoding_reference_figures(face_cat):
    # README: all 530 voxels, SVC(kernel="linear"), leave-one-run-out -> mean 0.7407.
    d = face_cat
    whole = sp.csr_matrix(np.ones((1, 530), dtype=bool))
    acc = libsvm.searchlight_accuracies(d["X"], d["y"], whole, d["folds"])[0]
    expected = [0.8889, 0.6111, 0.8333, 0.7778, 0.5556, 1, 0.5556, 0.8333, 0.5556,
                0.6667, 0.6667, 0.9444]  # fmt: skip
    np.testing.assert_allclose(acc, expected, atol=1e-4)
    assert round(acc.mean(), 4) == 0.7407


@pytest.mark.slow
def test_real_slice_matches_nilearn_searchlight(face_cat, libsvm_real):
    from nilearn.decoding import SearchLight

    d = face_cat
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        imgs = d["masker"].inverse_transform(d["X"])
        sl = SearchLight(
            mask_img=d["mask_img"],
            radius=5.6,
            estimator=SVC(kernel="linear"),
            cv=LeaveOneGroupOut(),
            n_jobs=1,
        ).fit(imgs, d["y"], groups=d["runs"])
    equal, mad = agreement(libsvm_real.mean(1), sl.masked_scores_)
    assert equal >= 0.90
    assert mad <= 0.001
    full = reference.searchlight_accuracies(d["X"], d["y"], d["spheres"], d["folds"])
    equal, mad = agreement(libsvm_real.mean(1), full.mean(1))
    assert equal >= 0.90
    assert mad <= 0.001


# --------------------------------------------------------------------------------------
# balanced class weights: libsvm's per-class C
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("C", [0.1, 1.0, 5.0])
def test_balanced_class_weights_equal_svc_bit_for_bit(C):
    X, y, spheres, folds = unbalanced_searchlight(11)
    ours, decisions = libsvm.searchlight_accuracies(X, y, spheres, folds, C=C,
                                                    class_weight="balanced",
                                                    return_decisions=True)
    ref, ref_decisions = reference.searchlight_accuracies(X, y, spheres, folds, C=C,
                                                          class_weight="balanced",
                                                          return_decisions=True)
    np.testing.assert_array_equal(ours, ref)
    np.testing.assert_array_equal(decisions, ref_decisions)
    # The weights matter here: the unweighted SVM's decisions differ.
    unweighted = libsvm.searchlight_accuracies(X, y, spheres, folds, C=C,
                                               return_decisions=True)[1]
    assert not np.allclose(unweighted, decisions, equal_nan=True)
