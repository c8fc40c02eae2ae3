"""The ROI decode's fits: ``SVC(kernel="linear")`` through scikit-learn's libsvm, per fold.

The fits call the libsvm wrapper that ``SVC.fit`` and ``SVC.predict`` call,
with the arguments they pass, so the coefficients, intercepts and predictions
are bit-identical to ``SVC``'s (tested). This skips the estimator's per-call
input validation, a third of the time of a fit of Haxby's size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.svm import _libsvm
from sklearn.utils.class_weight import compute_class_weight

from nidecode.cv import Fold

# SVC's defaults, as SVC.fit hands them to libsvm (gamma, degree and coef0
# are unused by the linear kernel; the seed only drives probability estimates).
_LIBSVM_PARAMETERS = dict(svm_type=0, kernel="linear", degree=3, gamma=0.0, coef0=0.0,
                          cache_size=200)
_FIT_PARAMETERS = dict(tol=1e-3, shrinking=1, probability=0, max_iter=-1, nu=0.5,
                       epsilon=0.0, random_seed=0, sample_weight=np.empty(0))
_NO_CLASS_WEIGHTS = np.ones(2)
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
                       class_weight: str | None = None) -> FoldScores:
    """Fit ``SVC(kernel="linear", C=C)`` on each training fold, score the test fold.

    The accuracies equal ``cross_val_score(SVC(kernel="linear", C=C,
    class_weight=class_weight), X, y, cv=folds)`` exactly: same solver, same
    data, same splits, same class weights.

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

    Returns
    -------
    FoldScores
    """
    classes, codes = np.unique(y, return_inverse=True)
    if len(classes) != 2:
        raise ValueError(f"two classes are needed, got {list(classes)}")
    X = np.ascontiguousarray(X, dtype=np.float64)  # SVC.fit's conversion
    codes = codes.astype(np.float64)
    accuracy = np.empty(len(folds))
    coef = np.empty((len(folds), X.shape[1]))
    intercept = np.empty(len(folds))
    decision, predictions, test_decisions = [], [], []
    for index, fold in enumerate(folds):
        weights = _class_weights(class_weight, codes[fold.train])
        (support, vectors, n_support, dual_coef, libsvm_intercept, prob_a, prob_b, _,
         _) = _libsvm.fit(X[fold.train], codes[fold.train], C=C, class_weight=weights,
                          **_LIBSVM_PARAMETERS, **_FIT_PARAMETERS)
        model = (support, vectors, n_support, dual_coef, libsvm_intercept, prob_a, prob_b)
        test = np.ascontiguousarray(X[fold.test])
        # SVC.decision_function: libsvm's values, sign flipped for two classes.
        # libsvm's predict votes on these same values (svm_predict_values): a
        # value > 0 is classes[0], anything else classes[1]; one call gives both.
        test_decision = -_libsvm.decision_function(test, *model, **_LIBSVM_PARAMETERS).ravel()
        predicted = (test_decision >= 0).astype(np.float64)
        test_decisions.append(test_decision)
        predictions.append(predicted)
        accuracy[index] = np.mean(predicted == codes[fold.test])
        # SVC flips libsvm's signs for two classes: positive favours classes[1].
        coef[index] = -(dual_coef @ vectors)[0]
        intercept[index] = -libsvm_intercept[0]
        if extra is not None:
            # The linear decision function as SVC computes it (coef_ is the
            # dual coefficients times the support vectors).
            decision.append(extra[index] @ coef[index] + intercept[index])
    return FoldScores(accuracy, coef, intercept, decision, predictions, test_decisions)


def _class_weights(class_weight: str | None, codes: np.ndarray) -> np.ndarray:
    # SVC.fit: class_weight_ = compute_class_weight(...) over the fold's classes
    # (all ones without class weights), handed to libsvm.fit as class_weight.
    if class_weight is None:
        return _NO_CLASS_WEIGHTS  # what compute_class_weight(None) gives, without its checks
    classes = np.unique(codes)
    return np.asarray(compute_class_weight(class_weight, classes=classes, y=codes),
                      dtype=np.float64)


# SVC(kernel="precomputed"): libsvm reads the kernel values K[i, j] of the
# training samples instead of computing dot products.
_PRECOMPUTED_PARAMETERS = {**_LIBSVM_PARAMETERS, "kernel": "precomputed"}


def fit_svc_kernel(K: np.ndarray, codes: np.ndarray, C: float = 1.0,
                   class_weight: str | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """Fit ``SVC(kernel="precomputed", C=C)`` on a kernel matrix, as ``SVC.fit`` calls libsvm.

    With ``K = X @ X.T`` this is ``SVC(kernel="linear")``'s problem on ``X``:
    the dual coefficients, support and intercept are bit-identical to
    ``SVC(kernel="precomputed").fit(K, codes)``'s (tested), and equal the
    linear SVM's to the precision of the kernel's sums.

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
    if len(np.unique(codes)) != 2:
        raise ValueError(f"two classes are needed, got {list(np.unique(codes))}")
    K = np.ascontiguousarray(K, dtype=np.float64)
    (support, _, _, dual_coef, libsvm_intercept, _, _, _, _) = _libsvm.fit(
        K, codes, C=C, class_weight=_class_weights(class_weight, codes),
        **_PRECOMPUTED_PARAMETERS, **_FIT_PARAMETERS)
    # SVC flips libsvm's signs for two classes: positive favours class 1.
    return -dual_coef[0], support.astype(np.intp), float(-libsvm_intercept[0])


def svc_kernel_decisions(K_rows: np.ndarray, dual_coef: np.ndarray, support: np.ndarray,
                         intercept: float) -> np.ndarray:
    """``SVC.decision_function`` of samples from their kernel rows.

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
    return K_rows[:, support] @ dual_coef + intercept
