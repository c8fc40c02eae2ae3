"""The ``--classifier`` choices as scikit-learn estimators, and their ROI fits.

``svc`` keeps its own bit-identical libsvm path (:mod:`nidecode.solvers.svc`);
the others (``lda``, ``gnb``, ``logreg``) are fitted here, one scikit-learn
estimator per fold, with the results :func:`~nidecode.solvers.svc.cross_validate_svc`
gives: accuracies, weights, decision values, predictions.

Decision values (positive favours ``classes_[1]``, the second class in sorted
order): ``decision_function`` where the estimator has one (SVC, LDA,
logistic regression); for Gaussian naive Bayes the log-probability ratio
``log P(b | x) - log P(a | x)`` (``predict_joint_log_proba[:, 1] - [:, 0]``), which
orders scans as ``predict_proba[:, 1]`` does but does not saturate at 0 or 1.

Weights: ``coef_`` of the linear classifiers; for naive Bayes, whose
log-probability ratio is quadratic in ``x`` when the classes' variances
differ, its gradient at ``x = 0`` (the mean scan of z-scored data),
``theta_b / var_b - theta_a / var_a`` (see ``docs/patterns.md``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator, clone

from nidecode.cv import Fold
from nidecode.solvers.svc import FoldScores

__all__ = ["make_estimator", "cross_validate_estimator", "decision_values", "linear_weights"]


def make_estimator(classifier: str, C: float = 1.0, shrinkage: str | float | None = "auto",
                   class_weight: str | None = None) -> BaseEstimator:
    """The scikit-learn estimator of a ``--classifier`` choice (its defaults otherwise).

    Parameters
    ----------
    classifier : {"svc", "lda", "gnb", "logreg"}
    C : float
        ``svc`` and ``logreg`` only: the inverse of the regularisation strength.
    shrinkage : {"auto"} or float
        ``lda`` only: ``"auto"`` (Ledoit-Wolf) or a float in [0, 1].
    class_weight : {None, "balanced"}
        ``svc`` and ``logreg`` only (``lda`` and ``gnb`` have none).

    Returns
    -------
    sklearn.base.BaseEstimator
        ``SVC(kernel="linear", C=C, class_weight=...)``,
        ``LinearDiscriminantAnalysis(solver="lsqr", shrinkage=...)``,
        ``GaussianNB()`` or ``LogisticRegression(C=C, class_weight=...)``.
    """
    if classifier == "svc":
        from sklearn.svm import SVC

        return SVC(kernel="linear", C=C, class_weight=class_weight)
    if classifier == "lda":
        from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

        return LinearDiscriminantAnalysis(solver="lsqr",
                                          shrinkage="auto" if shrinkage is None else shrinkage)
    if classifier == "gnb":
        from sklearn.naive_bayes import GaussianNB

        return GaussianNB()
    if classifier == "logreg":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=C, class_weight=class_weight)
    raise ValueError(f"unknown classifier {classifier!r}")


def decision_values(estimator: BaseEstimator, X: np.ndarray) -> np.ndarray:
    """Decision values of a fitted binary classifier; positive favours ``classes_[1]``.

    ``decision_function`` if the estimator has one, else the log-probability
    ratio ``predict_joint_log_proba[:, 1] - [:, 0]`` (naive Bayes), else
    ``predict_proba[:, 1]``.
    """
    if hasattr(estimator, "decision_function"):
        return np.asarray(estimator.decision_function(X), dtype=np.float64).ravel()
    if hasattr(estimator, "predict_joint_log_proba"):
        joint = estimator.predict_joint_log_proba(X)
        return np.asarray(joint[:, 1] - joint[:, 0], dtype=np.float64)
    return np.asarray(estimator.predict_proba(X)[:, 1], dtype=np.float64)


def linear_weights(estimator: BaseEstimator, n_features: int) -> tuple[np.ndarray, float]:
    """The weights and intercept of a fitted binary classifier's decision values.

    ``coef_`` and ``intercept_`` of linear classifiers. For Gaussian naive
    Bayes (``theta_``, ``var_``), the gradient of the log-probability ratio
    at ``x = 0``, ``theta_[1] / var_[1] - theta_[0] / var_[0]``, and the ratio
    at ``x = 0``: the linear part of a decision that is quadratic in general.

    Returns
    -------
    (numpy.ndarray of shape (n_features,), float)
    """
    if hasattr(estimator, "coef_"):
        coef = np.asarray(estimator.coef_, dtype=np.float64).reshape(-1, n_features)[-1]
        intercept = float(np.ravel(estimator.intercept_)[-1])
        return coef, intercept
    theta, var = estimator.theta_, estimator.var_
    coef = theta[1] / var[1] - theta[0] / var[0]
    intercept = float(decision_values(estimator, np.zeros((1, n_features)))[0])
    return np.asarray(coef, dtype=np.float64), intercept


def cross_validate_estimator(X: np.ndarray, y: np.ndarray, folds: Sequence[Fold],
                             estimator: BaseEstimator,
                             extra: Sequence[np.ndarray] | None = None) -> FoldScores:
    """Fit a clone of ``estimator`` on each training fold, score the test fold.

    The accuracies equal ``cross_val_score(estimator, X, y, cv=folds)``: the
    same estimator fitted on the same arrays (``X`` is not converted).

    Parameters
    ----------
    X : numpy.ndarray, shape (n_samples, n_features)
    y : numpy.ndarray, shape (n_samples,)
        Two classes; the second in sorted order is the positive one.
    folds : sequence of Fold
    estimator : sklearn.base.BaseEstimator
        A binary classifier (see :func:`make_estimator`).
    extra : sequence of numpy.ndarray, optional
        Per fold, more samples to take decision values of
        (:func:`decision_values`), as in
        :func:`~nidecode.solvers.svc.cross_validate_svc`.

    Returns
    -------
    FoldScores
        ``coef`` and ``intercept`` from :func:`linear_weights`.
    """
    classes = np.unique(y)
    if len(classes) != 2:
        raise ValueError(f"two classes are needed, got {list(classes)}")
    accuracy = np.empty(len(folds))
    coef = np.empty((len(folds), X.shape[1]))
    intercept = np.empty(len(folds))
    decision, predictions, test_decisions = [], [], []
    for index, fold in enumerate(folds):
        model = clone(estimator).fit(X[fold.train], y[fold.train])
        test = X[fold.test]
        predicted = np.searchsorted(classes, model.predict(test)).astype(np.float64)
        predictions.append(predicted)
        test_decisions.append(decision_values(model, test))
        accuracy[index] = np.mean(classes[predicted.astype(int)] == y[fold.test])
        coef[index], intercept[index] = linear_weights(model, X.shape[1])
        if extra is not None:
            decision.append(decision_values(model, extra[index]) if len(extra[index])
                            else np.empty(0))
    return FoldScores(accuracy, coef, intercept, decision, predictions, test_decisions)
