"""Gaussian naive Bayes searchlight: ``GaussianNB()`` in every sphere and fold, closed form.

GaussianNB is a per-voxel model: per class a mean and a variance of each
voxel over the training scans, plus the class frequencies. A fold's statistics
come from per-atom sums and sums of squares
(:mod:`nidecode.solvers._sufficient`): one pass over the data for all folds.
The one term that is not per voxel is ``var_smoothing``: GaussianNB adds
``var_smoothing`` times the largest variance of the sphere's voxels over all
training scans to every variance, so each sphere's log-likelihood is summed in
a compiled kernel with its own epsilon (numba).

The joint log-likelihood is computed as GaussianNB's ``_joint_log_likelihood``
(``log prior - sum log(2 pi var) / 2 - sum (x - mean)^2 / var / 2``) and a
test scan is predicted ``classes_[1]`` only if its likelihood is strictly
larger (``argmax`` keeps the first class at a tie).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
from numba import njit

from nidecode.errors import InputError
from nidecode.solvers._common import _prepare, _scatter_decisions
from nidecode.solvers._sufficient import (
    atom_sums,
    fold_class_counts,
    fold_design,
    label_set_designs,
    ties_to_first_class,
)

__all__ = ["fold_statistics", "permutation_accuracies", "searchlight_accuracies"]


def fold_statistics(design: dict) -> dict:
    """Per fold, class and voxel: GaussianNB's means and variances (no smoothing).

    Parameters
    ----------
    design : dict
        :func:`nidecode.solvers._sufficient.fold_design`'s arrays.

    Returns
    -------
    dict
        ``theta``, ``var`` and ``log_var`` (``log(2 pi var)``) of shape
        (n_folds, 2, n_voxels), ``pooled``
        (n_folds, n_voxels): the variance over both classes' training scans
        (the smoothing's scale), and ``log_prior`` (n_folds, 2).
    """
    n_atoms = len(design["atom_class"])
    sums, squares = atom_sums(design["Xt"], design["atom"], n_atoms)
    counts = fold_class_counts(design)
    n_folds, n_voxels = design["in_train"].shape[0], design["Xt"].shape[0]
    theta = np.empty((n_folds, 2, n_voxels))
    var = np.empty((n_folds, 2, n_voxels))
    total, total_sq = np.zeros((n_folds, n_voxels)), np.zeros((n_folds, n_voxels))
    for c in (0, 1):
        pick = design["in_train"] & (design["atom_class"] == c)
        s, q = pick @ sums, pick @ squares
        theta[:, c] = s / counts[:, c, None]
        # ddof=0, as np.var; rounding can push a constant voxel's below zero.
        var[:, c] = np.maximum(q / counts[:, c, None] - theta[:, c] ** 2, 0.0)
        total += s
        total_sq += q
    n = counts.sum(axis=1)[:, None]
    pooled = np.maximum(total_sq / n - (total / n) ** 2, 0.0)
    log_prior = np.log(counts / counts.sum(axis=1, keepdims=True))
    with np.errstate(divide="ignore"):
        log_var = np.log(2.0 * np.pi * var)
    return {"theta": theta, "var": var, "log_var": log_var, "pooled": pooled,
            "log_prior": log_prior}


@njit(cache=True, error_model="numpy")
def _sphere_fold(Xt, cols, theta, var, log_var, pooled, log_prior, test, var_smoothing, y, dec,
                 q, s, want):
    """Accuracy of one sphere and fold; the test scans' joint log-likelihoods
    into ``dec`` (shape (2, n_used)) if ``want``."""
    eps = 0.0
    for v in cols:
        eps = max(eps, pooled[v])
    eps *= var_smoothing
    n_test = test.shape[0]
    for i in range(n_test):
        q[0, i] = 0.0
        q[1, i] = 0.0
    for c in range(2):
        log_det = 0.0
        for v in cols:
            smoothed = var[c, v] + eps
            ratio = eps / var[c, v]
            if ratio < 1e-8:
                # log(2 pi (var + eps)) to rounding (log1p(r) = r - r^2/2 + ...), no log call.
                log_det += log_var[c, v] + ratio
            else:
                log_det += math.log(2.0 * math.pi * smoothed)
            inverse = 1.0 / smoothed
            mean = theta[c, v]
            row = Xt[v]
            for i in range(n_test):
                diff = row[test[i]] - mean
                q[c, i] += diff * diff * inverse
        s[c] = log_prior[c] - 0.5 * log_det
    correct = 0
    for i in range(n_test):
        jll0 = s[0] - 0.5 * q[0, i]
        jll1 = s[1] - 0.5 * q[1, i]
        if (jll1 > jll0) == (y[test[i]] == 1):
            correct += 1
        if want:
            dec[0, test[i]] = jll0
            dec[1, test[i]] = jll1
    return correct / n_test


@njit(cache=True, error_model="numpy")
def _kernel(Xt, sph_ptr, sph_idx, theta, var, log_var, pooled, log_prior, test_ptr, test_idx,
            var_smoothing, y, dec, want):
    n_spheres, n_folds = sph_ptr.shape[0] - 1, test_ptr.shape[0] - 1
    accuracy = np.empty((n_spheres, n_folds))
    largest = 0
    for f in range(n_folds):
        largest = max(largest, test_ptr[f + 1] - test_ptr[f])
    q = np.empty((2, largest))
    s = np.empty(2)
    empty = np.empty((0, 0))
    for k in range(n_spheres):
        cols = sph_idx[sph_ptr[k]:sph_ptr[k + 1]]
        row = dec[k] if want else empty
        for f in range(n_folds):
            test = test_idx[test_ptr[f]:test_ptr[f + 1]]
            accuracy[k, f] = _sphere_fold(Xt, cols, theta[f], var[f], log_var[f], pooled[f],
                                          log_prior[f], test, var_smoothing, y, row, q, s, want)
    return accuracy


def searchlight_accuracies(
    X: np.ndarray,
    y: np.ndarray,
    spheres: sp.spmatrix,
    folds: list[tuple[np.ndarray, np.ndarray]],
    *,
    var_smoothing: float = 1e-9,
    return_decisions: bool = False,
    return_proba: bool = False,
) -> np.ndarray | tuple[np.ndarray, ...]:
    """Cross-validated accuracy of ``GaussianNB()`` in every sphere.

    Equal to ``cross_val_score(GaussianNB(var_smoothing=var_smoothing),
    X[:, sphere], y, cv=folds)`` for every sphere, up to float rounding.

    Parameters
    ----------
    X : numpy.ndarray of shape (n_scans, n_voxels)
        Masked data.
    y : numpy.ndarray of shape (n_scans,)
        Binary labels; classes sorted as GaussianNB's ``classes_``.
    spheres : scipy.sparse matrix of shape (n_spheres, n_voxels)
        Row ``i`` marks the voxels of sphere ``i``.
    folds : list of (numpy.ndarray, numpy.ndarray)
        ``(train_indices, test_indices)``; any folds whose training sets hold
        both classes.
    var_smoothing : float, default=1e-9
        GaussianNB's ``var_smoothing``.
    return_decisions : bool, default=False
        Also return each test scan's log-likelihood ratio
        ``jll[:, 1] - jll[:, 0]`` (GaussianNB's ``predict_joint_log_proba``;
        positive: ``classes_[1]``).

    return_proba : bool, default=False
        Also return ``predict_proba(X)[:, 1]`` of each test scan, computed
        from the joint log-likelihoods as GaussianNB does (``exp(jll_1 -
        logsumexp(jll))``): scikit-learn's ROC AUC scorer ranks these, and
        they saturate at 1 (ties) where the ratio does not.

    Returns
    -------
    accuracies : numpy.ndarray of shape (n_spheres, n_folds)
    decisions : numpy.ndarray of shape (n_spheres, n_scans)
        Only if ``return_decisions``: the ratio of each scan in the fold that
        tests it (the last such fold), NaN for scans no fold tests; an exact
        zero (predicted ``classes_[0]``) as the negative float closest to zero,
        so that ``>= 0`` means ``classes_[1]`` as for the SVM solvers.
    proba : numpy.ndarray of shape (n_spheres, n_scans)
        Only if ``return_proba`` (last): as ``decisions``, the probabilities.
    """
    var_smoothing = _check_smoothing(var_smoothing)
    n_scans = np.shape(X)[0]
    X, y, spheres, folds = _prepare(X, y, spheres, folds)
    design = fold_design(X, y, folds, "GaussianNB")
    want = bool(return_decisions or return_proba)
    jll = (np.full((spheres.shape[0], 2, design["Xt"].shape[1]), np.nan) if want
           else np.empty((0, 0, 0)))
    accuracy = _accuracies(design, spheres, var_smoothing, jll, want)
    result = (accuracy,)
    if return_decisions:
        ratio = ties_to_first_class(jll[:, 1] - jll[:, 0])
        result += (_scatter_decisions(ratio, folds, n_scans),)
    if return_proba:
        result += (_scatter_decisions(_proba(jll), folds, n_scans),)
    return result if len(result) > 1 else accuracy


def _proba(jll: np.ndarray) -> np.ndarray:
    """``predict_proba[:, 1]`` from (n_spheres, 2, n_used) joint log-likelihoods,
    with the normalisation GaussianNB uses (its ``_logsumexp``; NaN stays NaN)."""
    try:
        from sklearn.utils._array_api import _logsumexp
    except ImportError:  # a private helper: scipy's otherwise
        from scipy.special import logsumexp as _logsumexp
    pairs = np.moveaxis(jll, 1, -1).reshape(-1, 2)
    tested = ~np.isnan(pairs[:, 0])
    proba = np.full(len(pairs), np.nan)
    proba[tested] = np.exp(pairs[tested, 1] - _logsumexp(pairs[tested], axis=1))
    return proba.reshape(jll.shape[0], jll.shape[2])


def permutation_accuracies(
    X: np.ndarray,
    label_sets: np.ndarray,
    spheres: sp.spmatrix,
    folds: list[tuple[np.ndarray, np.ndarray]],
    *,
    var_smoothing: float = 1e-9,
) -> np.ndarray:
    """:func:`searchlight_accuracies` for many label vectors (permutations) at once.

    The data are checked, centred and transposed once; each label vector then
    costs its per-atom sums and the per-sphere kernel.

    Parameters
    ----------
    X, spheres, folds, var_smoothing
        As in :func:`searchlight_accuracies`.
    label_sets : numpy.ndarray of shape (n_sets, n_scans)
        One label vector per row, all with the same two classes.

    Returns
    -------
    numpy.ndarray of shape (n_sets, n_spheres, n_folds)
    """
    var_smoothing = _check_smoothing(var_smoothing)
    spheres, _, designs = label_set_designs(X, label_sets, spheres, folds, "GaussianNB")
    return np.stack([_accuracies(design, spheres, var_smoothing, np.empty((0, 0, 0)), False)
                     for design in designs])


def _accuracies(design: dict, spheres: sp.csr_matrix, var_smoothing: float, dec: np.ndarray,
                want: bool) -> np.ndarray:
    """The kernel on a design (joint log-likelihoods into ``dec`` if ``want``)."""
    stats = fold_statistics(design)
    return _kernel(design["Xt"], spheres.indptr.astype(np.int64),
                   spheres.indices.astype(np.int64), stats["theta"], stats["var"],
                   stats["log_var"], stats["pooled"], stats["log_prior"], design["test_ptr"],
                   design["test_idx"], var_smoothing, design["y"], dec, bool(want))


def _check_smoothing(value) -> float:
    """var_smoothing as a float; an InputError unless finite and >= 0."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise InputError(f"var_smoothing must be a finite number >= 0, got {value!r}")
    return value
