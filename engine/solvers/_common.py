"""Private helpers of the searchlight solvers: input checks, labels, kernel arrays.

One copy for :mod:`nidecode.solvers.batched`, :mod:`nidecode.solvers.libsvm`
and :mod:`nidecode.solvers.reference`, so that the three accept the same
inputs, raise the same errors and put training scans in libsvm's order. The
Gram matrix is summed and stored as libsvm does (float64, then float32 as its
``Qfloat``); numba compiles those kernels on first use and caches them next to
this file.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numba import njit

from nidecode._validation import check_C, check_class_weight, check_float
from nidecode.errors import InputError


def _check_c_tol(C: float, tol: float) -> tuple[float, float]:
    """C and tol as floats; a ParameterError unless both are finite and positive."""
    return (check_C(C, "searchlight_accuracies"),
            check_float(tol, "tol", "searchlight_accuracies", positive=True))


def _check_class_weight(class_weight) -> bool:
    """Whether the classes are weighted: ``None``/``"none"`` or ``"balanced"``, else a
    ParameterError."""
    return check_class_weight(class_weight, "searchlight_accuracies") == "balanced"


def _class_bounds(C: float, y01: np.ndarray, balanced: bool) -> tuple[float, float]:
    """The upper bounds of ``classes_[0]`` and ``classes_[1]`` on the scans ``y01`` (0/1):
    ``C`` each, or with balanced weights ``C * n / (2 * n_class)`` as ``SVC`` hands
    libsvm ``C * class_weight_`` (``compute_class_weight``'s arithmetic)."""
    if not balanced:
        return C, C
    counts = np.bincount(y01, minlength=2).astype(np.float64)
    weights = len(y01) / (2 * counts)
    return C * float(weights[0]), C * float(weights[1])


def _fold_bounds(C: float, y: np.ndarray, folds, balanced: bool) -> np.ndarray:
    """Per fold, the class upper bounds of its training scans: shape (n_folds, 2)."""
    _, y01 = _encode_binary(y)
    return np.array([_class_bounds(C, y01[train], balanced) for train, _ in folds],
                    dtype=np.float64).reshape(len(folds), 2)


def _encode_binary(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Classes (sorted, as SVC's ``classes_``) and y as 0/1 indices into them."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise InputError(f"y must be 1D, got shape {y.shape}")
    classes, y01 = np.unique(y, return_inverse=True)
    if len(classes) != 2:
        raise InputError(
            f"y must have exactly 2 classes for a binary SVM, got {len(classes)}: {classes[:5]}"
        )
    return classes, y01.astype(np.int64)


def _group_train(train: np.ndarray, y01: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Training indices in libsvm's order (classes_[0] first) and their ±1 labels."""
    yt = y01[train]
    if yt.min() == yt.max():
        raise InputError(
            "a training fold contains a single class; SVC needs both classes in every "
            "training set (choose folds that keep both, e.g. leave-one-run-out)"
        )
    order = np.concatenate([train[yt == 0], train[yt == 1]])
    sign = np.where(y01[order] == 0, 1, -1).astype(np.int8)
    return order.astype(np.int64), sign


def _prepare(
    X: np.ndarray, y: np.ndarray, spheres: sp.spmatrix, folds
) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix, list[tuple[np.ndarray, np.ndarray]]]:
    """Validate inputs; keep only the scans used by some fold (reindexed)."""
    X = np.asarray(X)
    if X.ndim != 2:
        raise InputError(f"X must be 2D (n_scans, n_voxels), got shape {X.shape}")
    if not np.issubdtype(X.dtype, np.floating):
        X = X.astype(np.float64)
    if not np.all(np.isfinite(X)):
        raise InputError("X contains NaN or infinite values; clean or mask them first")
    y = np.asarray(y)
    if y.shape != (X.shape[0],):
        raise InputError(f"y has shape {y.shape}; expected ({X.shape[0]},) like X's rows")
    # A private canonical copy: sorted voxels fix the Gram's summation order.
    spheres = sp.csr_matrix(spheres, copy=True)
    spheres.sum_duplicates()
    spheres.sort_indices()
    if spheres.shape[1] != X.shape[1]:
        raise InputError(
            f"spheres has {spheres.shape[1]} voxel columns but X has {X.shape[1]} voxels"
        )
    if np.any(np.diff(spheres.indptr) == 0):
        raise InputError("some spheres are empty; every sphere needs at least one voxel")
    folds = [(np.asarray(tr, dtype=np.int64), np.asarray(te, dtype=np.int64)) for tr, te in folds]
    if not folds:
        raise InputError("folds is empty; give at least one (train, test) pair")
    for k, (tr, te) in enumerate(folds):
        for name, idx in (("train", tr), ("test", te)):
            if idx.ndim != 1 or (idx.size and (idx.min() < 0 or idx.max() >= X.shape[0])):
                raise InputError(f"fold {k}: {name} indices must be 1D in [0, {X.shape[0]})")
        if tr.size == 0 or te.size == 0:
            raise InputError(f"fold {k} has an empty train or test set")
    return X, y, spheres, folds


def _used_scans(folds) -> np.ndarray:
    """The scans some fold trains or tests on, sorted: the kernels' scan indices."""
    return np.unique(np.concatenate([np.concatenate(fold) for fold in folds]))


def _decision_array(n_spheres: int, n_used: int, wanted: bool) -> np.ndarray:
    """The kernels' decision output: NaN-filled (n_spheres, n_used) when wanted,
    else an empty array that they never touch (no extra work)."""
    if not wanted:
        return np.empty((0, 0))
    return np.full((n_spheres, n_used), np.nan)


def _scatter_decisions(decisions: np.ndarray, folds, n_scans: int) -> np.ndarray:
    """Decisions over used scans -> (n_spheres, n_scans), NaN for scans no fold uses."""
    out = np.full((decisions.shape[0], n_scans), np.nan)
    out[:, _used_scans(folds)] = decisions
    return out


def _kernel_arrays(X: np.ndarray, y: np.ndarray, spheres: sp.csr_matrix, folds) -> tuple:
    """The searchlight kernels' arrays: ``Xt, y01, sphere pointers and voxels,
    then per fold the training scans in libsvm's order, their signs and the
    test scans`` (pointer + flat index arrays), with scans reindexed to those
    some fold uses (only they enter the Gram matrices)."""
    _, y01 = _encode_binary(y)
    used = _used_scans(folds)
    remap = np.full(X.shape[0], -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    tr_parts, sign_parts, te_parts = [], [], []
    for tr, te in folds:
        order, sign = _group_train(tr, y01)
        tr_parts.append(remap[order])
        sign_parts.append(sign)
        te_parts.append(remap[te])

    def pointers(parts):
        return np.concatenate([[0], np.cumsum([len(part) for part in parts])]).astype(np.int64)

    # Transposed (voxel-major) so a sphere's voxel rows are contiguous for the Gram.
    Xt = np.ascontiguousarray(X[used].T, dtype=np.float64)
    return (Xt, y01[used], spheres.indptr.astype(np.int64), spheres.indices.astype(np.int64),
            pointers(tr_parts), np.concatenate(tr_parts), np.concatenate(sign_parts),
            pointers(te_parts), np.concatenate(te_parts))


@njit(cache=True)
def _gram(Xt, cols, K):
    """K = Xs @ Xs.T for Xs = X[:, cols] (``Xt`` is X transposed), float64.

    Sums over voxels in order, like libsvm's dense dot; one row of the lower
    triangle at a time (it stays in cache while the voxels pass, four at a
    time), then mirrored.
    """
    n = Xt.shape[1]
    d = cols.shape[0]
    for a in range(n):
        Ka = K[a]
        for b in range(a + 1):
            Ka[b] = 0.0
        k = 0
        while k + 4 <= d:  # each sum still adds its terms in order
            r0, r1, r2, r3 = Xt[cols[k]], Xt[cols[k + 1]], Xt[cols[k + 2]], Xt[cols[k + 3]]
            x0, x1, x2, x3 = r0[a], r1[a], r2[a], r3[a]
            for b in range(a + 1):
                Ka[b] = (((Ka[b] + x0 * r0[b]) + x1 * r1[b]) + x2 * r2[b]) + x3 * r3[b]
            k += 4
        while k < d:
            row = Xt[cols[k]]
            xa = row[a]
            for b in range(a + 1):
                Ka[b] += xa * row[b]
            k += 1
    for a in range(n):
        for b in range(a):
            K[b, a] = K[a, b]


@njit(cache=True)
def _to_qfloat(Kd, Kf):
    """Kf = float32(Kd): the kernel values as libsvm stores them (``Qfloat``)."""
    n = Kd.shape[0]
    for a in range(n):
        for b in range(n):
            Kf[a, b] = np.float32(Kd[a, b])
