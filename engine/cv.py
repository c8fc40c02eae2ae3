"""Cross-validation splits, exactly as scikit-learn makes them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import KFold, LeaveOneGroupOut

from nidecode._validation import LOSO, check_cv, is_loso  # noqa: F401 (LOSO, is_loso: here too)
from nidecode.errors import InputError


@dataclass(frozen=True)
class Fold:
    """One split: its id (the held-out run for leave-one-run-out) and indices."""

    fold: int
    train: np.ndarray
    test: np.ndarray


def parse_cv(text: str, function: str = "parse_cv") -> str:
    """Check a ``cv`` value (``logo`` or ``kfold:K``) and return it normalised.

    Raises :class:`~nidecode.errors.ParameterError` naming ``function``'s
    ``cv`` parameter (see :func:`nidecode._validation.check_cv`).
    """
    return check_cv(text, function)


def make_folds(runs: np.ndarray, cv: str) -> list[Fold]:
    """Split samples into folds.

    Parameters
    ----------
    runs : numpy.ndarray of int, shape (n_samples,)
        Run of each sample.
    cv : str
        ``"logo"``: leave one run out, as ``LeaveOneGroupOut`` (folds in the
        order of the sorted runs, ``fold`` = the held-out run). ``"kfold:K"``:
        ``KFold(n_splits=K)`` without shuffling (``fold`` = 0..K-1); it
        ignores runs, so neighbouring scans of one run fall on both sides and
        the accuracy is optimistic.

    Returns
    -------
    list of Fold
    """
    cv = check_cv(cv, "make_folds")
    dummy = np.zeros((len(runs), 1))
    if cv == "logo":
        held_out = np.unique(runs)
        splits = LeaveOneGroupOut().split(dummy, groups=runs)
        return [Fold(int(run), train, test) for run, (train, test) in zip(held_out, splits,
                                                                         strict=True)]
    n_splits = int(cv.split(":")[1])
    if n_splits > len(runs):
        raise InputError(f"--cv {cv}: {n_splits} folds for {len(runs)} samples; use fewer folds")
    splits = KFold(n_splits=n_splits).split(dummy)
    return [Fold(index, train, test) for index, (train, test) in enumerate(splits)]



#: ``cv`` of cross-decoding without splits: train on every training scan, test on every test scan.
NO_CV = "none"


def make_cross_folds(scans: np.ndarray, runs: np.ndarray, is_train: np.ndarray,
                     cv: str) -> list[Fold]:
    """Cross-decoding splits: train on training samples, test on the held-out part's test samples.

    A scan of a category that is both a training and a test category is two
    samples (one of each role); both fall in the same part, so a fold never
    trains and tests on one scan.

    Parameters
    ----------
    scans : numpy.ndarray of int, shape (n_samples,)
        The subject's scan of each sample.
    runs : numpy.ndarray of int, shape (n_samples,)
        Run of each sample.
    is_train : numpy.ndarray of bool, shape (n_samples,)
        Training samples; the others are test samples.
    cv : str
        ``"logo"``: a fold per run that has test samples (``fold`` = that
        run), trained on the training samples of the other runs and tested on
        the run's test samples. ``"kfold:K"``: :func:`make_folds`'s K-fold
        split of the scans, each part's test samples tested on the other
        parts' training samples. ``"none"``: one fold (``fold`` = 0) of every
        training sample against every test sample.

    Returns
    -------
    list of Fold
        Parts without test samples are no fold.
    """
    if cv == NO_CV:
        return [Fold(0, np.flatnonzero(is_train), np.flatnonzero(~is_train))]
    distinct, first = np.unique(scans, return_index=True)
    part = np.empty(len(distinct), int)
    for fold in make_folds(runs[first], cv):
        part[fold.test] = fold.fold
    groups = part[np.searchsorted(distinct, scans)]
    folds = []
    for group in np.unique(groups):
        test = np.flatnonzero(~is_train & (groups == group))
        if len(test):
            folds.append(Fold(int(group), np.flatnonzero(is_train & (groups != group)), test))
    return folds


def make_subject_folds(groups: np.ndarray, trainable: np.ndarray,
                       testable: np.ndarray) -> list[Fold]:
    """Leave-one-subject-out splits: test on a subject's test samples, train on the others'.

    With every sample both trainable and testable this is
    ``LeaveOneGroupOut().split(X, y, groups)``.

    Parameters
    ----------
    groups : numpy.ndarray of int, shape (n_samples,)
        The subject (its position) of each sample.
    trainable, testable : numpy.ndarray of bool, shape (n_samples,)
        Samples a fold may train on, and test on (cross-decoding: the
        training and the test categories' samples).

    Returns
    -------
    list of Fold
        One per subject with test samples, in the order of ``groups``' values
        (``fold`` = that value).
    """
    folds = []
    for group in np.unique(groups):
        test = np.flatnonzero(testable & (groups == group))
        if len(test):
            folds.append(Fold(int(group), np.flatnonzero(trainable & (groups != group)), test))
    return folds
