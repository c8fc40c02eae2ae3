"""``--solver sklearn``: scikit-learn's ``SVC(kernel="linear")``, one sphere at a time.

The reference the compiled solvers are checked against: slow, and SVC itself
(imported on the first call). :func:`searchlight_scores_estimator` is the
same loop for any scikit-learn classifier: the searchlight path of the
classifiers without a closed form (``--classifier logreg``, and ``lda`` /
``gnb`` with ``--solver sklearn``). Inputs are checked as the other solvers check
them (:mod:`nidecode.solvers._common`), so the three raise the same errors.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, clone

from nidecode.solvers._common import (
    _check_c_tol,
    _check_class_weight,
    _encode_binary,
    _group_train,
    _prepare,
)

__all__ = ["searchlight_accuracies", "searchlight_scores_estimator"]


def searchlight_accuracies(
    X: np.ndarray,
    y: np.ndarray,
    spheres: sp.spmatrix,
    folds: list[tuple[np.ndarray, np.ndarray]],
    C: float = 1.0,
    tol: float = 1e-3,
    *,
    return_decisions: bool = False,
    class_weight: str | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Reference path: ``SVC(kernel="linear", class_weight=...)`` fitted per sphere and fold.

    Same parameters and result as
    :func:`nidecode.solvers.libsvm.searchlight_accuracies`; slow, exact
    scikit-learn. Used to verify the compiled solvers (``--solver sklearn``).

    Parameters
    ----------
    X : numpy.ndarray of shape (n_scans, n_voxels)
        Masked data.
    y : numpy.ndarray of shape (n_scans,)
        Binary labels.
    spheres : scipy.sparse matrix of shape (n_spheres, n_voxels)
        Sphere membership.
    folds : list of (numpy.ndarray, numpy.ndarray)
        ``(train_indices, test_indices)`` pairs.
    C : float, default=1.0
        Penalty parameter.
    tol : float, default=1e-3
        SVC's stopping tolerance.
    return_decisions : bool, default=False
        Also return ``SVC.decision_function`` of every test scan.
    class_weight : {None, "none", "balanced"}, default=None
        ``SVC``'s ``class_weight`` (``"none"``: None).

    Returns
    -------
    accuracies : numpy.ndarray of shape (n_spheres, n_folds)
        Test accuracy per sphere and fold.
    decisions : numpy.ndarray of shape (n_spheres, n_scans)
        Only if ``return_decisions``: as in
        :func:`nidecode.solvers.libsvm.searchlight_accuracies`.
    """
    from sklearn.svm import SVC

    C, tol = _check_c_tol(C, tol)
    weights = "balanced" if _check_class_weight(class_weight) else None
    estimator = SVC(kernel="linear", C=C, tol=tol, class_weight=weights)
    return searchlight_scores_estimator(X, y, spheres, folds, estimator,
                                        return_decisions=return_decisions)


def searchlight_scores_estimator(
    X: np.ndarray,
    y: np.ndarray,
    spheres: sp.spmatrix,
    folds: list[tuple[np.ndarray, np.ndarray]],
    estimator: BaseEstimator,
    return_decisions: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Any binary scikit-learn classifier fitted per sphere and fold (a clone each).

    As nilearn's ``SearchLight`` fits it: the sphere's voxels in increasing
    order, ``estimator.predict`` scored against the test labels.

    Parameters
    ----------
    X, y, spheres, folds
        As for :func:`searchlight_accuracies`.
    estimator : sklearn.base.BaseEstimator
        E.g. :func:`nidecode.solvers.estimators.make_estimator`'s.
    return_decisions : bool, default=False
        Also return the decision values of every test scan
        (:func:`nidecode.solvers.estimators.decision_values`).

    Returns
    -------
    accuracies : numpy.ndarray of shape (n_spheres, n_folds)
    decisions : numpy.ndarray of shape (n_spheres, n_scans)
        Only if ``return_decisions``; NaN for scans no fold tests.
    """
    from nidecode.solvers.estimators import decision_values

    X, y, spheres, folds = _prepare(X, y, spheres, folds)
    _, y01 = _encode_binary(y)
    for tr, _te in folds:
        _group_train(tr, y01)  # the compiled solvers' error for one-class folds
    out = np.empty((spheres.shape[0], len(folds)))
    decisions = np.full((spheres.shape[0], len(y)), np.nan)
    for s in range(spheres.shape[0]):
        cols = spheres.indices[spheres.indptr[s] : spheres.indptr[s + 1]]
        Xs = X[:, np.sort(cols)]
        for f, (tr, te) in enumerate(folds):
            clf = clone(estimator).fit(Xs[tr], y[tr])
            out[s, f] = np.mean(clf.predict(Xs[te]) == y[te])
            if return_decisions:
                decisions[s, te] = decision_values(clf, Xs[te])
    return (out, decisions) if return_decisions else out
