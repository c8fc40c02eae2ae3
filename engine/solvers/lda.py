"""Shrinkage LDA searchlight: ``LinearDiscriminantAnalysis(solver="lsqr", shrinkage=...)``
in every sphere and fold, closed form.

LDA is a function of per-class counts, sums and cross-products of the
training scans. Per sphere the kernel sums them once per *atom*
(:mod:`nidecode.solvers._sufficient`: scans grouped by class and by the folds
that train on them; leave one run out: a run and a class), so a fold's come
from adding atoms (or subtracting the held-out ones from the class totals),
not from a pass over its scans. Then, as scikit-learn's ``_solve_lstsq``:

* per class, the covariance of the training scans (ddof 0), shrunk: with
  ``"auto"``, Ledoit-Wolf on the standardised features and rescaled
  (``sklearn.discriminant_analysis._cov``: the correlation matrix R,
  ``shrinkage = min(beta, delta) / delta`` of ``ledoit_wolf_shrinkage``, whose
  one term that is not a function of R, ``sum_n (sum_i z_ni^2)^2``, is summed
  over the fold's training scans), with a float ``s`` ``(1 - s) C + s
  trace(C) / d I``;
* the pooled covariance ``sum_c prior_c C_c`` (priors: the class frequencies
  of the training fold) and ``coef = cov^-1 (mean_1 - mean_0)``, the binary
  ``coef_[1] - coef_[0]`` (Cholesky; scikit-learn's least-squares solution,
  ``numpy.linalg.lstsq``, if the matrix is singular);
* ``intercept = -(mean_0 + mean_1) . coef / 2 + log(prior_1 / prior_0)``,
  ``intercept_[1] - intercept_[0]``; a test scan is ``classes_[1]`` where
  ``decision_function`` is > 0 (scikit-learn's ``LinearClassifierMixin``).

Compiled with numba, one sphere at a time.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
from numba import njit

from nidecode.errors import InputError
from nidecode.solvers._common import _decision_array, _prepare, _scatter_decisions
from nidecode.solvers._sufficient import (
    fold_design,
    label_set_designs,
    ties_to_first_class,
)

__all__ = ["check_shrinkage", "permutation_accuracies", "searchlight_accuracies"]

_AUTO = -1.0  # the kernels' code for shrinkage="auto"


@njit(cache=True, error_model="numpy")
def _atom_moments(Xt, cols, atom, n_atoms, Xs, S, P):
    """Per atom: the sum ``S[a]`` and the cross-product ``P[a]`` (lower triangle)
    of the sphere's voxels; ``Xs`` gets the sphere's data, scan-major."""
    d = cols.shape[0]
    n = Xt.shape[1]
    for j in range(d):
        row = Xt[cols[j]]
        for i in range(n):
            Xs[i, j] = row[i]
    S[:, :d] = 0.0
    P[:, :d, :d] = 0.0
    for i in range(n):
        a = atom[i]
        x = Xs[i]
        for j in range(d):
            xj = x[j]
            S[a, j] += xj
            Pa = P[a, j]
            for k in range(j + 1):
                Pa[k] += xj * x[k]


@njit(cache=True, error_model="numpy")
def _class_moments(S, P, d, in_train, atom_class, c, total_S, total_P, s, p):
    """The sum ``s`` and cross-product ``p`` of class ``c``'s training scans of a
    fold: the class totals minus its atoms outside the fold."""
    s[:d] = total_S[c, :d]
    for j in range(d):
        for k in range(j + 1):
            p[j, k] = total_P[c, j, k]
    for a in range(atom_class.shape[0]):
        if atom_class[a] == c and not in_train[a]:
            for j in range(d):
                s[j] -= S[a, j]
                for k in range(j + 1):
                    p[j, k] -= P[a, j, k]


@njit(cache=True, error_model="numpy")
def _ledoit_wolf_beta(Xs, scans, mean, inverse, d):
    """``sum_n (sum_i z_ni^2)^2`` over ``scans``, ``z = (x - mean) * inverse``
    standardised: the term of ``ledoit_wolf_shrinkage``'s beta that is not a
    function of the correlations."""
    total = 0.0
    for n in scans:
        x = Xs[n]
        norm = 0.0
        for j in range(d):
            z = (x[j] - mean[j]) * inverse[j]
            norm += z * z
        total += norm * norm
    return total


@njit(cache=True, error_model="numpy")
def _shrunk_class_cov(Xs, scans, s, p, count, d, shrinkage, mean, scale, cov):
    """Class covariance (ddof 0) shrunk as ``sklearn.discriminant_analysis._cov``,
    into ``cov`` (full); ``mean`` gets the class mean. Returns the shrinkage
    applied (0: the empirical covariance, of rank below ``count``)."""
    for j in range(d):
        mean[j] = s[j] / count
    for j in range(d):
        for k in range(j + 1):
            value = p[j, k] / count - mean[j] * mean[k]
            cov[j, k] = value
            cov[k, j] = value
    if shrinkage == _AUTO:
        if d == 1:  # ledoit_wolf of one feature: no shrinkage
            return 0.0
        for j in range(d):
            variance = max(cov[j, j], 0.0)
            root = math.sqrt(variance)
            # StandardScaler keeps near-constant features unscaled.
            scale[j] = 1.0 / root if root >= 10 * 2.220446049250313e-16 else 1.0
        # scale holds 1 / StandardScaler's scale_; R = the correlation matrix.
        trace, off_diagonal = 0.0, 0.0
        for j in range(d):
            for k in range(j):
                r = cov[j, k] * scale[j] * scale[k]
                off_diagonal += r * r
            r = cov[j, j] * scale[j] * scale[j]
            trace += r
            off_diagonal += 0.5 * r * r
        frobenius = 2.0 * off_diagonal
        mu = trace / d
        beta_sum = _ledoit_wolf_beta(Xs, scans, mean, scale, d)
        beta = (beta_sum / count - frobenius) / (d * count)
        delta = (frobenius - 2.0 * mu * trace + d * mu * mu) / d
        beta = min(beta, delta)
        # delta == 0: all features constant (a class of one scan), nothing to shrink.
        amount = 0.0 if beta == 0 or delta == 0 else beta / delta
        for j in range(d):
            for k in range(d):
                cov[j, k] *= 1.0 - amount
            cov[j, j] += amount * mu / (scale[j] * scale[j])
        return amount
    if shrinkage > 0.0:
        trace = 0.0
        for j in range(d):
            trace += cov[j, j]
        for j in range(d):
            for k in range(d):
                cov[j, k] *= 1.0 - shrinkage
            cov[j, j] += shrinkage * trace / d
    return shrinkage


@njit(cache=True, error_model="numpy")
def _cholesky_solve(A, b, d, L, w):
    """w = A^-1 b by Cholesky; False if A is not (numerically) positive definite."""
    largest = 0.0
    for j in range(d):
        largest = max(largest, abs(A[j, j]))
    for j in range(d):
        for k in range(j + 1):
            total = A[j, k]
            for m in range(k):
                total -= L[j, m] * L[k, m]
            if j == k:
                if not total > 1e-13 * largest:
                    return False
                L[j, j] = math.sqrt(total)
            else:
                L[j, k] = total / L[k, k]
    for j in range(d):
        total = b[j]
        for m in range(j):
            total -= L[j, m] * w[m]
        w[j] = total / L[j, j]
    for j in range(d - 1, -1, -1):
        total = w[j]
        for m in range(j + 1, d):
            total -= L[m, j] * w[m]
        w[j] = total / L[j, j]
    return True


@njit(cache=True, error_model="numpy")
def _kernel(Xt, sph_ptr, sph_idx, atom, atom_class, in_train, train_ptr, train_idx, test_ptr,
            test_idx, y, shrinkage, dec, want):
    n_spheres, n_folds = sph_ptr.shape[0] - 1, test_ptr.shape[0] - 1
    n_atoms, n = atom_class.shape[0], Xt.shape[1]
    dmax = 1
    for k in range(n_spheres):
        dmax = max(dmax, sph_ptr[k + 1] - sph_ptr[k])
    Xs = np.empty((n, dmax))
    S, P = np.empty((n_atoms, dmax)), np.empty((n_atoms, dmax, dmax))
    total_S, total_P = np.empty((2, dmax)), np.empty((2, dmax, dmax))
    s, p = np.empty(dmax), np.empty((dmax, dmax))
    means, scale = np.empty((2, dmax)), np.empty(dmax)
    cov, pooled, L = np.empty((dmax, dmax)), np.empty((dmax, dmax)), np.empty((dmax, dmax))
    rhs, w, count = np.empty(dmax), np.empty(dmax), np.empty(2)
    accuracy = np.empty((n_spheres, n_folds))
    for sphere in range(n_spheres):
        cols = sph_idx[sph_ptr[sphere]:sph_ptr[sphere + 1]]
        d = cols.shape[0]
        _atom_moments(Xt, cols, atom, n_atoms, Xs, S, P)
        total_S[:, :d] = 0.0
        total_P[:, :d, :d] = 0.0
        for a in range(n_atoms):
            c = atom_class[a]
            for j in range(d):
                total_S[c, j] += S[a, j]
                for k in range(j + 1):
                    total_P[c, j, k] += P[a, j, k]
        for f in range(n_folds):
            pooled[:d, :d] = 0.0
            shrunk = False
            for c in range(2):
                count[c] = train_ptr[2 * f + c + 1] - train_ptr[2 * f + c]
            for c in range(2):
                scans = train_idx[train_ptr[2 * f + c]:train_ptr[2 * f + c + 1]]
                _class_moments(S, P, d, in_train[f], atom_class, c, total_S, total_P, s, p)
                amount = _shrunk_class_cov(Xs, scans, s, p, count[c], d, shrinkage, means[c],
                                           scale, cov)
                shrunk = shrunk or amount > 0.0
                prior = count[c] / (count[0] + count[1])
                for j in range(d):
                    for k in range(d):
                        pooled[j, k] += prior * cov[j, k]
            for j in range(d):
                rhs[j] = means[1, j] - means[0, j]
            # Unshrunk, the pooled covariance has rank <= n_train - 2; singular or
            # nearly: scikit-learn's minimum-norm least squares (gelsd, rcond = eps).
            if ((not shrunk and d > count[0] + count[1] - 2)
                    or not _cholesky_solve(pooled, rhs, d, L, w)):
                w[:d] = np.linalg.lstsq(pooled[:d, :d].copy(), rhs[:d].copy(),
                                        rcond=2.220446049250313e-16)[0]
            intercept = math.log(count[1]) - math.log(count[0])
            for j in range(d):
                intercept -= 0.5 * (means[0, j] + means[1, j]) * w[j]
            correct = 0
            for t in range(test_ptr[f], test_ptr[f + 1]):
                i = test_idx[t]
                value = intercept
                for j in range(d):
                    value += Xs[i, j] * w[j]
                if (value > 0.0) == (y[i] == 1):
                    correct += 1
                if want:
                    dec[sphere, i] = value
            accuracy[sphere, f] = correct / (test_ptr[f + 1] - test_ptr[f])
    return accuracy


def _train_arrays(y01: np.ndarray, folds_train: list[np.ndarray]) -> tuple:
    """Training scans per fold and class: those of fold f and class c are
    ``idx[ptr[2 f + c]:ptr[2 f + c + 1]]`` (indices into the used scans)."""
    parts = [train[y01[train] == c] for train in folds_train for c in (0, 1)]
    ptr = np.concatenate([[0], np.cumsum([len(t) for t in parts])]).astype(np.int64)
    return ptr, np.concatenate(parts).astype(np.int64)


def searchlight_accuracies(
    X: np.ndarray,
    y: np.ndarray,
    spheres: sp.spmatrix,
    folds: list[tuple[np.ndarray, np.ndarray]],
    *,
    shrinkage: str | float = "auto",
    return_decisions: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Cross-validated accuracy of shrinkage LDA in every sphere.

    Equal to ``cross_val_score(LinearDiscriminantAnalysis(solver="lsqr",
    shrinkage=shrinkage), X[:, sphere], y, cv=folds)`` for every sphere, up
    to float rounding.

    Parameters
    ----------
    X : numpy.ndarray of shape (n_scans, n_voxels)
        Masked data.
    y : numpy.ndarray of shape (n_scans,)
        Binary labels; classes sorted as LDA's ``classes_``.
    spheres : scipy.sparse matrix of shape (n_spheres, n_voxels)
        Row ``i`` marks the voxels of sphere ``i``.
    folds : list of (numpy.ndarray, numpy.ndarray)
        ``(train_indices, test_indices)``; any folds whose training sets hold
        both classes.
    shrinkage : "auto" or float in [0, 1], default="auto"
        ``"auto"``: Ledoit-Wolf, as scikit-learn computes it; a float: fixed
        shrinkage of each class covariance towards its mean variance.
    return_decisions : bool, default=False
        Also return LDA's ``decision_function`` of each test scan (positive:
        ``classes_[1]``).

    Returns
    -------
    accuracies : numpy.ndarray of shape (n_spheres, n_folds)
    decisions : numpy.ndarray of shape (n_spheres, n_scans)
        Only if ``return_decisions``: the decision of each scan in the fold
        that tests it (the last such fold), NaN for scans no fold tests; an
        exact zero (predicted ``classes_[0]``) as the negative float closest to
        zero, so that ``>= 0`` means ``classes_[1]`` as for the SVM solvers.
    """
    code = check_shrinkage(shrinkage)
    n_scans = np.shape(X)[0]
    X, y, spheres, folds = _prepare(X, y, spheres, folds)
    design = fold_design(X, y, folds, "LinearDiscriminantAnalysis")
    dec = _decision_array(spheres.shape[0], design["Xt"].shape[1], return_decisions)
    accuracy = _accuracies(design, spheres, folds, code, dec, return_decisions)
    if return_decisions:
        return accuracy, _scatter_decisions(ties_to_first_class(dec), folds, n_scans)
    return accuracy


def permutation_accuracies(
    X: np.ndarray,
    label_sets: np.ndarray,
    spheres: sp.spmatrix,
    folds: list[tuple[np.ndarray, np.ndarray]],
    *,
    shrinkage: str | float = "auto",
) -> np.ndarray:
    """:func:`searchlight_accuracies` for many label vectors (permutations) at once.

    The data are checked, centred and transposed once.

    Parameters
    ----------
    X, spheres, folds, shrinkage
        As in :func:`searchlight_accuracies`.
    label_sets : numpy.ndarray of shape (n_sets, n_scans)
        One label vector per row, all with the same two classes.

    Returns
    -------
    numpy.ndarray of shape (n_sets, n_spheres, n_folds)
    """
    code = check_shrinkage(shrinkage)
    spheres, folds, designs = label_set_designs(X, label_sets, spheres, folds,
                                                "LinearDiscriminantAnalysis")
    return np.stack([_accuracies(design, spheres, folds, code, np.empty((0, 0)), False)
                     for design in designs])


def _accuracies(design: dict, spheres: sp.csr_matrix, folds, code: float, dec: np.ndarray,
                want: bool) -> np.ndarray:
    """The kernel on a design (decisions into ``dec`` if ``want``)."""
    remap = design["remap"]
    train_ptr, train_idx = _train_arrays(design["y"], [remap[tr] for tr, _ in folds])
    return _kernel(design["Xt"], spheres.indptr.astype(np.int64),
                   spheres.indices.astype(np.int64), design["atom"], design["atom_class"],
                   design["in_train"], train_ptr, train_idx, design["test_ptr"],
                   design["test_idx"], design["y"], code, dec, bool(want))


def check_shrinkage(shrinkage) -> float:
    """``"auto"`` or a float in [0, 1] as the kernel's code (-1 for auto).

    Raises
    ------
    nidecode.errors.InputError
        For any other value.
    """
    if isinstance(shrinkage, str) and shrinkage == "auto":
        return _AUTO
    try:
        value = float(shrinkage)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(shrinkage, (bool, str)) or not 0.0 <= value <= 1.0:
        raise InputError(f"shrinkage must be 'auto' or a number in [0, 1], got {shrinkage!r}")
    return value
