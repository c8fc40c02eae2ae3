"""Problems and comparisons shared by the solver tests (not a test module)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.model_selection import GroupKFold


def synthetic_searchlight(seed: int, n_scans=72, n_vox=40, n_spheres=25, separable=False):
    """Random scans of two alternating classes, five informative voxels, random
    spheres of at least one voxel and six GroupKFold folds:
    ``(X, y, spheres, folds)``."""
    rng = np.random.default_rng(seed)
    y = np.tile([0, 1], n_scans // 2)
    X = rng.standard_normal((n_scans, n_vox)).astype(np.float32)
    X[:, :5] += (1.5 if not separable else 6.0) * (y[:, None] - 0.5)
    dense = rng.random((n_spheres, n_vox)) < 0.15
    dense[np.arange(n_spheres), rng.integers(0, n_vox, n_spheres)] = True
    groups = np.repeat(np.arange(6), n_scans // 6)
    folds = list(GroupKFold(n_splits=6).split(X, y, groups))
    return X, y, sp.csr_matrix(dense), folds


def agreement(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Fraction of spheres with the same mean accuracy, and mean absolute difference."""
    return float(np.mean(np.isclose(a, b, rtol=0, atol=1e-9))), float(np.mean(np.abs(a - b)))


def unbalanced_searchlight(seed: int, n_spheres=25):
    """:func:`synthetic_searchlight` with class 1 made rare (one scan in three
    kept) and random folds of unequal sizes: ``(X, y, spheres, folds)``."""
    X, y, spheres, _ = synthetic_searchlight(seed, n_spheres=n_spheres)
    rng = np.random.default_rng(seed + 100)
    ones = np.flatnonzero(y == 1)
    keep = np.setdiff1d(np.arange(len(y)), ones[np.arange(len(ones)) % 3 != 0])
    X, y = X[keep], y[keep]
    groups = rng.integers(0, 5, len(y))
    folds = [(np.flatnonzero(groups != g), np.flatnonzero(groups == g)) for g in range(5)]
    return X, y, spheres, [fold for fold in folds if fold[1].size
                           and len(np.unique(y[fold[0]])) == 2]
