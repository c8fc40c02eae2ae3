"""The exact path: scikit-learn's ``SVC(kernel="linear")``, one fit per fold."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.svm import SVC

from engine.cv import Fold


@dataclass(frozen=True)
class FoldScores:
    """Per-fold results of one cross-validated linear SVM."""

    accuracy: np.ndarray  # (n_folds,)
    coef: np.ndarray  # (n_folds, n_features); positive favours the second class
    intercept: np.ndarray  # (n_folds,)
    decision: list[np.ndarray]  # per fold, decision values of the ``extra`` samples


def cross_validate_svc(X: np.ndarray, y: np.ndarray, folds: Sequence[Fold],
                       C: float = 1.0,
                       extra: Sequence[np.ndarray] | None = None) -> FoldScores:
    """Fit ``SVC(kernel="linear", C=C)`` on each training fold, score the test fold.

    The accuracies equal ``cross_val_score(SVC(kernel="linear", C=C), X, y,
    cv=folds)`` exactly: same estimator, same data, same splits.

    Parameters
    ----------
    X : numpy.ndarray, shape (n_samples, n_features)
    y : numpy.ndarray, shape (n_samples,)
        Two classes.
    folds : sequence of Fold
    C : float
        Penalty parameter.
    extra : sequence of numpy.ndarray, optional
        Per fold, more samples (rows of features) to take decision values
        of, e.g. the held-out run's scans of other categories (one-vs-one
        multiclass votes).

    Returns
    -------
    FoldScores
    """
    accuracy = np.empty(len(folds))
    coef = np.empty((len(folds), X.shape[1]))
    intercept = np.empty(len(folds))
    decision = []
    for index, fold in enumerate(folds):
        svc = SVC(kernel="linear", C=C).fit(X[fold.train], y[fold.train])
        accuracy[index] = np.mean(svc.predict(X[fold.test]) == y[fold.test])
        coef[index] = svc.coef_[0]
        intercept[index] = svc.intercept_[0]
        if extra is not None:
            # The linear decision function as SVC computes it (coef_ is the
            # dual coefficients times the support vectors), without the
            # per-call overhead of SVC.decision_function.
            decision.append(extra[index] @ coef[index] + intercept[index])
    return FoldScores(accuracy, coef, intercept, decision)
