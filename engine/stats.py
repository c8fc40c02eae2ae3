"""Statistics on decoding results: permutation schemes, p-values, group tests, votes.

Pure numpy / scipy functions on arrays; the distributed permutation runs
(:mod:`nidecode.run`) call them and the report reads what they produce.

Conventions
-----------
A p-value is ``(1 + #(null >= observed)) / (1 + N)`` for ``N`` null
statistics: the observed labelling counts as one of the permutations, so a
p-value is never 0 and the smallest one is ``1 / (1 + N)``. Null values
within a rounding error of the observed one (``1e-9`` relative, ``1e-12``
absolute) count as ties, i.e. as extreme as the observed: accuracies are
discrete, and the same exact value computed in another order must not look
smaller by one unit in the last place.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from nidecode.errors import InputError

__all__ = ["confusion_matrix_table", "count_distinct_permutations", "group_test",
           "label_blocks", "max_statistic_p_values", "multiclass_vote", "pair_fold_metrics",
           "permutation_p_value", "permutation_p_values", "permute_within_runs",
           "sign_flip_test"]

_RTOL, _ATOL = 1e-9, 1e-12
# Sign-flipped t values are computed this many (permutation x voxel) values at a time.
_CHUNK_VALUES = 4_000_000


# --- permutation schemes ------------------------------------------------------------------


def label_blocks(labels: np.ndarray, runs: np.ndarray) -> np.ndarray:
    """Number the blocks of a design: maximal stretches of one label in one run.

    A sample starts a new block when its label or its run differs from the
    previous sample's. Two blocks of the same label that touch once the
    samples between them are left out (e.g. rest scans) are one block.

    Parameters
    ----------
    labels, runs : numpy.ndarray, shape (n_samples,)
        Label and run of each sample, in acquisition order.

    Returns
    -------
    numpy.ndarray of int, shape (n_samples,)
        Block index of each sample, 0, 1, 2, ... in order of appearance.

    Examples
    --------
    >>> label_blocks(np.array(["a", "a", "b", "b", "a"]), np.array([0, 0, 0, 1, 1]))
    array([0, 0, 1, 2, 3])
    """
    labels, runs = _check_design(labels, runs)
    starts = np.ones(len(labels), dtype=bool)
    starts[1:] = (labels[1:] != labels[:-1]) | (runs[1:] != runs[:-1])
    return np.cumsum(starts) - 1


def permute_within_runs(labels: np.ndarray, runs: np.ndarray,
                        rng: np.random.Generator | int | None = None, *,
                        blocks: bool = True) -> np.ndarray:
    """A random relabelling of the samples in which labels move only within their run.

    Parameters
    ----------
    labels, runs : numpy.ndarray, shape (n_samples,)
        Label and run of each sample, in acquisition order.
    rng : numpy.random.Generator or int, optional
        Source of randomness (a seed is passed to ``numpy.random.default_rng``).
    blocks : bool
        ``False``: shuffle the labels of the samples of each run. ``True``
        (for blocked designs): the samples of a block (see
        :func:`label_blocks`) keep one label together, and blocks exchange
        labels only with blocks *of the same length in the same run*. Every
        block therefore stays single-labelled and the label counts of every
        run are kept, whatever the block lengths; a block whose length no
        other block of its run shares keeps its label.

    Returns
    -------
    numpy.ndarray, shape (n_samples,)
        The permuted labels (same dtype as ``labels``). Each relabelling
        allowed by the scheme is equally likely.

    See Also
    --------
    count_distinct_permutations : how many different relabellings the scheme allows.

    Examples
    --------
    >>> labels = np.array(["a", "a", "b", "b", "a", "a", "b", "b"])
    >>> runs = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    >>> permuted = permute_within_runs(labels, runs, rng=0)
    >>> sorted(permuted[:4]) == ["a", "a", "b", "b"]
    True
    """
    labels, runs = _check_design(labels, runs)
    rng = np.random.default_rng(rng)
    if not blocks:
        return labels[_shuffle_within_groups(_codes(runs), rng)]
    block = label_blocks(labels, runs)
    starts = np.flatnonzero(np.r_[True, block[1:] != block[:-1]])
    lengths = np.diff(np.r_[starts, len(labels)])
    block_labels = labels[starts]
    shuffled = block_labels[_shuffle_within_groups(_exchangeable_groups(runs[starts], lengths),
                                                   rng)]
    return shuffled[block]


def count_distinct_permutations(labels: np.ndarray, runs: np.ndarray,
                                blocks: bool = True) -> int:
    """The exact number of distinct relabellings :func:`permute_within_runs` can draw.

    It includes the observed labelling. A permutation test with ``N``
    random permutations cannot resolve p-values finer than about
    ``1 / min(N, count)``: a blocked design with two blocks of a pair per
    run and 12 runs allows only ``2 ** 12 = 4096`` relabellings.

    Parameters
    ----------
    labels, runs : numpy.ndarray, shape (n_samples,)
    blocks : bool
        As in :func:`permute_within_runs`.

    Returns
    -------
    int
        A Python int (it can be far larger than 2 ** 64): the product, over
        the groups of exchangeable units (runs, or blocks of one length in a
        run), of the multinomial coefficient of the label counts.

    Examples
    --------
    >>> labels = np.tile(["a", "a", "b", "b"], 12)
    >>> runs = np.repeat(np.arange(12), 4)
    >>> count_distinct_permutations(labels, runs, blocks=True)
    4096
    >>> count_distinct_permutations(labels, runs, blocks=False) == 6 ** 12
    True
    """
    labels, runs = _check_design(labels, runs)
    if blocks:
        block = label_blocks(labels, runs)
        starts = np.flatnonzero(np.r_[True, block[1:] != block[:-1]])
        lengths = np.diff(np.r_[starts, len(labels)])
        groups, units = _exchangeable_groups(runs[starts], lengths), labels[starts]
    else:
        groups, units = _codes(runs), labels
    total = 1
    for group in np.unique(groups):
        counts = np.unique(units[groups == group], return_counts=True)[1]
        total *= math.factorial(int(counts.sum())) // math.prod(
            math.factorial(int(count)) for count in counts)
    return total


def _check_design(labels, runs) -> tuple[np.ndarray, np.ndarray]:
    labels, runs = np.asarray(labels), np.asarray(runs)
    if labels.ndim != 1 or labels.shape != runs.shape:
        raise ValueError(f"labels and runs must be 1-D of one length, got shapes "
                         f"{labels.shape} and {runs.shape}")
    return labels, runs


def _codes(values: np.ndarray) -> np.ndarray:
    return np.unique(values, return_inverse=True)[1].ravel()


def _exchangeable_groups(block_runs: np.ndarray, block_lengths: np.ndarray) -> np.ndarray:
    # Blocks exchange labels within (run, length) groups.
    keys = np.stack([_codes(block_runs), block_lengths], axis=1)
    return np.unique(keys, axis=0, return_inverse=True)[1].ravel()


def _shuffle_within_groups(groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # An index array that maps every position to a uniformly random position of its group:
    # positions sorted by group (stable) receive the group's positions in random order.
    by_group = np.argsort(groups, kind="stable")
    shuffled = np.lexsort((rng.random(len(groups)), groups))
    index = np.empty(len(groups), dtype=np.intp)
    index[by_group] = shuffled
    return index


# --- p-values ------------------------------------------------------------------------------


def permutation_p_value(observed: float, null: np.ndarray) -> float:
    """The permutation p-value ``(1 + #(null >= observed)) / (1 + N)``.

    Parameters
    ----------
    observed : float
        The statistic on the true labels (e.g. an accuracy).
    null : numpy.ndarray, shape (N,)
        The statistic on ``N`` permuted labellings.

    Returns
    -------
    float
        In ``(0, 1]``; at least ``1 / (1 + N)``. Ties count as extreme (see
        the module notes).

    Examples
    --------
    >>> permutation_p_value(0.9, np.array([0.5, 0.6, 0.9, 0.4]))
    0.4
    """
    null = np.asarray(null, dtype=float).ravel()
    return float(permutation_p_values(np.array([observed], dtype=float), null[:, None])[0])


def permutation_p_values(observed: np.ndarray, null: np.ndarray) -> np.ndarray:
    """Voxel-wise (uncorrected) permutation p-values of a map.

    Parameters
    ----------
    observed : numpy.ndarray, shape (n_voxels,)
    null : numpy.ndarray, shape (N, n_voxels)
        The map computed on ``N`` permuted labellings.

    Returns
    -------
    numpy.ndarray, shape (n_voxels,)
        ``(1 + #(null[:, v] >= observed[v])) / (1 + N)``.
    """
    observed, null = _check_null(observed, null)
    extreme = (null >= _tie_floor(observed)).sum(axis=0)
    return (1.0 + extreme) / (1.0 + null.shape[0])


def max_statistic_p_values(observed: np.ndarray, null: np.ndarray) -> np.ndarray:
    """Family-wise error corrected p-values by the maximum statistic over voxels.

    Parameters
    ----------
    observed : numpy.ndarray, shape (n_voxels,)
    null : numpy.ndarray, shape (N, n_voxels)

    Returns
    -------
    numpy.ndarray, shape (n_voxels,)
        ``(1 + #(max_w null[:, w] >= observed[v])) / (1 + N)``: never smaller
        than the uncorrected p-value; thresholding it at ``alpha`` controls the
        probability of any false positive in the map at ``alpha``.
    """
    observed, null = _check_null(observed, null)
    return _max_p_values(observed, null.max(axis=1), null.shape[0])


def _max_p_values(observed: np.ndarray, null_maxima: np.ndarray, n: int) -> np.ndarray:
    maxima = np.sort(null_maxima)
    extreme = n - np.searchsorted(maxima, _tie_floor(observed), side="left")
    return (1.0 + extreme) / (1.0 + n)


def _tie_floor(observed: np.ndarray) -> np.ndarray:
    # The smallest value that still counts as a tie (infinite values tie only themselves).
    with np.errstate(invalid="ignore"):
        floor = observed - (_RTOL * np.abs(observed) + _ATOL)
    return np.where(np.isfinite(observed), floor, observed)


def _check_null(observed, null) -> tuple[np.ndarray, np.ndarray]:
    observed, null = np.asarray(observed, dtype=float), np.asarray(null, dtype=float)
    if observed.ndim != 1 or null.ndim != 2 or null.shape[1] != observed.shape[0]:
        raise ValueError(f"expected observed (n_voxels,) and null (N, n_voxels), got shapes "
                         f"{observed.shape} and {null.shape}")
    if null.shape[0] == 0:
        raise ValueError("the null distribution is empty: run at least one permutation")
    if np.isnan(observed).any() or np.isnan(null).any():
        raise ValueError("NaN in the observed or null statistics")
    return observed, null


# --- group level ---------------------------------------------------------------------------


def group_test(accuracies: np.ndarray, chance: float | np.ndarray = 0.5) -> dict:
    """One-sided one-sample t-test of subjects' accuracies against chance.

    Parameters
    ----------
    accuracies : numpy.ndarray, shape (n_subjects,)
        One accuracy per subject (e.g. the mean over folds).
    chance : float or numpy.ndarray, shape (n_subjects,)
        The accuracy expected without information: one value for all
        subjects, or each subject's own (e.g. its majority-class rate when
        its classes are unbalanced). The test is on ``accuracies - chance``.

    Returns
    -------
    dict
        ``mean`` (of the accuracies), ``chance`` (the mean chance), ``t``,
        ``p_value`` (alternative: mean of ``accuracies - chance`` > 0,
        ``scipy.stats.ttest_1samp``) and ``n`` (subjects). If all
        differences are equal the t-test is undefined: ``t`` and
        ``p_value`` are NaN (scipy would divide by a rounding error).

    Examples
    --------
    >>> result = group_test(np.array([0.6, 0.7, 0.8]))
    >>> round(result["t"], 4), round(result["p_value"], 4)
    (3.4641, 0.0371)
    """
    accuracies = np.asarray(accuracies, dtype=float).ravel()
    chances = np.broadcast_to(np.asarray(chance, dtype=float), accuracies.shape)
    if len(accuracies) < 2:
        raise InputError(f"group test: {len(accuracies)} subject(s); a t-test across "
                         f"subjects needs at least 2")
    differences = accuracies - chances
    if np.all(differences == differences[0]):
        t, p_value = np.nan, np.nan
    else:
        # A scalar chance is passed as such: the same numbers as before per-subject chance.
        test = (stats.ttest_1samp(accuracies, float(chances[0]), alternative="greater")
                if np.all(chances == chances[0]) else
                stats.ttest_1samp(differences, 0.0, alternative="greater"))
        t, p_value = float(test.statistic), float(test.pvalue)
    return {"mean": float(accuracies.mean()), "chance": float(chances.mean()), "t": t,
            "p_value": p_value, "n": len(accuracies)}


def sign_flip_test(maps: np.ndarray, chance: float | np.ndarray = 0.5, n_permutations: int = 10000,
                   rng: np.random.Generator | int | None = None, *,
                   return_uncorrected: bool = False) -> tuple[np.ndarray, ...]:
    """Second-level permutation test of accuracy maps by sign flipping.

    Under the null hypothesis each subject's ``accuracy - chance`` is
    symmetric around 0, so its sign can be flipped. The statistic is the
    one-sample t of ``accuracy - chance`` across subjects in every voxel;
    each of ``n_permutations`` random sign flips (one sign per subject,
    shared by all voxels) gives a null map, and the maximum over voxels of
    each null map gives family-wise error corrected p-values. This is what
    ``nilearn.glm.second_level.non_parametric_inference`` does with an
    intercept-only design and ``two_sided_test=False`` (its
    ``logp_max_t`` is ``-log10`` of our ``p_fwe``; tested to agree within
    Monte-Carlo error). Here it works on arrays (no images, no masker), takes
    a ``numpy.random.Generator`` and can return the uncorrected p-values too.

    Parameters
    ----------
    maps : numpy.ndarray, shape (n_subjects, n_voxels)
        Each subject's accuracy map (voxels in the mask only), on a common grid.
    chance : float or numpy.ndarray, shape (n_subjects,)
        Chance accuracy: one for all subjects, or each subject's own (its
        majority-class rate when its classes are unbalanced).
    n_permutations : int
        Random sign flips. When there are no more distinct flips than this
        (``2 ** n_subjects - 1`` besides the observed one), each is used
        once instead: the exact test, as FSL's randomise does.
    rng : numpy.random.Generator or int, optional
    return_uncorrected : bool
        Also return the voxel-wise uncorrected p-values.

    Returns
    -------
    t_map : numpy.ndarray, shape (n_voxels,)
        One-sample t of ``maps - chance`` (``+inf`` where every subject has
        the same accuracy above chance, 0 where all are at chance).
    p_fwe_map : numpy.ndarray, shape (n_voxels,)
        FWE-corrected p-values, ``(1 + #(max null t >= t)) / (1 + n_permutations)``.
    p_uncorrected_map : numpy.ndarray, shape (n_voxels,)
        Only with ``return_uncorrected``.
    """
    maps = np.asarray(maps, dtype=float)
    if maps.ndim != 2:
        raise ValueError(f"maps must be (n_subjects, n_voxels), got shape {maps.shape}")
    if maps.shape[0] < 2:
        raise InputError(f"sign-flip test: {maps.shape[0]} subject(s); a group test needs at "
                         f"least 2")
    if n_permutations < 1:
        raise InputError(f"sign-flip test: {n_permutations} permutations; ask for at least 1 "
                         f"(1000 or more for p-values near 0.05)")
    if np.isnan(maps).any():
        raise ValueError("NaN in the accuracy maps")
    chance = np.asarray(chance, dtype=float)
    if chance.ndim and chance.shape != (maps.shape[0],):
        raise ValueError(f"chance must be one value or one per subject ({maps.shape[0]}), "
                         f"got shape {chance.shape}")
    rng = np.random.default_rng(rng)
    effects = maps - (chance[:, None] if chance.ndim else chance)
    n_subjects, n_voxels = effects.shape
    sum_squares = np.einsum("sv,sv->v", effects, effects)
    t_map = _flipped_t(np.ones((1, n_subjects)), effects, sum_squares)[0]
    floor = _tie_floor(t_map)
    exhaustive = 2**n_subjects - 1 <= n_permutations
    if exhaustive:
        # Every sign pattern but the observed (all +1, the last one) once.
        every = np.array(list(itertools.product([-1.0, 1.0], repeat=n_subjects)))[:-1]
        n_permutations = len(every)
    maxima = np.empty(n_permutations)
    extreme = np.zeros(n_voxels, dtype=np.int64)
    chunk = max(1, _CHUNK_VALUES // n_voxels)
    for start in range(0, n_permutations, chunk):
        size = min(chunk, n_permutations - start)
        signs = (every[start:start + size] if exhaustive
                 else rng.choice(np.array([-1.0, 1.0]), size=(size, n_subjects)))
        null = _flipped_t(signs, effects, sum_squares)
        maxima[start:start + size] = null.max(axis=1)
        if return_uncorrected:
            extreme += (null >= floor).sum(axis=0)
    p_fwe = _max_p_values(t_map, maxima, n_permutations)
    if return_uncorrected:
        return t_map, p_fwe, (1.0 + extreme) / (1.0 + n_permutations)
    return t_map, p_fwe


def _flipped_t(signs: np.ndarray, effects: np.ndarray, sum_squares: np.ndarray) -> np.ndarray:
    # One-sample t of each sign-flipped sample; flipping signs keeps the sum of squares.
    n = effects.shape[0]
    mean = signs @ effects / n
    variance = np.maximum(sum_squares - n * mean**2, 0.0) / (n - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = mean / np.sqrt(variance / n)
    t[np.isnan(t)] = 0.0  # no variance and no effect
    return t


# --- multiclass ----------------------------------------------------------------------------


def multiclass_vote(decisions: Mapping[tuple[str, str], np.ndarray],
                    classes: Sequence[str]) -> np.ndarray:
    """One-vs-one voting, exactly as libsvm (scikit-learn's ``SVC``) predicts.

    Parameters
    ----------
    decisions : mapping of (class_a, class_b) to numpy.ndarray, shape (n_samples,)
        The decision value of the binary classifier of every pair, with
        ``class_a < class_b`` and nidecode's sign: positive favours
        ``class_b`` (scikit-learn's binary ``SVC.decision_function``).
    classes : sequence of str
        The classes; they are sorted, as ``SVC.classes_`` is.

    Returns
    -------
    numpy.ndarray, shape (n_samples,)
        The predicted class of every sample. Each pair gives one vote:
        ``class_b`` when its decision is ``>= 0``, else ``class_a`` (libsvm
        votes for its first class when its own decision value, our
        negative, is ``> 0``). The most voted class wins; ties go to the
        first of the tied classes in sorted order, as libsvm's ``argmax``.

    Examples
    --------
    >>> decisions = {("cat", "face"): np.array([1.0, -1.0]),
    ...              ("cat", "house"): np.array([1.0, -2.0]),
    ...              ("face", "house"): np.array([-0.5, -3.0])}
    >>> multiclass_vote(decisions, ["face", "cat", "house"]).tolist()
    ['face', 'cat']
    """
    classes = sorted(set(classes))
    index = {name: position for position, name in enumerate(classes)}
    missing = [(a, b) for a in classes for b in classes if a < b and (a, b) not in decisions]
    if len(classes) < 2 or missing:
        raise ValueError(f"decisions must hold every pair (class_a, class_b) with "
                         f"class_a < class_b of {classes}; missing {missing}")
    votes = None
    for (class_a, class_b), decision in decisions.items():
        if class_a not in index or class_b not in index or class_a >= class_b:
            raise ValueError(f"decision key {(class_a, class_b)!r}: expected a pair of "
                             f"{classes} in sorted order")
        decision = np.asarray(decision, dtype=float).ravel()
        if votes is None:
            votes = np.zeros((len(decision), len(classes)), dtype=np.int64)
        winner = np.where(decision >= 0, index[class_b], index[class_a])
        votes[np.arange(len(decision)), winner] += 1
    return np.asarray(classes)[np.argmax(votes, axis=1)]


def confusion_matrix_table(true: np.ndarray, predicted: np.ndarray,
                           classes: Sequence[str]) -> pd.DataFrame:
    """Counts of true (rows) against predicted (columns) classes.

    Parameters
    ----------
    true, predicted : numpy.ndarray, shape (n_samples,)
    classes : sequence of str
        Row and column order; every class appears, even with no sample.

    Returns
    -------
    pandas.DataFrame
        Square, integer counts; index named ``"true"``, columns
        ``"predicted"``. Written with ``to_csv()`` it is the
        ``multiclass/confusion_{subject}.csv`` format the report reads.

    Examples
    --------
    >>> confusion_matrix_table(np.array(["a", "a", "b"]), np.array(["a", "b", "b"]),
    ...                        ["a", "b"]).to_numpy().tolist()
    [[1, 1], [0, 1]]
    """
    true, predicted = np.asarray(true).ravel(), np.asarray(predicted).ravel()
    classes = list(classes)
    if true.shape != predicted.shape:
        raise ValueError(f"true and predicted differ in length: {len(true)} and "
                         f"{len(predicted)}")
    unknown = sorted((set(true.tolist()) | set(predicted.tolist())) - set(classes))
    if unknown:
        raise ValueError(f"labels {unknown} are not among the classes {classes}")
    position = {name: index for index, name in enumerate(classes)}
    counts = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(counts, ([position[name] for name in true.tolist()],
                       [position[name] for name in predicted.tolist()]), 1)
    return pd.DataFrame(counts, index=pd.Index(classes, name="true"),
                        columns=pd.Index(classes, name="predicted"))


def fold_metrics(true: np.ndarray, predicted: np.ndarray, decision: np.ndarray,
                 metrics: Sequence[str]) -> dict[str, float]:
    """A test fold's scores, as scikit-learn's scorers of these names compute them.

    Parameters
    ----------
    true, predicted : numpy.ndarray
        The test scans' classes and the classifier's predictions (any labels;
        the second class in sorted order of the pair is the positive one).
    decision : numpy.ndarray
        ``SVC.decision_function`` of the test scans (positive favours the
        positive class): what the ``roc_auc`` scorer ranks.
    metrics : sequence of str
        Among :data:`nidecode._validation.METRICS`.

    Returns
    -------
    dict
        Metric name -> score. ``roc_auc`` is NaN when the fold's test scans
        hold one class only (no ranking to score; scikit-learn raises there).

    Notes
    -----
    Computed as :func:`sphere_fold_metrics` does (balanced accuracy: the mean
    recall of the classes present; ROC AUC: the Mann-Whitney count, ties
    counting half), which equals ``balanced_accuracy_score`` and
    ``roc_auc_score`` without their per-call input checks: a fold costs
    microseconds, not a millisecond.
    """
    true = np.asarray(true)
    positive = (true == np.unique(true)[-1]).astype(int)  # one class: all positive
    correct = (np.asarray(predicted) == true)[None, :]
    decision = np.asarray(decision, dtype=np.float64)[None, :]
    return {metric: float(_sphere_metric(metric, positive, decision, correct)[0])
            for metric in metrics}


def pair_fold_metrics(y01: np.ndarray, tests: Sequence[np.ndarray],
                      predicted: Sequence[np.ndarray], decisions: Sequence[np.ndarray],
                      metrics: Sequence[str]) -> dict[str, np.ndarray]:
    """:func:`fold_metrics` of every fold of one classifier at once (the same values).

    Parameters
    ----------
    y01 : numpy.ndarray of int, shape (n_samples,)
        0 for the pair's first class, 1 for its second.
    tests : sequence of numpy.ndarray
        Each fold's test samples.
    predicted : sequence of numpy.ndarray
        Each fold's predicted codes (0 or 1) of its test samples.
    decisions : sequence of numpy.ndarray
        Each fold's decision values of its test samples.
    metrics : sequence of str
        Among :data:`nidecode._validation.METRICS`.

    Returns
    -------
    dict
        Metric name -> (n_folds,) scores.

    Notes
    -----
    The accuracies are counted per fold in one pass over all the folds' test
    samples (exact counts, divided as ``np.mean`` divides them); only the ROC
    AUC compares scans fold by fold. About a tenth of the time of calling
    :func:`fold_metrics` per fold.
    """
    n_folds = len(tests)
    fold = np.repeat(np.arange(n_folds), [len(test) for test in tests])
    true = np.asarray(y01)[np.concatenate(tests)] if n_folds else np.empty(0, int)
    correct = (np.concatenate(predicted) == true) if n_folds else np.empty(0, bool)

    def recall(scans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        hits = np.bincount(fold[scans], weights=correct[scans], minlength=n_folds)
        counts = np.bincount(fold[scans], minlength=n_folds)
        with np.errstate(invalid="ignore", divide="ignore"):
            return hits / counts, counts

    accuracy, _ = recall(np.ones(len(true), bool))
    out = {}
    for metric in metrics:
        if metric == "accuracy":
            out[metric] = accuracy
            continue
        (recall_0, n_0), (recall_1, n_1) = recall(true == 0), recall(true == 1)
        both = (n_0 > 0) & (n_1 > 0)
        if metric == "balanced_accuracy":
            out[metric] = np.where(both, (recall_0 + recall_1) / 2, accuracy)
        else:  # roc_auc, NaN for a fold of one class
            out[metric] = np.array([
                _roc_auc(true[fold == f], np.asarray(decisions[f], dtype=np.float64)[None])[0]
                if both[f] else np.nan for f in range(n_folds)])
    return out


def sphere_fold_metrics(decisions: np.ndarray, y01: np.ndarray, tests: Sequence[np.ndarray],
                        metrics: Sequence[str]) -> dict[str, np.ndarray]:
    """:func:`fold_metrics` of every sphere and fold at once, from decision values.

    Parameters
    ----------
    decisions : numpy.ndarray, shape (n_spheres, n_scans)
        ``SVC.decision_function`` of each scan in the fold that tests it, as the
        sphere solvers return it (``return_decisions=True``).
    y01 : numpy.ndarray of int, shape (n_scans,)
        0 for ``classes_[0]``, 1 for ``classes_[1]``.
    tests : sequence of numpy.ndarray
        Each fold's test scans.
    metrics : sequence of str
        Among :data:`nidecode._validation.METRICS`.

    Returns
    -------
    dict
        Metric name -> (n_spheres, n_folds) scores; ``roc_auc`` is NaN for a
        fold whose test scans hold one class, as in :func:`fold_metrics`.
    """
    decisions = np.asarray(decisions, dtype=np.float64)
    y01 = np.asarray(y01)
    out = {metric: np.empty((decisions.shape[0], len(tests))) for metric in metrics}
    for f, test in enumerate(tests):
        true, dec = y01[test], decisions[:, test]
        # The solvers' tie rule: a zero decision predicts classes_[1], as libsvm does.
        correct = (dec >= 0) == (true == 1)
        for metric in metrics:
            out[metric][:, f] = _sphere_metric(metric, true, dec, correct)
    return out


def _sphere_metric(metric: str, true: np.ndarray, dec: np.ndarray,
                   correct: np.ndarray) -> np.ndarray:
    """One fold's ``metric`` for every sphere (rows of ``dec``)."""
    present = [c for c in (0, 1) if np.any(true == c)]
    if metric == "accuracy" or (metric == "balanced_accuracy" and len(present) < 2):
        return correct.mean(axis=1)
    if metric == "balanced_accuracy":
        return (correct[:, true == 0].mean(axis=1) + correct[:, true == 1].mean(axis=1)) / 2
    if len(present) < 2:
        return np.full(dec.shape[0], np.nan)
    return _roc_auc(true, dec)


def _roc_auc(true: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """The ROC AUC of each row of ``dec`` (both classes present in ``true``)."""
    # Mann-Whitney: AUC = P(positive ranked above negative), ties counting half.
    pos, neg = dec[:, true == 1, None], dec[:, None, true == 0]
    wins = (pos > neg).sum(axis=(1, 2)) + 0.5 * (pos == neg).sum(axis=(1, 2))
    return wins / (pos.shape[1] * neg.shape[2])


def haufe_pattern(X: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The activation pattern ``Cov(X) w / Var(X w)`` of linear weights (Haufe et al. 2014).

    Parameters
    ----------
    X : numpy.ndarray, shape (n_samples, n_features)
        The scans the weights were fitted on (centred here).
    weights : numpy.ndarray, shape (n_features,)

    Returns
    -------
    numpy.ndarray, shape (n_features,)
        Same sign convention as ``weights``; zeros when ``X w`` is constant.
    """
    centred = np.asarray(X, dtype=np.float64)
    centred = centred - centred.mean(axis=0)
    source = centred @ np.asarray(weights, dtype=np.float64)
    variance = source @ source  # the (n - 1) of both covariances cancels
    if variance <= 0:
        return np.zeros(centred.shape[1])
    return centred.T @ source / variance
