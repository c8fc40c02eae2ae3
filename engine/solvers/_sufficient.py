"""Private helpers of the closed-form searchlight solvers (GaussianNB, shrinkage LDA).

Both classifiers are functions of per-class sums over the training scans, so a
fold's statistics are sums over *atoms*: the scans grouped by class and by the
folds that train on them (leave one run out: one atom per run and class). Every
fold's training set of a class is a union of atoms, so per-atom sums, computed
once, give every fold's by additions instead of a pass over its scans.

X is centred on the mean of the used scans first: both classifiers' decisions
are invariant to a shift of the data, and the centred sums lose less to
rounding when the fold's statistics are formed from them.
"""

from __future__ import annotations

import numpy as np

from nidecode.errors import InputError
from nidecode.solvers._common import _encode_binary, _used_scans


def _check_two_classes(folds, y01: np.ndarray, estimator: str) -> None:
    """An InputError naming the fold whose training set holds one class."""
    for k, (train, _test) in enumerate(folds):
        labels = y01[train]
        if labels.min() == labels.max():
            raise InputError(
                f"fold {k}: its training scans are all of one class; {estimator} needs both "
                "classes in every training set (choose folds that keep both, e.g. "
                "leave-one-run-out)"
            )


def fold_design(X: np.ndarray, y: np.ndarray, folds, estimator: str) -> dict:
    """The closed-form kernels' arrays: centred data, atoms and folds.

    Parameters
    ----------
    X : numpy.ndarray of shape (n_scans, n_voxels)
        Checked by :func:`nidecode.solvers._common._prepare`.
    y : numpy.ndarray of shape (n_scans,)
        Two classes.
    folds : list of (numpy.ndarray, numpy.ndarray)
        Checked ``(train, test)`` index pairs.
    estimator : str
        The classifier's name, for the error message.

    Returns
    -------
    dict
        ``Xt`` (n_voxels, n_used) centred, voxel-major; ``y`` (n_used,) 0/1;
        ``atom`` (n_used,) each scan's atom; ``atom_class`` (n_atoms,);
        ``in_train`` (n_folds, n_atoms) bool; ``test_ptr``, ``test_idx``
        (the test scans of fold f are ``test_idx[test_ptr[f]:test_ptr[f+1]]``,
        indices into the used scans); ``used`` (the used scans' indices in X).
    """
    _, y01 = _encode_binary(y)
    _check_two_classes(folds, y01, estimator)
    used = _used_scans(folds)
    remap = np.full(X.shape[0], -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    n_used = len(used)
    # A scan's signature: its class and, per fold, whether the fold trains on it.
    membership = np.zeros((n_used, len(folds) + 1), dtype=np.int8)
    membership[:, 0] = y01[used]
    for f, (train, _test) in enumerate(folds):
        membership[remap[train], f + 1] = 1
    signatures, atom = np.unique(membership, axis=0, return_inverse=True)
    tests = [remap[test] for _, test in folds]
    Xu = X[used].astype(np.float64)
    Xu -= Xu.mean(axis=0)
    return {
        "Xt": np.ascontiguousarray(Xu.T),
        "y": y01[used].astype(np.int64),
        "atom": atom.ravel().astype(np.int64),
        "atom_class": signatures[:, 0].astype(np.int64),
        "in_train": np.ascontiguousarray(signatures[:, 1:].T.astype(np.bool_)),
        "test_ptr": np.concatenate([[0], np.cumsum([len(t) for t in tests])]).astype(np.int64),
        "test_idx": np.concatenate(tests).astype(np.int64),
        "used": used,
    }


def atom_sums(Xt: np.ndarray, atom: np.ndarray, n_atoms: int) -> tuple[np.ndarray, np.ndarray]:
    """Per atom and voxel: the sum and the sum of squares of the centred data.

    Returns two arrays of shape (n_atoms, n_voxels).
    """
    onehot = np.zeros((n_atoms, Xt.shape[1]))
    onehot[atom, np.arange(Xt.shape[1])] = 1.0
    return onehot @ Xt.T, onehot @ (Xt * Xt).T


def fold_class_counts(design: dict) -> np.ndarray:
    """Training scans per fold and class, shape (n_folds, 2)."""
    n_atoms = len(design["atom_class"])
    per_atom = np.bincount(design["atom"], minlength=n_atoms).astype(np.float64)
    counts = np.zeros((design["in_train"].shape[0], 2))
    for c in (0, 1):
        counts[:, c] = design["in_train"][:, design["atom_class"] == c] @ per_atom[
            design["atom_class"] == c]
    return counts
