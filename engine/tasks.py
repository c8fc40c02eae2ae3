"""Work done on the workers: pure functions of store paths and job lists.

Workers read the store themselves; only small job descriptions go in and
small results come out, so no time series travels through the client or
the scheduler. A task depends only on its arguments, so a task lost with
its worker can be recomputed elsewhere with the same result.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import scipy.sparse as sp

from engine import store
from engine.cv import make_folds
from engine.plan import REST, PairJob
from engine.results import PairResult, SphereScores
from engine.solvers.batched import searchlight_accuracies, searchlight_accuracies_sklearn
from engine.solvers.exact import cross_validate_svc


@lru_cache(maxsize=2)
def _load_subject(store_path: str, subject: str,
                  checksum: str) -> tuple[np.ndarray, store.Design]:
    # Cached per worker process: the tasks of one subject run one after the
    # other on a worker and read its time series once (checksum in the key,
    # so a re-ingested subject is read again).
    X = store.read_timeseries(store_path, subject, verify=checksum)
    return X, store.read_design(store_path, subject)


def decode_pairs(store_path: str, jobs: Sequence[PairJob], checksum: str, cv: str,
                 C: float) -> list[PairResult]:
    """Cross-validate a linear SVM for each job (one subject, several pairs).

    Parameters
    ----------
    store_path : str
        Store path or URL reachable from the worker.
    jobs : sequence of PairJob
        Pairs of one subject.
    checksum : str
        The subject's checksum recorded at ingest; verified on read.
    cv : str
        ``"logo"`` or ``"kfold:K"``.
    C : float
        SVM penalty.

    Returns
    -------
    list of PairResult
    """
    X, design = _load_subject(store_path, jobs[0].subject, checksum)
    results = []
    for job in jobs:
        selected = np.flatnonzero(np.isin(design.labels, (job.class_a, job.class_b)))
        runs = design.runs[selected]
        folds = make_folds(runs, cv)
        # Leave-one-run-out: also score every categorised scan of the held-out
        # run, so that the pairs' votes give one-vs-one multiclass predictions.
        extra = ([np.flatnonzero((design.runs == fold.fold) & (design.labels != REST))
                  for fold in folds] if cv == "logo" else [np.empty(0, int) for _ in folds])
        scores = cross_validate_svc(X[selected], design.labels[selected], folds, C,
                                    extra=[X[scans] for scans in extra])
        results.append(PairResult(
            subject=job.subject, class_a=job.class_a, class_b=job.class_b,
            folds=np.array([fold.fold for fold in folds]), accuracy=scores.accuracy,
            n_train=np.array([len(fold.train) for fold in folds]),
            n_test=np.array([len(fold.test) for fold in folds]), coef=scores.coef,
            test_scans=np.concatenate(extra), decision=np.concatenate(scores.decision)))
    return results


def searchlight_spheres(store_path: str, key: tuple[str, ...], checksum: str,
                        voxels: np.ndarray, spheres: sp.csr_matrix, cv: str, C: float,
                        solver: str) -> SphereScores:
    """Cross-validated accuracy of every sphere of a batch.

    Parameters
    ----------
    store_path : str
    key : tuple of str
        (subject, class_a, class_b, batch number).
    checksum : str
        The subject's checksum (part of the cache key of its design).
    voxels : numpy.ndarray of int
        The voxel block the spheres need (columns of the stored time series).
    spheres : scipy.sparse.csr_matrix, shape (n_spheres, len(voxels))
        Sphere membership within that block.
    cv : str
    C : float
    solver : {"batched", "sklearn"}

    Returns
    -------
    SphereScores
    """
    subject, class_a, class_b = key[:3]
    design = _read_design(store_path, subject, checksum)
    selected = np.flatnonzero(np.isin(design.labels, (class_a, class_b)))
    X = store.read_timeseries(store_path, subject, voxels=voxels)[selected]
    folds = make_folds(design.runs[selected], cv)
    splits = [(fold.train, fold.test) for fold in folds]
    fit = searchlight_accuracies if solver == "batched" else searchlight_accuracies_sklearn
    accuracy = fit(X, design.labels[selected], spheres, splits, C=C)
    return SphereScores(key, accuracy, np.array([fold.fold for fold in folds]))


@lru_cache(maxsize=8)
def _read_design(store_path: str, subject: str, checksum: str) -> store.Design:
    return store.read_design(store_path, subject)
