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

from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp

from nidecode.errors import InputError
from nidecode.solvers._common import _encode_binary, _prepare, _used_scans


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


def centred_data(X: np.ndarray, folds) -> dict:
    """The label-free part of :func:`fold_design`: the used scans, centred, voxel-major.

    Returns
    -------
    dict
        ``Xt`` (n_voxels, n_used), ``used`` (the used scans' indices in X),
        ``remap`` (X's scan index -> used index, -1 if unused).
    """
    used = _used_scans(folds)
    remap = np.full(X.shape[0], -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    Xu = X[used].astype(np.float64)
    Xu -= Xu.mean(axis=0)
    return {"Xt": np.ascontiguousarray(Xu.T), "used": used, "remap": remap}


def label_design(data: dict, y: np.ndarray, folds, estimator: str) -> dict:
    """:func:`fold_design` from :func:`centred_data`'s arrays (one pass over X
    for any number of label permutations)."""
    _, y01 = _encode_binary(y)
    _check_two_classes(folds, y01, estimator)
    used, remap = data["used"], data["remap"]
    # A scan's signature: its class and, per fold, whether the fold trains on it.
    membership = np.zeros((len(used), len(folds) + 1), dtype=np.int8)
    membership[:, 0] = y01[used]
    for f, (train, _test) in enumerate(folds):
        membership[remap[train], f + 1] = 1
    signatures, atom = np.unique(membership, axis=0, return_inverse=True)
    tests = [remap[test] for _, test in folds]
    return {
        **data,
        "y": y01[used].astype(np.int64),
        "atom": atom.ravel().astype(np.int64),
        "atom_class": signatures[:, 0].astype(np.int64),
        "in_train": np.ascontiguousarray(signatures[:, 1:].T.astype(np.bool_)),
        "test_ptr": np.concatenate([[0], np.cumsum([len(t) for t in tests])]).astype(np.int64),
        "test_idx": np.concatenate(tests).astype(np.int64),
    }


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
        indices into the used scans); ``used`` (the used scans' indices in X)
        and ``remap`` (X's scan index -> used index, -1 if unused).
    """
    return label_design(centred_data(X, folds), y, folds, estimator)


def label_set_designs(X: np.ndarray, label_sets, spheres, folds,
                      estimator: str) -> tuple[sp.csr_matrix, list, Iterator[dict]]:
    """Many labellings of one data set: the inputs checked and the data centred once.

    Returns the checked spheres and folds, and the :func:`label_design` of
    each row of ``label_sets`` (made one at a time, as they are consumed).
    """
    label_sets = check_label_sets(label_sets, np.shape(X)[0])
    X, _, spheres, folds = _prepare(X, label_sets[0], spheres, folds)
    data = centred_data(X, folds)
    return spheres, folds, (label_design(data, y, folds, estimator) for y in label_sets)


def check_label_sets(label_sets, n_scans: int) -> np.ndarray:
    """Label vectors as a 2D array (n_sets, n_scans) of one pair of classes."""
    label_sets = np.asarray(label_sets)
    if label_sets.ndim != 2 or label_sets.shape[1] != n_scans or not len(label_sets):
        raise InputError(f"label_sets has shape {label_sets.shape}; expected (n_permutations, "
                         f"{n_scans}): one label vector per row, one label per scan of X")
    classes = np.unique(label_sets[0])
    for row in label_sets[1:]:
        if not np.array_equal(np.unique(row), classes):
            raise InputError("label_sets: every row must hold the same two classes (a "
                             "permutation of the labels)")
    return label_sets


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


def ties_to_first_class(decisions: np.ndarray) -> np.ndarray:
    """Decisions whose sign follows the engine's rule (``>= 0``: ``classes_[1]``, as
    SVC's) for estimators that predict ``classes_[0]`` at an exact zero (GaussianNB,
    LDA): a zero becomes the negative float closest to zero, every rank is kept."""
    decisions[decisions == 0] = -np.finfo(np.float64).smallest_subnormal
    return decisions
