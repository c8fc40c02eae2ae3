"""Cross-validation splits, exactly as scikit-learn makes them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import KFold, LeaveOneGroupOut

from nidecode._validation import check_cv
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
