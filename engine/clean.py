"""Signal cleaning of masked time series: dummy scans, detrending, z-scoring.

Pure array functions, no I/O. Detrending and z-scoring are delegated to
:func:`nilearn.signal.clean`, so the cleaned signal is bit-identical to what
nilearn produces for the same settings.
"""

from __future__ import annotations

import warnings

import numpy as np
from nilearn import signal

from nidecode._validation import check_drop_scans, check_standardize
from nidecode.errors import InputError

#: nilearn's warnings for signals it leaves alone (constant or single-scan ones).
_CONSTANT_SIGNAL_WARNINGS = ("Standardization of 3D signal has been requested",
                             "Detrending of 3D signal has been requested")


def drop_dummy_scans(runs: np.ndarray, n_dummy: int, source: str | None = None) -> np.ndarray:
    """Boolean index of the scans kept after dropping the first scans of each run.

    Parameters
    ----------
    runs : numpy.ndarray of int, shape (n_scans,)
        Run of each scan.
    n_dummy : int
        Number of scans dropped at the start of every run; fewer than the
        scans of the shortest run.
    source : str, optional
        The file the runs come from, named in the message.

    Returns
    -------
    numpy.ndarray of bool, shape (n_scans,)
    """
    n_dummy = check_drop_scans(n_dummy, "drop_dummy_scans")
    keep = np.ones(len(runs), dtype=bool)
    if n_dummy == 0:
        return keep
    ids, lengths = np.unique(runs, return_counts=True)
    if (lengths <= n_dummy).any():
        short = int(np.argmin(lengths))
        where = f" of {source}" if source is not None else ""
        raise InputError(f"--drop-scans {n_dummy}: run {ids[short]}{where} has only "
                         f"{lengths[short]} scans; drop fewer scans than the shortest run holds")
    for run in ids:
        keep[np.flatnonzero(runs == run)[:n_dummy]] = False
    return keep


def check_run_lengths(runs: np.ndarray, source: str, why: str) -> None:
    """Refuse a run left with fewer than 2 scans (it cannot be z-scored).

    Parameters
    ----------
    runs : numpy.ndarray of int, shape (n_scans,)
        Run of each scan kept.
    source : str
        The file the runs come from, named in the message.
    why : str
        What removed scans (e.g. "--drop-scans 5"), named in the message.
    """
    ids, lengths = np.unique(runs, return_counts=True)
    if (lengths < 2).any():
        short = int(np.argmin(lengths))
        raise InputError(f"{source}: run {ids[short]} keeps {lengths[short]} scan after "
                         f"{why}; a run with fewer than 2 scans cannot be z-scored: drop "
                         f"fewer scans")


def clean_signal(X: np.ndarray, runs: np.ndarray, standardize: str = "run",
                 detrend: bool = False, confounds: np.ndarray | None = None) -> np.ndarray:
    """Detrend and z-score masked time series the way nilearn does.

    Parameters
    ----------
    X : numpy.ndarray, shape (n_scans, n_voxels)
        Masked signal.
    runs : numpy.ndarray of int, shape (n_scans,)
        Run of each scan. The runs may come in any order (1, 10, 2, ...):
        every scan is cleaned with the other scans of its run and stays in
        its row.
    standardize : {"run", "global", "none"}
        ``"run"`` z-scores each voxel within each run (and detrends each run);
        ``"global"`` z-scores over all scans, exactly like
        ``NiftiMasker(standardize="zscore_sample")`` (detrending, if asked, is
        then also over all scans, as NiftiMasker does); ``"none"`` leaves the
        scale alone.
    detrend : bool
        Remove a linear trend (per run, except with ``"global"``).
    confounds : numpy.ndarray, shape (n_scans, n_confounds), optional
        Nuisance regressors (e.g. fMRIPrep's motion parameters), regressed
        out within each run by ``nilearn.signal.clean(X, runs=runs,
        confounds=confounds)``, whatever ``standardize`` is; with
        ``"global"``, the z-scoring over all scans follows.

    Returns
    -------
    numpy.ndarray, shape (n_scans, n_voxels), same dtype as ``X``

    Notes
    -----
    A voxel constant over a run (or over all scans) has zero variance;
    nilearn then divides by one, so it becomes all zeros instead of NaN.
    """
    standardize = check_standardize(standardize, "clean_signal")
    if confounds is not None:
        return _clean_with_confounds(X, runs, standardize, detrend, confounds)
    if standardize == "none" and not detrend:
        return X
    zscore = None if standardize == "none" else "zscore_sample"
    if standardize == "global":
        return _nilearn_clean(X, None, detrend=detrend, standardize=zscore,
                              standardize_confounds=False)
    return _per_run(X, runs, None, detrend=detrend, standardize=zscore,
                    standardize_confounds=False)


def _per_run(X: np.ndarray, runs: np.ndarray, confounds: np.ndarray | None,
             **options) -> np.ndarray:
    # nilearn.signal.clean(runs=...) returns the rows grouped by sorted run
    # value, whatever their order in X. Sort the scans by run (stably: each
    # run keeps its time order), clean, then put every row back in its place.
    runs = np.asarray(runs)
    order = np.argsort(runs, kind="stable")
    cleaned = _nilearn_clean(X[order], runs[order],
                             confounds=None if confounds is None else confounds[order],
                             **options)
    restored = np.empty_like(cleaned)
    restored[order] = cleaned
    return restored


def _nilearn_clean(X: np.ndarray, runs: np.ndarray | None, **options) -> np.ndarray:
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        # Constant voxels: nilearn skips them with these warnings (and divides
        # by their zero mean in a check); ingest reports them itself.
        for message in _CONSTANT_SIGNAL_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=UserWarning)
        return signal.clean(X, runs=runs, ensure_finite=False, **options)


def _clean_with_confounds(X: np.ndarray, runs: np.ndarray, standardize: str, detrend: bool,
                          confounds: np.ndarray) -> np.ndarray:
    confounds = np.asarray(confounds, dtype=float)
    if confounds.shape[0] != len(X):
        raise InputError(f"confounds: {confounds.shape[0]} rows for {len(X)} scans; give one "
                         f"row of confounds per scan")
    per_run = standardize != "global"
    # standardize_confounds (nilearn's default) centres the confounds, so
    # the regression keeps each run's mean and the fit has an intercept.
    X = _per_run(X, runs, confounds, detrend=detrend and per_run,
                 standardize="zscore_sample" if standardize == "run" else None,
                 standardize_confounds=True)
    if per_run:
        return X
    return clean_signal(X, runs, standardize="global", detrend=detrend)


def constant_voxels(X: np.ndarray, runs: np.ndarray) -> np.ndarray:
    """Boolean index of the voxels that are constant over at least one run."""
    constant = np.zeros(X.shape[1], dtype=bool)
    for run in np.unique(runs):
        block = X[runs == run]
        constant |= np.all(block == block[:1], axis=0)
    return constant
