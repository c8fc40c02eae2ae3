"""Work done on the workers: pure functions of store paths and job lists.

Workers read the store themselves, always the version of a subject whose
checksum the run was planned with; only small job descriptions go in and
small results come out, so no time series travels through the client or
the scheduler. A task depends only on its arguments, so a task lost with
its worker can be recomputed elsewhere with the same result.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse as sp

from nidecode import store
from nidecode._validation import METRICS
from nidecode.analyses.plan import REST, PairJob, pair_samples, permutation_groups
from nidecode.results import PairResult, PermutationScores, SphereScores
from nidecode.solvers import sphere_permutation_solver, sphere_solver
from nidecode.solvers.estimators import cross_validate_estimator, make_estimator
from nidecode.solvers.libsvm import decision_function_gram, fit_linear_svm_gram
from nidecode.solvers.svc import MAX_KERNEL_SAMPLES, cross_validate_svc, linear_kernel
from nidecode.stats import (
    haufe_pattern,
    pair_fold_metrics,
    permute_within_runs,
    sphere_fold_metrics,
)


@lru_cache(maxsize=2)
def _load_subject(store_path: str, subject: str,
                  checksum: str) -> tuple[np.ndarray, store.Design]:
    # Cached per worker process: the tasks of one subject run one after the
    # other on a worker and read its time series once. The checksum picks
    # the version the run was planned on, even if the subject was ingested
    # again since (see nidecode.store).
    X = store.read_timeseries(store_path, subject, verify=checksum)
    return X, store.read_design(store_path, subject, checksum=checksum)


def decode_pairs(store_path: str, jobs: Sequence[PairJob], checksum: str, cv: str,
                 C: float, class_weight: str = "none", classifier: str = "svc",
                 shrinkage: str | float | None = None) -> list[PairResult]:
    """Cross-validate a classifier (default: a linear SVM) for each job (one subject, its pairs).

    Parameters
    ----------
    store_path : str
        Store path or URL reachable from the worker.
    jobs : sequence of PairJob
        Pairs of one subject.
    checksum : str
        The subject's checksum recorded at ingest, as planned; the version
        of the subject holding it is read (even if re-ingested since) and
        verified.
    cv : str
        ``"logo"`` or ``"kfold:K"``.
    C : float
        SVM penalty.
    class_weight : {"none", "balanced"}
        ``SVC``'s ``class_weight`` (``"none"``: None).
    classifier : {"svc", "lda", "gnb", "logreg"}
        See :func:`nidecode.solvers.estimators.make_estimator`.
    shrinkage : {None, "auto"} or float
        ``lda`` only.

    Returns
    -------
    list of PairResult
        Every metric of :data:`nidecode._validation.METRICS` per fold, and
        the Haufe pattern of the fold-mean weights on the pair's scans.
    """
    X, design = _load_subject(store_path, jobs[0].subject, checksum)
    samples = [pair_samples(design, job, cv) for job in jobs]
    # The SVM's kernel between the task's scans, computed once for all its pairs
    # and folds (each fold is fitted on its block).
    rows, kernel = (_pairs_kernel(X, design.labels, [scans for scans, _, _ in samples])
                    if classifier == "svc" else (None, None))
    results = []
    for job, (selected, labels, folds) in zip(jobs, samples, strict=True):
        # Leave-one-run-out: also score every categorised scan of the held-out
        # run, so that the pairs' votes give one-vs-one multiclass predictions
        # (not for cross-decoding, whose pairs are tested on other categories).
        extra = ([np.flatnonzero((design.runs == fold.fold) & (design.labels != REST))
                  for fold in folds] if cv == "logo" and not job.is_cross
                 else [np.empty(0, int) for _ in folds])
        pair_kernel = None if kernel is None else _block(kernel, rows, selected)
        scores = _cross_validate(X[selected], labels, folds, C, class_weight, classifier,
                                 shrinkage, extra=[X[scans] for scans in extra],
                                 kernel=pair_kernel)
        metrics = _fold_metrics(labels, folds, scores)
        # The pattern is on the training pair's scans (cross-decoding tests others).
        trained = np.flatnonzero(np.isin(design.labels, (job.class_a, job.class_b)))
        results.append(PairResult(
            subject=job.subject, class_a=job.class_a, class_b=job.class_b,
            folds=np.array([fold.fold for fold in folds]), accuracy=scores.accuracy,
            n_train=np.array([len(fold.train) for fold in folds]),
            n_test=np.array([len(fold.test) for fold in folds]), coef=scores.coef,
            test_scans=np.concatenate(extra), decision=np.concatenate(scores.decision),
            balanced_accuracy=metrics["balanced_accuracy"], roc_auc=metrics["roc_auc"],
            pattern=haufe_pattern(X[trained], scores.coef.mean(axis=0)),
            test_a=job.test_pair[0], test_b=job.test_pair[1]))
    return results


def _pairs_kernel(X: np.ndarray, labels: np.ndarray,
                  scan_sets: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
    """The linear kernel between the scans of each set (a pair's), each entry computed once.

    Returns the sorted scans of all sets and the kernel between them; only the
    blocks between categories that some set holds together are computed
    (the others are NaN): a task of a few pairs pays for those pairs alone.
    No kernel (None) above :data:`~nidecode.solvers.svc.MAX_KERNEL_SAMPLES` scans.
    """
    rows = np.unique(np.concatenate(scan_sets))
    if len(rows) > MAX_KERNEL_SAMPLES:  # too large a matrix: each pair makes its own
        return rows, None
    names, groups = np.unique(labels[rows], return_inverse=True)
    needed = np.zeros((len(names), len(names)), bool)
    for scans in scan_sets:
        present = np.unique(groups[np.searchsorted(rows, scans)])
        needed[np.ix_(present, present)] = True
    return rows, linear_kernel(X[rows], groups, needed)


def _block(kernel: np.ndarray, rows: np.ndarray, scans: np.ndarray) -> np.ndarray:
    """The kernel between ``scans`` (a subset of ``rows``, in their order, repeats kept)."""
    positions = np.searchsorted(rows, scans)
    return kernel.take(positions, axis=0).take(positions, axis=1)


def _svc_class_weight(class_weight: str) -> str | None:
    return None if class_weight == "none" else class_weight


def _cross_validate(X: np.ndarray, y: np.ndarray, folds, C: float, class_weight: str,
                    classifier: str, shrinkage, extra=None, kernel=None):
    """The fold fits of a classifier: SVC on its bit-identical libsvm path (on
    ``kernel``, ``linear_kernel(X)``, if given), others through their
    scikit-learn estimator."""
    if classifier == "svc":
        return cross_validate_svc(X, y, folds, C, extra=extra,
                                  class_weight=_svc_class_weight(class_weight),
                                  kernel=kernel)
    estimator = make_estimator(classifier, C, shrinkage, _svc_class_weight(class_weight))
    return cross_validate_estimator(X, y, folds, estimator, extra=extra)


def _fold_metrics(labels: np.ndarray, folds, scores, metrics=METRICS) -> dict[str, np.ndarray]:
    """Each metric per fold, from the predictions and decision values of cross_validate_svc."""
    y01 = np.unique(labels, return_inverse=True)[1]
    return pair_fold_metrics(y01, [fold.test for fold in folds], scores.predicted,
                             scores.test_decision, metrics)


def searchlight_spheres(store_path: str, keys: Sequence[tuple[str, ...]], checksum: str,
                        voxels: np.ndarray, spheres: sp.csr_matrix, cv: str, C: float,
                        solver: str, metrics: Sequence[str] = ("accuracy",),
                        classifier: str = "svc", shrinkage: str | float | None = None,
                        class_weight: str = "none",
                        test_pairs: Sequence[tuple[str, str] | None] | None = None,
                        ) -> list[SphereScores]:
    """Cross-validated scores of every sphere of a batch, for several pairs.

    The voxel block is read once and serves every pair.

    Parameters
    ----------
    store_path : str
    keys : sequence of tuple of str
        (subject, class_a, class_b, batch number) of each pair to score; one
        subject and one batch of centres.
    checksum : str
        The subject's checksum as planned: every block is read from the
        version holding it (and it is part of the cache key of its design).
    voxels : numpy.ndarray of int
        The voxel block the spheres need (columns of the stored time series).
    spheres : scipy.sparse.csr_matrix, shape (n_spheres, len(voxels))
        Sphere membership within that block.
    cv : str
    C : float
    solver : {"batched", "libsvm", "sklearn"}
        See :data:`SPHERE_SOLVERS`.
    metrics : sequence of str
        Among :data:`nidecode._validation.METRICS`; those besides accuracy are
        computed from the test scans' decision values
        (:func:`nidecode.stats.sphere_fold_metrics`).
    classifier, shrinkage
        The classifier fitted per sphere (:func:`nidecode.solvers.sphere_solver`).
    class_weight : {"none", "balanced"}
        The class weights of ``svc`` and ``logreg`` (``"none"``: None), for every solver.
    test_pairs : sequence of (str, str) or None, optional
        Cross-decoding: per key, the categories tested as ``class_a`` and ``class_b``
        (None: the pair's own scans); the folds are
        :func:`nidecode.analyses.plan.pair_samples`'s.

    Returns
    -------
    list of SphereScores
        One per key, in order.
    """
    design = _verified_design(store_path, keys[0][0], checksum)
    block = store.read_timeseries(store_path, keys[0][0], voxels=voxels, verify=checksum)
    fit = sphere_solver(classifier, solver, C=C, shrinkage=shrinkage,
                        class_weight=_svc_class_weight(class_weight))
    results = []
    for key, test_pair in zip(keys, test_pairs or [None] * len(keys), strict=True):
        selected, labels, _, folds = _sphere_samples(design, key, cv, test_pair)
        others = [metric for metric in metrics if metric != "accuracy"]
        pairs = [(fold.train, fold.test) for fold in folds]
        scores = {}
        if others:
            accuracy, decisions = fit(block[selected], labels, spheres, pairs,
                                      return_decisions=True,
                                      **_rank_options(classifier, solver, others))
            y01 = np.unique(labels, return_inverse=True)[1]
            scores = sphere_fold_metrics(decisions, y01, [fold.test for fold in folds], others)
        else:
            accuracy = fit(block[selected], labels, spheres, pairs)
        results.append(SphereScores(key, accuracy, np.array([fold.fold for fold in folds]),
                                    scores))
    return results


def _rank_options(classifier: str, solver: str, metrics: Sequence[str]) -> dict:
    """``batched`` refits folds whose test decisions nearly tie in rank only for the AUC."""
    batched_svc = classifier == "svc" and solver == "batched"
    return {"rank_margin": 0.0} if batched_svc and "roc_auc" not in metrics else {}


@lru_cache(maxsize=8)
def _verified_design(store_path: str, subject: str, checksum: str) -> store.Design:
    # Tasks that read voxel blocks check the whole subject against its
    # checksum once per worker, then keep only its (small) design. Every
    # read names the checksum: all of a run's blocks come from one version.
    store.read_timeseries(store_path, subject, verify=checksum)
    return store.read_design(store_path, subject, checksum=checksum)


def permutation_accuracies(store_path: str, key: tuple[str, ...], checksum: str, cv: str,
                           C: float, seed: int, indices: Sequence[int], solver: str,
                           metrics: Sequence[str] = ("accuracy",),
                           class_weight: str = "none", classifier: str = "svc",
                           shrinkage: str | float | None = None,
                           test_pair: tuple[str, str] | None = None) -> PermutationScores:
    """Fold scores of one pair under label permutations (ROI decoding).

    Parameters
    ----------
    store_path, checksum, cv, C, class_weight, classifier, shrinkage
        As for :func:`decode_pairs`; classifiers other than ``svc`` are
        refitted per permutation whatever the ``solver``.
    key : tuple of str
        (subject, class_a, class_b, chunk number).
    seed : int
        The run's seed; permutation ``i`` is drawn from it, the subject, the
        pair and ``i`` alone, so any split of the work gives the same null.
    indices : sequence of int
        Permutations to score; -1 is the true labelling.
    solver : {"batched", "libsvm", "sklearn"}
        The Gram matrix is computed once and reused by every permutation
        and fold (batched and libsvm: libsvm's path), or ``SVC`` is refitted
        on the data (sklearn, and any solver with balanced class weights).
    metrics : sequence of str
        The metrics scored (:data:`nidecode._validation.METRICS`).
    test_pair : (str, str), optional
        Cross-decoding: the categories tested as ``class_a`` and ``class_b``
        (:func:`nidecode.analyses.plan.pair_samples`); the training and the
        test labels are each permuted within their runs.

    Returns
    -------
    PermutationScores
        ``accuracy`` of shape (len(indices), n_folds), and the other metrics
        of that shape in ``metrics``.
    """
    X, design = _load_subject(store_path, key[0], checksum)
    job = PairJob(key[0], key[1], key[2], 0, *(test_pair or ("", "")))
    selected, labels, folds = pair_samples(design, job, cv)
    runs = permutation_groups(design, job, selected)
    X = X[selected]
    refit = solver == "sklearn" or class_weight != "none" or classifier != "svc"
    gram = None if refit else X.astype(np.float64) @ X.T.astype(np.float64)
    names = tuple(dict.fromkeys(("accuracy", *metrics)))
    scores = {name: np.empty((len(indices), len(folds))) for name in names}
    for row, index in enumerate(indices):
        y = relabel(labels, runs, key, seed, index)
        if gram is None:
            fits = _cross_validate(X, y, folds, C, class_weight, classifier, shrinkage)
        else:
            fits = _gram_folds(gram, y, folds, C)
        for name, values in _fold_metrics(y, folds, fits, names).items():
            scores[name][row] = values
    accuracy = scores.pop("accuracy")
    return PermutationScores(key, np.asarray(indices), accuracy, scores)


@dataclass(frozen=True)
class _GramFits:
    """Per fold, predicted codes and decision values (the fields _fold_metrics reads)."""

    predicted: list[np.ndarray]
    test_decision: list[np.ndarray]


def _gram_folds(gram: np.ndarray, y: np.ndarray, folds, C: float) -> _GramFits:
    predicted, decisions = [], []
    for fold in folds:
        train, test = fold.train, fold.test
        dual_coef, intercept = fit_linear_svm_gram(gram[np.ix_(train, train)], y[train], C)
        decision = decision_function_gram(gram[np.ix_(test, train)], dual_coef, intercept)
        # SVC predicts classes_[1] for a decision of exactly zero too.
        predicted.append((decision >= 0).astype(int))
        decisions.append(decision)
    return _GramFits(predicted, decisions)


def permutation_sphere_accuracies(store_path: str, key: tuple[str, ...], checksum: str,
                                  voxels: np.ndarray, spheres: sp.csr_matrix, cv: str,
                                  C: float, seed: int, indices: Sequence[int],
                                  solver: str, metrics: Sequence[str] = ("accuracy",),
                                  class_weight: str = "none", classifier: str = "svc",
                                  shrinkage: str | float | None = None,
                                  test_pair: tuple[str, str] | None = None,
                                  ) -> PermutationScores:
    """Sphere scores (means over folds) of a batch of spheres under label permutations.

    ``key`` is (subject, class_a, class_b, sphere batch, chunk number); the
    other parameters are those of :func:`searchlight_spheres` and
    :func:`permutation_accuracies` (cross-decoding with ``test_pair``: the
    training and the test labels each permuted within their runs).

    Returns
    -------
    PermutationScores
        ``accuracy`` of shape (len(indices), n_spheres), and each other metric
        of ``metrics`` of that shape (fold means over the folds that have a
        score, :func:`fold_mean`).
    """
    design = _verified_design(store_path, key[0], checksum)
    selected, labels, runs, folds = _sphere_samples(design, key, cv, test_pair)
    X = store.read_timeseries(store_path, key[0], voxels=voxels, verify=checksum)[selected]
    splits = [(fold.train, fold.test) for fold in folds]
    others = [metric for metric in metrics if metric != "accuracy"]
    many = sphere_permutation_solver(classifier, solver, shrinkage=shrinkage)
    if many is not None and not others:
        # A closed form centres the block once for all the labellings.
        label_sets = np.stack([relabel(labels, runs, key, seed, index) for index in indices])
        accuracy = many(X, label_sets, spheres, splits).mean(axis=2)
        return PermutationScores(key, np.asarray(indices), accuracy, {})
    fit = sphere_solver(classifier, solver, C=C, shrinkage=shrinkage,
                        class_weight=_svc_class_weight(class_weight))
    accuracy = np.empty((len(indices), spheres.shape[0]))
    scores = {metric: np.empty_like(accuracy) for metric in others}
    for row, index in enumerate(indices):
        y = relabel(labels, runs, key, seed, index)
        if not others:
            accuracy[row] = fit(X, y, spheres, splits).mean(axis=1)
            continue
        folds_accuracy, decisions = fit(X, y, spheres, splits, return_decisions=True,
                                        **_rank_options(classifier, solver, others))
        accuracy[row] = folds_accuracy.mean(axis=1)
        y01 = np.unique(y, return_inverse=True)[1]
        for metric, values in sphere_fold_metrics(decisions, y01, [test for _, test in splits],
                                                  others).items():
            scores[metric][row] = fold_mean(values)
    return PermutationScores(key, np.asarray(indices), accuracy, scores)


def fold_mean(values: np.ndarray) -> np.ndarray:
    """Per sphere (row), the mean over the folds that have a score (NaN if none has:
    an AUC fold whose test scans hold one class has none)."""
    counts = np.sum(~np.isnan(values), axis=1)
    sums = np.nansum(values, axis=1)
    return np.divide(sums, counts, out=np.full(len(values), np.nan), where=counts > 0)


def relabel(labels: np.ndarray, runs: np.ndarray, key: tuple[str, ...], seed: int,
            index: int) -> np.ndarray:
    """The labels of permutation ``index`` (-1: unchanged) of a subject x pair.

    Blocks of one label within a run move together (a blocked design's
    scans are not independent), and labels stay within their run.
    """
    if index < 0:
        return labels
    entropy = [seed, *(zlib.crc32(name.encode()) for name in key[:3]), index]
    return permute_within_runs(labels, runs, np.random.default_rng(entropy), blocks=True)


def _sphere_samples(design: store.Design, key: tuple[str, ...], cv: str,
                    test_pair: tuple[str, str] | None = None):
    """Scans, labels, permutation groups and folds of a searchlight key's pair
    (:func:`pair_samples`; cross-decoding with ``test_pair``)."""
    job = PairJob(key[0], key[1], key[2], 0, *(test_pair or ("", "")))
    selected, labels, folds = pair_samples(design, job, cv)
    return selected, labels, permutation_groups(design, job, selected), folds
