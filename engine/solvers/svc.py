"""The ROI decode's fits: ``SVC(kernel="linear")`` through scikit-learn's libsvm, per fold.

The linear kernel between the scans is computed once (per subject, by the
caller, or per call) with the very dot product libsvm's linear kernel calls
(scipy's BLAS ``ddot``, as scikit-learn hands it to libsvm), and every fold
is fitted by libsvm on its block of that kernel (``kernel="precomputed"``)
with the arguments ``SVC.fit`` passes. libsvm then sees the same kernel
values as ``SVC(kernel="linear")`` computes for itself, so the dual
coefficients, supports, intercepts, coefficients, decision values and
predictions are bit-identical to ``SVC``'s (tested on every pair and fold of
the real slice and on generated problems). The fits skip the estimator's
input validation and every fold's dot products.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import llvmlite.binding as llvm
import numpy as np
from numba import njit, types
from numba.extending import get_cython_function_address
from sklearn.svm import _libsvm
from sklearn.utils.class_weight import compute_class_weight

from nidecode.cv import Fold

# SVC's defaults, as SVC.fit hands them to libsvm (gamma, degree and coef0
# are unused by the linear kernel; the seed only drives probability estimates).
_LIBSVM_PARAMETERS = dict(svm_type=0, kernel="linear", degree=3, gamma=0.0, coef0=0.0,
                          cache_size=200)
_FIT_PARAMETERS = dict(tol=1e-3, shrinking=1, probability=0, max_iter=-1, nu=0.5,
                       epsilon=0.0, random_seed=0, sample_weight=np.empty(0))
_PRECOMPUTED_PARAMETERS = {**_LIBSVM_PARAMETERS, "kernel": "precomputed"}
_NO_CLASS_WEIGHTS = np.ones(2)
#: Above this many samples no kernel matrix is made (4096: 128 MiB): libsvm then
#: computes the dot products itself, keeping at most its 200 MB cache of them.
MAX_KERNEL_SAMPLES = 4096
_libsvm.set_verbosity_wrap(0)  # a process-wide switch, set by SVC.fit otherwise


@dataclass(frozen=True)
class FoldScores:
    """Per-fold results of one cross-validated linear SVM."""

    accuracy: np.ndarray  # (n_folds,)
    coef: np.ndarray  # (n_folds, n_features); positive favours the second class
    intercept: np.ndarray  # (n_folds,)
    decision: list[np.ndarray]  # per fold, decision values of the ``extra`` samples
    predicted: list[np.ndarray]  # per fold, predicted codes (0, 1) of the test samples
    test_decision: list[np.ndarray]  # per fold, SVC.decision_function of the test samples


def cross_validate_svc(X: np.ndarray, y: np.ndarray, folds: Sequence[Fold],
                       C: float = 1.0,
                       extra: Sequence[np.ndarray] | None = None,
                       class_weight: str | None = None,
                       kernel: np.ndarray | None = None) -> FoldScores:
    """Fit ``SVC(kernel="linear", C=C)`` on each training fold, score the test fold.

    The accuracies equal ``cross_val_score(SVC(kernel="linear", C=C,
    class_weight=class_weight), X, y, cv=folds)`` exactly: same solver, same
    kernel values, same splits, same class weights.

    Parameters
    ----------
    X : numpy.ndarray, shape (n_samples, n_features)
    y : numpy.ndarray, shape (n_samples,)
        Two classes; the second in sorted order is the positive one.
    folds : sequence of Fold
    C : float
        Penalty parameter.
    extra : sequence of numpy.ndarray, optional
        Per fold, more samples (rows of features) to take decision values
        of, e.g. the held-out run's scans of other categories (one-vs-one
        multiclass votes).
    class_weight : {None, "balanced"}
        ``"balanced"``: each class's penalty scaled by ``n_samples / (2 *
        n_class_samples)`` of the training fold, as ``SVC`` computes it.
    kernel : numpy.ndarray, shape (n_samples, n_samples), optional
        ``linear_kernel(X)``, when the caller has it (e.g. a block of a
        subject's kernel); computed here otherwise, up to
        :data:`MAX_KERNEL_SAMPLES` samples (beyond, libsvm computes its
        dot products itself; the results are the same).

    Returns
    -------
    FoldScores
    """
    classes, codes = np.unique(y, return_inverse=True)
    if len(classes) != 2:
        raise ValueError(f"two classes are needed, got {list(classes)}")
    X = np.ascontiguousarray(X, dtype=np.float64)  # SVC.fit's conversion
    if kernel is None and len(X) <= MAX_KERNEL_SAMPLES:
        kernel = linear_kernel(X)
    codes = codes.astype(np.float64)
    accuracy = np.empty(len(folds))
    coef = np.empty((len(folds), X.shape[1]))
    intercept = np.empty(len(folds))
    decision, predictions, test_decisions = [], [], []
    fit, data = (_fold_on_data, X) if kernel is None else (_fold_on_kernel, kernel)
    for index, fold in enumerate(folds):
        train, test = fold.train, fold.test
        dual_coef, support, intercept[index], test_decision = fit(data, train, test,
                                                                  codes[train], C, class_weight)
        # libsvm votes classes[0] for a value of its own > 0, i.e. SVC predicts
        # classes[1] for a decision >= 0.
        predicted = (test_decision >= 0).astype(np.float64)
        test_decisions.append(test_decision)
        predictions.append(predicted)
        accuracy[index] = np.mean(predicted == codes[test])
        # SVC.coef_: the dual coefficients times the support vectors (np.dot).
        coef[index] = (dual_coef[np.newaxis] @ X[train[support]])[0]
        if extra is not None:
            # The linear decision function from coef_ and intercept_.
            decision.append(extra[index] @ coef[index] + intercept[index])
    return FoldScores(accuracy, coef, intercept, decision, predictions, test_decisions)


def _fold_on_kernel(K: np.ndarray, train: np.ndarray, test: np.ndarray, codes: np.ndarray,
                    C: float, class_weight: str | None):
    """A fold's fit on its block of the kernel, and its test decisions."""
    rows = K.take(train, axis=1)  # take: half the time of K[np.ix_(...)]
    dual_coef, support, intercept = _fit_kernel(rows.take(train, axis=0), codes, C,
                                                class_weight)
    return (dual_coef, support, intercept,
            svc_kernel_decisions(rows.take(test, axis=0), dual_coef, support, intercept))


def _fold_on_data(X: np.ndarray, train: np.ndarray, test: np.ndarray, codes: np.ndarray,
                  C: float, class_weight: str | None):
    """A fold's fit with libsvm's linear kernel (its dot products on demand, in its
    cache): for more samples than a kernel matrix should hold."""
    (support, vectors, n_support, dual_coef, libsvm_intercept, prob_a, prob_b, _,
     _) = _libsvm.fit(X[train], codes, C=C, class_weight=_class_weights(class_weight, codes),
                      **_LIBSVM_PARAMETERS, **_FIT_PARAMETERS)
    model = (support, vectors, n_support, dual_coef, libsvm_intercept, prob_a, prob_b)
    # SVC.decision_function: libsvm's values, sign flipped for two classes.
    decisions = -_libsvm.decision_function(np.ascontiguousarray(X[test]), *model,
                                           **_LIBSVM_PARAMETERS).ravel()
    return -dual_coef[0], support.astype(np.intp), float(-libsvm_intercept[0]), decisions


# libsvm's linear kernel is Kernel::dot, i.e. ``blas_functions->dot``: scipy's
# cython_blas ddot as scikit-learn's _cython_blas passes it. The same function
# is called here (its address registered under a symbol name, so that numba
# can cache the compiled loop), which makes the kernel values libsvm's own.
llvm.add_symbol("nidecode_scipy_ddot",
                get_cython_function_address("scipy.linalg.cython_blas", "ddot"))
_ddot = types.ExternalFunction("nidecode_scipy_ddot", types.float64(
    types.voidptr, types.voidptr, types.voidptr, types.voidptr, types.voidptr))


@njit(cache=True)
def _ddot_kernel(X, groups, needed, K):
    """K[i, j] = ddot(X[i], X[j]) where needed[groups[i], groups[j]] (X C-contiguous float64)."""
    n = X.shape[0]
    size = np.array([X.shape[1]], dtype=np.int32)  # ddot takes its ints by pointer
    step = np.ones(1, dtype=np.int32)
    for i in range(n):
        for j in range(i + 1):
            if needed[groups[i], groups[j]]:
                # ddot(x, y) == ddot(y, x): the same products summed in the same order.
                value = _ddot(size.ctypes.data, X[i].ctypes.data, step.ctypes.data,
                              X[j].ctypes.data, step.ctypes.data)
                K[i, j] = value
                K[j, i] = value


def linear_kernel(X: np.ndarray, groups: np.ndarray | None = None,
                  needed: np.ndarray | None = None) -> np.ndarray:
    """The linear kernel ``X @ X.T`` with the dot products libsvm computes.

    Every entry is the value ``SVC(kernel="linear")`` computes between the two
    rows (the same BLAS ``ddot`` on the same float64 values), so libsvm fitted
    on blocks of it (:func:`fit_svc_kernel`) follows ``SVC``'s path bit for
    bit. ``X @ X.T`` itself sums in another order (last bits differ).

    Parameters
    ----------
    X : numpy.ndarray, shape (n_samples, n_features)
        Converted to float64 as ``SVC.fit`` converts it.
    groups : numpy.ndarray of int, shape (n_samples,), optional
        A group code per row (e.g. its category), to compute only some blocks.
    needed : numpy.ndarray of bool, shape (n_groups, n_groups), optional
        Symmetric: the blocks of groups to compute; the others are NaN.
        Default: all.

    Returns
    -------
    numpy.ndarray, shape (n_samples, n_samples)
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    if groups is None:
        groups, needed = np.zeros(len(X), np.intp), np.ones((1, 1), bool)
    K = np.full((len(X), len(X)), np.nan)
    if X.shape[1] == 0:  # no ddot of length 0; libsvm's dot is 0 there
        K[np.asarray(needed)[np.ix_(groups, groups)]] = 0.0
        return K
    _ddot_kernel(X, np.asarray(groups, dtype=np.intp), np.asarray(needed, dtype=np.bool_), K)
    return K


def fit_svc_kernel(K: np.ndarray, codes: np.ndarray, C: float = 1.0,
                   class_weight: str | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """Fit ``SVC(kernel="precomputed", C=C)`` on a kernel matrix, as ``SVC.fit`` calls libsvm.

    With ``K = linear_kernel(X)`` (or a block of it) this is
    ``SVC(kernel="linear", C=C).fit(X, codes)`` bit for bit.

    Parameters
    ----------
    K : numpy.ndarray, shape (n_samples, n_samples)
        Kernel between the training samples (converted to float64).
    codes : numpy.ndarray, shape (n_samples,)
        Classes coded 0 and 1 (both present); 1 is the positive class.
    C : float
        Penalty parameter.
    class_weight : {None, "balanced"}
        As ``SVC``'s, computed on ``codes``.

    Returns
    -------
    dual_coef : numpy.ndarray, shape (n_support,)
        ``SVC.dual_coef_[0]``: the signed dual coefficients of the support samples
        (``coef_ = dual_coef @ X[support]`` for the linear kernel).
    support : numpy.ndarray of int, shape (n_support,)
        ``SVC.support_``: indices of the support samples.
    intercept : float
        ``SVC.intercept_[0]``.
    """
    codes = np.asarray(codes, dtype=np.float64)
    if not np.array_equal(np.unique(codes), [0.0, 1.0]):
        raise ValueError(f"two classes coded 0 and 1 are needed, got {list(np.unique(codes))}")
    return _fit_kernel(K, codes, C, class_weight)


def _fit_kernel(K: np.ndarray, codes: np.ndarray, C: float,
                class_weight: str | None) -> tuple[np.ndarray, np.ndarray, float]:
    """:func:`fit_svc_kernel` without its check of the codes (float64, 0 and 1)."""
    (support, _, _, dual_coef, libsvm_intercept, _, _, _, _) = _libsvm.fit(
        np.ascontiguousarray(K, dtype=np.float64), codes, C=C,
        class_weight=_class_weights(class_weight, codes),
        **_PRECOMPUTED_PARAMETERS, **_FIT_PARAMETERS)
    # SVC flips libsvm's signs for two classes: positive favours class 1.
    return -dual_coef[0], support.astype(np.intp), float(-libsvm_intercept[0])


def svc_kernel_decisions(K_rows: np.ndarray, dual_coef: np.ndarray, support: np.ndarray,
                         intercept: float) -> np.ndarray:
    """``SVC.decision_function`` of samples from their kernel rows.

    Summed as libsvm's ``svm_predict_values`` sums: ``dual_coef[k] * K[k]``
    one support vector after the other from 0, then the intercept; with
    rows of :func:`linear_kernel` the values equal ``SVC``'s bit for bit.

    Parameters
    ----------
    K_rows : numpy.ndarray, shape (n_test, n_train)
        Kernel between the test samples and the training samples of the fit.
    dual_coef, support, intercept
        As returned by :func:`fit_svc_kernel`.

    Returns
    -------
    numpy.ndarray, shape (n_test,)
        Positive favours class 1; SVC predicts class 1 for a value >= 0.
    """
    K_rows = np.asarray(K_rows, dtype=np.float64)
    terms = np.zeros((len(K_rows), len(support) + 1))
    np.multiply(K_rows[:, support], dual_coef, out=terms[:, 1:])
    # A cumulative sum adds in order, as libsvm's loop (np.sum would pair terms up).
    # libsvm's value is sum - rho and SVC's its negation; negating is exact, so
    # summing the negated coefficients and adding rho (the intercept) is the same.
    return np.cumsum(terms, axis=1)[:, -1] + intercept


def _class_weights(class_weight: str | None, codes: np.ndarray) -> np.ndarray:
    # SVC.fit: class_weight_ = compute_class_weight(...) over the fold's classes
    # (all ones without class weights), handed to libsvm.fit as class_weight.
    if class_weight is None:
        return _NO_CLASS_WEIGHTS  # what compute_class_weight(None) gives, without its checks
    classes = np.unique(codes)
    return np.asarray(compute_class_weight(class_weight, classes=classes, y=codes),
                      dtype=np.float64)

