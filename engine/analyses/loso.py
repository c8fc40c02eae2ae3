"""Leave one subject out (``--cv loso``): decoding across subjects that share one grid.

Every pair is trained on its scans of all subjects but one and tested on the
held-out subject's scans; the folds are the subjects. The training data of a
study need not fit one worker: the linear kernel ``K = X X^T`` between the
scans is a sum over voxels, so each task reads one voxel block of every
subject from the store and computes that block's ``X_b X_b^T``; the blocks
are summed on the cluster in a fixed binary tree (the same sums whatever the
number of workers) and only the small ``n_scans x n_scans`` kernel lives on,
on a worker. One kernel serves every pair, fold and permutation (a fold's
training kernel is a sub-matrix of it): each SVM is ``SVC(kernel="precomputed")``'s
problem (:func:`nidecode.solvers.svc.fit_svc_kernel`), i.e. the linear SVM's.
The weight map of the fit on all subjects, ``w = sum_i alpha_i x_i``, and its
activation pattern are accumulated voxel block by voxel block the same way.

A worker holds at most one voxel block of the pair scans (``n_scans x
block_voxels`` float64) and two kernels (``n_scans^2`` float64): a block and its
share, or the kernel and a fold's training copy (libsvm needs it contiguous).
Shares wait and travel as packed upper triangles (half a kernel) and are
summed into their first operand's buffer.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dask.config
import numpy as np
import pandas as pd
from distributed import Client, Future

from nidecode import store
from nidecode._validation import (
    METRICS,
    check_C,
    check_class_weight,
    check_classifier_options,
    check_n_permutations,
    check_per_task,
    check_scoring,
    check_seed,
)
from nidecode.analyses._prepare import Study, claim_output
from nidecode.analyses.plan import (
    PairJob,
    category_list,
    category_pairs,
    cross_mapping,
    used_categories,
)
from nidecode.analyses.tasks import relabel
from nidecode.cluster import describe
from nidecode.cv import LOSO, Fold, make_subject_folds
from nidecode.errors import InputError
from nidecode.io import REST
from nidecode.outdir import OutputDir, null_name, patterns_name, weights_name
from nidecode.results import (
    PairResult,
    PermutationScores,
    scores_table,
    summary_table,
    to_nifti,
)
from nidecode.run import normalise_store_path, phase_timings, run_tasks, versions
from nidecode.solvers.svc import fit_svc_kernel, svc_kernel_decisions
from nidecode.stats import count_distinct_permutations, fold_metrics, permutation_p_value

#: The ``subject`` of a leave-one-subject-out result (its folds are the subjects).
ALL_SUBJECTS = "all"
#: Voxels per kernel task (a multiple of the store's voxel chunk); dask config
#: ``nidecode.loso-block-voxels`` overrides it.
BLOCK_VOXELS = 4096
PERMUTATIONS_PER_TASK = 50
_GRID_ADVICE = ("leave-one-subject-out needs every subject on one grid, affine and mask; "
                "resample the subjects to one template and ingest them with one mask")


@dataclass(frozen=True)
class KernelRows:
    """The scans of the run's kernel: per subject (in order), its scans any pair uses."""

    subjects: tuple[str, ...]
    checksums: tuple[str, ...]
    scans: tuple[np.ndarray, ...]  # sorted scan indices of each subject

    @property
    def offsets(self) -> np.ndarray:
        """The first kernel row of each subject."""
        return np.concatenate([[0], np.cumsum([len(scans) for scans in self.scans])])

    @property
    def n_rows(self) -> int:
        return int(sum(len(scans) for scans in self.scans))


@dataclass(frozen=True)
class PairSamples:
    """The samples of one pair across subjects (cross-decoding: a scan of a category of both
    lists is two samples, one trained on, one tested)."""

    rows: np.ndarray  # kernel row of each sample
    labels: np.ndarray  # str; a test sample as the training class it is read as
    groups: np.ndarray  # subject position of each sample
    runs: np.ndarray
    trainable: np.ndarray  # bool
    testable: np.ndarray  # bool
    folds: list[Fold]  # fold = the held-out subject's position

    @property
    def permutation_groups(self) -> np.ndarray:
        """Labels move within a subject's run (training and test samples apart)."""
        runs = np.unique(self.runs, return_inverse=True)[1]
        within = (self.groups * (runs.max() + 1) + runs) * 2
        return within + (~self.trainable)


@dataclass(frozen=True)
class LosoRun:
    """A checked, planned leave-one-subject-out run whose output directory is claimed."""

    store_path: str
    output: OutputDir
    designs: dict[str, store.Design]
    rows: KernelRows
    pairs: list[PairJob]
    samples: dict[tuple[str, str, str], PairSamples]
    mask: np.ndarray
    affine: np.ndarray
    identity: dict
    started: float
    notes: list[str] = field(default_factory=list)


# --- planning (client) ----------------------------------------------------------------------


def check_common_grid(store_path: str, designs: dict[str, store.Design]
                      ) -> tuple[np.ndarray, np.ndarray]:
    """The mask and affine every subject shares; one line naming the first that differs.

    Raises
    ------
    InputError
        Fewer than two subjects, or a subject whose grid shape, affine or mask
        differs from the first subject's.
    """
    if len(designs) < 2:
        raise InputError(f"--cv loso: the store holds {len(designs)} subject "
                         f"({', '.join(designs)}); leave-one-subject-out needs two or more "
                         f"(use --cv logo to decode within the subject)")
    (first, design), *others = designs.items()
    mask, affine = store.read_geometry(store_path, first, checksum=design.checksum)
    for subject, other in others:
        their_mask, their_affine = store.read_geometry(store_path, subject,
                                                       checksum=other.checksum)
        if their_mask.shape != mask.shape:
            how = (f"its grid is {'x'.join(map(str, their_mask.shape))}, {first}'s "
                   f"{'x'.join(map(str, mask.shape))}")
        elif not np.allclose(their_affine, affine, rtol=0, atol=1e-5):
            how = f"its affine differs from {first}'s"
        elif not np.array_equal(their_mask, mask):
            how = (f"its mask ({int(their_mask.sum())} voxels) differs from {first}'s "
                   f"({int(mask.sum())} voxels)")
        else:
            continue
        raise InputError(f"--cv loso: subject {subject}: {how}; {_GRID_ADVICE}")
    return mask, affine


def plan_pairs(designs: Sequence[store.Design], categories: Sequence[str] | None,
               mapping: dict[str, str] | None) -> list[PairJob]:
    """Every pair of the requested (or all) categories, or of a cross design's training ones."""
    present = set().union(*(set(design.labels.tolist()) for design in designs)) - {REST}
    if mapping is not None:
        _check_present(present, list(mapping), "--train-categories")
        _check_present(present, list(mapping.values()), "--test-categories")
        return [PairJob(ALL_SUBJECTS, a, b, len(designs), mapping[a], mapping[b])
                for a, b in category_pairs(mapping)]
    if categories is not None:
        _check_present(present, categories, "--categories")
    return [PairJob(ALL_SUBJECTS, a, b, len(designs))
            for a, b in category_pairs(categories or present)]


def _check_present(present: set[str], names: Sequence[str], option: str) -> None:
    absent = [name for name in names if name not in present]
    if absent:
        raise InputError(f"{option}: no subject has scans labelled {absent[0]!r}; categories "
                         f"present: {', '.join(sorted(present))}")


def kernel_rows(designs: Sequence[store.Design], pairs: Sequence[PairJob]) -> KernelRows:
    """Per subject, the scans of the categories the pairs train or test on."""
    used = {name for pair in pairs for name in (pair.class_a, pair.class_b, *pair.test_pair)}
    return KernelRows(tuple(design.subject for design in designs),
                      tuple(design.checksum for design in designs),
                      tuple(np.flatnonzero(np.isin(design.labels, list(used)))
                            for design in designs))


def pair_samples(designs: Sequence[store.Design], rows: KernelRows,
                 pair: PairJob) -> PairSamples:
    """The samples and leave-one-subject-out folds of one pair.

    Ordinary decoding: each subject's scans of the pair, trained and tested
    on. Cross-decoding: its training pair's scans (trained on) then its test
    pair's (tested on, read as the training classes).
    """
    pieces = []
    for position, design in enumerate(designs):
        train = np.flatnonzero(np.isin(design.labels, (pair.class_a, pair.class_b)))
        test = np.flatnonzero(np.isin(design.labels, pair.test_pair))
        read_as = dict(zip(pair.test_pair, (pair.class_a, pair.class_b), strict=True))
        parts = [(train, True, not pair.is_cross)] + ([(test, False, True)]
                                                       if pair.is_cross else [])
        for scans, trainable, testable in parts:
            labels = np.array([read_as.get(name, name) for name in design.labels[scans]], str)
            pieces.append((rows.offsets[position] + np.searchsorted(rows.scans[position], scans),
                           labels, np.full(len(scans), position), design.runs[scans],
                           np.full(len(scans), trainable), np.full(len(scans), testable)))
    sample_rows, labels, groups, runs, trainable, testable = (
        np.concatenate([piece[index] for piece in pieces]) for index in range(6))
    folds = make_subject_folds(groups, trainable, testable)
    return PairSamples(sample_rows.astype(np.intp), labels.astype(str), groups.astype(int),
                       runs.astype(np.int64), trainable.astype(bool), testable.astype(bool),
                       folds)


def _check_folds(designs: Sequence[store.Design], pair: PairJob,
                 samples: PairSamples) -> list[str]:
    """Refuse a fold whose training scans hold one class; notes on subjects left out."""
    name = f"{pair.class_a} vs {pair.class_b}"
    for fold in samples.folds:
        if len(np.unique(samples.labels[fold.train])) < 2:
            raise InputError(f"--cv loso: {name}, held-out subject "
                             f"{designs[fold.fold].subject}: the other subjects' scans hold "
                             f"one class only; choose categories more subjects have")
    tested = {fold.fold for fold in samples.folds}
    return [f"{design.subject} has no scans of {' or '.join(pair.test_pair)}: no fold of "
            f"{name}" for position, design in enumerate(designs) if position not in tested]


def plan_loso(designs: Sequence[store.Design], categories: Sequence[str] | None,
              mapping: dict[str, str] | None = None
              ) -> tuple[KernelRows, list[PairJob], dict, list[str]]:
    """The kernel rows, the pairs that two or more subjects have, their samples and
    notes (what is left out), for :func:`prepare_loso` and the searchlight.

    Raises
    ------
    InputError
        No pair in two subjects, or a fold whose training scans hold one class.
    """
    pairs, notes = [], []
    candidates = plan_pairs(designs, categories, mapping)
    rows = kernel_rows(designs, candidates)
    for pair in candidates:
        pair_data = pair_samples(designs, rows, pair)
        if len({fold.fold for fold in pair_data.folds}
               | set(pair_data.groups[pair_data.trainable].tolist())) < 2:
            notes.append(f"{pair.class_a} vs {pair.class_b}: fewer than two subjects have "
                         f"its scans; skipped")
            continue
        notes.extend(_check_folds(designs, pair, pair_data))
        pairs.append(pair)
    if not pairs:
        raise InputError("--cv loso: no pair of categories has scans in two subjects; "
                         "choose categories the subjects share")
    rows = kernel_rows(designs, pairs)  # only the scans the kept pairs use
    return rows, pairs, {pair.key: pair_samples(designs, rows, pair) for pair in pairs}, notes


def prepare_loso(store_path: str | Path, out: str | Path, command: str, *,
                 categories: Sequence[str] | None = None, C: float = 1.0,
                 scoring: str | Sequence[str] = "accuracy", class_weight: str | None = None,
                 overwrite: bool = False, classifier: str = "svc",
                 shrinkage: str | float | None = None,
                 train_categories: Sequence[str] | None = None,
                 test_categories: Sequence[str] | None = None,
                 **permutations) -> LosoRun:
    """Check the inputs, plan the pairs and claim the output (no cluster needed).

    Parameters are those of :func:`nidecode.analyses.decode.decode` (``command
    "decode"``) or of :func:`nidecode.analyses.permute.permute` (``"permute"``,
    with ``n_permutations``, ``seed`` and ``permutations_per_task`` in
    ``permutations``), with ``cv="loso"``.
    """
    started = time.perf_counter()
    C = check_C(C, command)
    scoring = check_scoring(scoring, command)
    class_weight = check_class_weight(class_weight, command)
    classifier, shrinkage = check_classifier_options(classifier, shrinkage, class_weight,
                                                     command)
    if classifier != "svc":
        raise InputError(f"--classifier {classifier}: --cv loso fits the linear SVM from the "
                         f"kernel between scans (the data never sit in one worker); use "
                         f"--classifier svc, or --cv logo")
    extra = _check_permutations(command, **permutations)
    mapping = cross_mapping(category_list(train_categories), category_list(test_categories),
                            LOSO, categories)
    store_path = normalise_store_path(store_path)
    designs = store.read_designs(store_path)
    mask, affine = check_common_grid(store_path, designs)
    rows, pairs, samples, notes = plan_loso(list(designs.values()), categories, mapping)
    design = {} if mapping is None else {"train_categories": list(mapping),
                                         "test_categories": list(mapping.values())}
    study = Study(store_path, designs, [], notes)
    identity, output = claim_output(out, study, command, overwrite=overwrite,
                                    categories=used_categories(categories, mapping), cv=LOSO,
                                    C=C, scoring=list(scoring), class_weight=class_weight,
                                    classifier=classifier, shrinkage=shrinkage, **extra,
                                    **design)
    return LosoRun(store_path, output, designs, rows, pairs, samples, mask, affine, identity,
                   started, notes)


def _check_permutations(command: str, n_permutations=None, seed=0, permutations_per_task=None,
                        radius=None, solver=None) -> dict:
    """The permutation parameters of ``permute`` (``solver``, ``radius``: unused; searchlight
    permutations are planned by :mod:`nidecode.analyses.loso_searchlight`)."""
    if command != "permute":
        return {}
    per_task = check_per_task(permutations_per_task, "permutations_per_task", command)
    return {"n_permutations": check_n_permutations(n_permutations, command),
            "seed": check_seed(seed, command),
            "permutations_per_task": per_task or int(dask.config.get(
                "nidecode.permutations-per-task.roi", PERMUTATIONS_PER_TASK))}


# --- work on the workers --------------------------------------------------------------------


def voxel_blocks(n_voxels: int, block_voxels: int) -> list[slice]:
    """Consecutive voxel blocks of ``block_voxels`` (the last one shorter)."""
    return [slice(start, min(start + block_voxels, n_voxels))
            for start in range(0, n_voxels, block_voxels)]


def read_block(store_path: str, rows: KernelRows, voxels: slice) -> np.ndarray:
    """The kernel rows' scans of one voxel block of every subject, float64.

    Each subject is read as the version holding its planned checksum, straight
    into its rows of one float64 block (no float32 copy of the whole block).
    """
    offsets = rows.offsets
    block = None
    for position, (subject, checksum, scans) in enumerate(
            zip(rows.subjects, rows.checksums, rows.scans, strict=True)):
        data = store.read_timeseries(store_path, subject, voxels=voxels, verify=checksum)
        if block is None:
            block = np.empty((rows.n_rows, data.shape[1]), dtype=np.float64)
        block[offsets[position]:offsets[position + 1]] = data[scans]
    return block


def kernel_block(store_path: str, rows: KernelRows, voxels: slice) -> np.ndarray:
    """One voxel block's share ``X_b X_b^T`` of the linear kernel (float64), packed
    (:func:`pack_upper`): the shares that wait for their sums and travel between
    workers are half a kernel each."""
    block = read_block(store_path, rows, voxels)
    share = block @ block.T  # numpy's syrk: exactly symmetric
    del block
    return pack_upper(share)


def pack_upper(K: np.ndarray) -> np.ndarray:
    """The upper triangle of a symmetric matrix, row by row (``n (n + 1) / 2`` values)."""
    n = len(K)
    packed = np.empty(n * (n + 1) // 2, dtype=K.dtype)
    start = 0
    for row in range(n):
        packed[start:start + n - row] = K[row, row:]
        start += n - row
    return packed


def unpack_upper(packed: np.ndarray, n: int) -> np.ndarray:
    """The symmetric ``(n, n)`` matrix of :func:`pack_upper`'s values."""
    K = np.empty((n, n), dtype=packed.dtype)
    start = 0
    for row in range(n):
        K[row, row:] = K[row:, row] = packed[start:start + n - row]
        start += n - row
    return K


def add_shares(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """``left + right``, summed into ``left``'s buffer when it is writable.

    A worker then holds two kernels during a sum, not three. ``left`` is a
    share only this sum reads (the tree gives each share one consumer), so
    overwriting it is safe; the sums are those of ``left + right`` bit for bit.
    """
    if not left.flags.writeable:  # e.g. deserialised from a read-only buffer
        return left + right
    np.add(left, right, out=left)
    return left


def submit_kernel(client: Client, store_path: str, rows: KernelRows, n_voxels: int,
                  block_voxels: int = BLOCK_VOXELS) -> Future:
    """The linear kernel ``X X^T`` of the rows' scans, summed on the cluster.

    One task per voxel block computes its share; the shares are summed in a
    binary tree fixed by the number of blocks, so the kernel is the same
    whatever the number of workers. Tasks are submitted depth first, so the
    scheduler (first submitted, first run) adds two shares as soon as both
    exist and few kernels are held at a time.

    Returns
    -------
    distributed.Future
        Of the ``(n_rows, n_rows)`` float64 kernel; it stays on the cluster.
    """
    blocks = voxel_blocks(n_voxels, block_voxels)
    # Packed upper triangles are summed (the same sums as the full shares', entry by entry).

    def reduce(low: int, high: int) -> Future:
        if high - low == 1:
            return client.submit(kernel_block, store_path, rows, blocks[low])
        middle = (low + high) // 2
        left, right = reduce(low, middle), reduce(middle, high)
        return client.submit(add_shares, left, right)

    return client.submit(unpack_upper, reduce(0, len(blocks)), rows.n_rows)


@dataclass(frozen=True)
class LosoFit:
    """A pair's fit on every subject: what its weight map and pattern need."""

    support_rows: np.ndarray  # kernel rows of the support scans
    dual_coef: np.ndarray
    train_rows: np.ndarray  # kernel rows of its training scans
    source: np.ndarray  # X w on them, centred (Haufe's pattern: X^T source / |source|^2)


def fold_scores(K: np.ndarray, samples: PairSamples, labels: np.ndarray, C: float,
                class_weight: str, metrics: Sequence[str] = METRICS,
                folds: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """Each metric per fold (``folds``: their positions, default all) of one labelling
    of a pair's samples, from the kernel."""
    folds = range(len(samples.folds)) if folds is None else folds
    classes = np.unique(labels[samples.trainable])
    codes = (labels == classes[1]).astype(np.float64)
    scores = {metric: np.empty(len(folds)) for metric in metrics}
    weights = None if class_weight == "none" else class_weight
    for index, position in enumerate(folds):
        fold = samples.folds[position]
        train, test = samples.rows[fold.train], samples.rows[fold.test]
        dual_coef, support, intercept = fit_svc_kernel(K[np.ix_(train, train)],
                                                       codes[fold.train], C, weights)
        decision = svc_kernel_decisions(K[np.ix_(test, train)], dual_coef, support, intercept)
        predicted = classes[(decision >= 0).astype(int)]
        for metric, value in fold_metrics(labels[fold.test], predicted, decision,
                                          metrics).items():
            scores[metric][index] = value
    return scores


def fold_task(K: np.ndarray, samples: PairSamples, C: float, class_weight: str,
              key: tuple[str, ...], position: int) -> tuple[tuple, int, dict[str, float]]:
    """One fold of a pair (a task: the folds of one pair run in parallel).

    Returns the pair's key, the fold's position and its metrics.
    """
    return key, position, {metric: float(values[0]) for metric, values in fold_scores(
        K, samples, samples.labels, C, class_weight, folds=[position]).items()}


def fit_all_subjects(K: np.ndarray, samples: PairSamples, C: float, class_weight: str,
                     key: tuple[str, ...] = ()) -> tuple[tuple, str, LosoFit]:
    """Fit a pair on every subject's training scans (its weight map's model).

    Returns the pair's key, ``"all"`` and the fit.
    """
    rows = samples.rows[samples.trainable]
    codes = np.unique(samples.labels[samples.trainable], return_inverse=True)[1]
    train = K[np.ix_(rows, rows)]  # the one copy libsvm needs (contiguous)
    dual_coef, support, _ = fit_svc_kernel(train, codes, C,
                                           None if class_weight == "none" else class_weight)
    # X w on the training scans from the same copy (no second sub-kernel of the supports).
    source = train @ _spread(dual_coef, support, len(rows))
    del train
    return key, ALL_SUBJECTS, LosoFit(rows[support], dual_coef, rows, source - source.mean())


def _spread(values: np.ndarray, positions: np.ndarray, size: int) -> np.ndarray:
    """A length-``size`` vector, zero but ``values`` at ``positions`` (summed if repeated)."""
    full = np.zeros(size)
    np.add.at(full, positions, values)
    return full


def weight_block(store_path: str, rows: KernelRows, voxels: slice,
                 fits: Sequence[LosoFit]) -> np.ndarray:
    """One voxel block of each fit's weights ``w = sum_i alpha_i x_i`` and Haufe pattern.

    Returns
    -------
    numpy.ndarray, shape (len(fits), 2, block voxels)
        Weights, then patterns (``X_c^T X_c w / |X_c w|^2`` on the training scans).
    """
    block = read_block(store_path, rows, voxels)
    maps = np.zeros((len(fits), 2, block.shape[1]))
    # Products with vectors over all the block's rows: no copy of its support or training rows.
    for index, fit in enumerate(fits):
        maps[index, 0] = _spread(fit.dual_coef, fit.support_rows, len(block)) @ block
        variance = fit.source @ fit.source
        if variance > 0:
            maps[index, 1] = _spread(fit.source, fit.train_rows, len(block)) @ block / variance
    return maps


def permutation_scores(K: np.ndarray, samples: PairSamples, key: tuple[str, ...], C: float,
                       class_weight: str, seed: int, indices: Sequence[int],
                       metrics: Sequence[str]) -> PermutationScores:
    """Fold scores of a pair under relabellings within each subject's runs (one kernel).

    ``key`` is (``"all"``, class_a, class_b, chunk number); permutation ``i``
    is drawn from the seed, the pair and ``i`` alone
    (:func:`nidecode.analyses.tasks.relabel`).
    """
    names = tuple(dict.fromkeys(("accuracy", *metrics)))
    scores = {name: np.empty((len(indices), len(samples.folds))) for name in names}
    groups = samples.permutation_groups
    for row, index in enumerate(indices):
        labels = relabel(samples.labels, groups, key, seed, index)
        for name, values in fold_scores(K, samples, labels, C, class_weight, names).items():
            scores[name][row] = values
    accuracy = scores.pop("accuracy")
    return PermutationScores(key, np.asarray(indices), accuracy, scores)


# --- orchestration (client) -----------------------------------------------------------------


def block_size(block_voxels: int | None = None) -> int:
    """Voxels per kernel task: ``block_voxels``, the dask config's
    ``nidecode.loso-block-voxels``, else :data:`BLOCK_VOXELS`."""
    if block_voxels is None:
        block_voxels = int(dask.config.get("nidecode.loso-block-voxels", BLOCK_VOXELS))
    return check_per_task(block_voxels, "block_voxels", "decode")


def execute_loso_decode(run: LosoRun, client: Client, *, progress: bool = True,
                        block_voxels: int | None = None) -> pd.DataFrame:
    """Compute the kernel, the folds and the all-subjects maps; write the outputs.

    Returns
    -------
    pandas.DataFrame
        The summary table (one row per pair, ``subject`` ``"all"``).
    """
    saved = run.output.load_parts(PairResult)
    todo = [pair for pair in run.pairs if pair.key not in saved]
    submitted = time.perf_counter()
    n_blocks = 0
    if todo:
        blocks = voxel_blocks(int(run.mask.sum()), block_size(block_voxels))
        n_blocks = len(blocks)
        kernel = submit_kernel(client, run.store_path, run.rows, int(run.mask.sum()),
                               block_size(block_voxels))
        C, class_weight = run.identity["C"], run.identity["class_weight"]
        futures = [client.submit(fold_task, kernel, run.samples[pair.key], C, class_weight,
                                 pair.key, position)
                   for pair in todo for position in range(len(run.samples[pair.key].folds))]
        futures += [client.submit(fit_all_subjects, kernel, run.samples[pair.key], C,
                                  class_weight, pair.key) for pair in todo]
        del kernel  # released once its fits are done: the maps read the store again
        done: dict = {}
        run_tasks(client, futures, on_result=lambda item: done.__setitem__(item[:2], item[2]),
                  count=lambda item: 1, total=len(futures), progress=progress, unit="fit")
        fits = [done[(pair.key, ALL_SUBJECTS)] for pair in todo]
        folds = {pair.key: [done[(pair.key, position)]
                            for position in range(len(run.samples[pair.key].folds))]
                 for pair in todo}
        maps = np.concatenate(client.gather([client.submit(weight_block, run.store_path,
                                                           run.rows, voxels, fits)
                                             for voxels in blocks]), axis=2)
        for pair, pair_maps in zip(todo, maps, strict=True):
            result = _pair_result(run, pair, folds[pair.key], pair_maps)
            run.output.save_part(result)
            saved[pair.key] = result
    computed = time.perf_counter()
    results = [saved[pair.key] for pair in run.pairs]
    summary = _write_decode_outputs(run, results)
    n_fits = sum(len(result.folds) + 1 for result in results)
    write_complete_manifest(
        run, run.identity, client, submitted, computed, design=loso_design(run),
        parameters={**run.identity, "block_voxels": block_size(block_voxels)},
        counts={"subjects": len(run.designs), "pairs": len(run.pairs),
                "pairs_computed": len(todo), "fits": n_fits,
                "kernel_rows": run.rows.n_rows, "voxel_blocks": n_blocks})
    return summary


def write_complete_manifest(run, identity: dict, client, submitted: float, computed: float, *,
                            design: dict, counts: dict, **fields) -> None:
    """run.json of a finished leave-one-subject-out run (decode, permute, searchlight).

    ``fields`` (e.g. ``parameters``) come after the identity and versions."""
    run.output.write_manifest({
        "status": "complete", "identity": identity, "versions": versions(), **fields,
        "counts": counts, "timings": phase_timings(run.started, submitted, computed),
        "cluster": describe(client),
        "background": run.output.write_background(run.store_path, run.rows.subjects[0],
                                                  run.rows.checksums[0]),
        "notes": run.notes, "design": design,
    })


def loso_design(run: LosoRun) -> dict:
    """The design for run.json and the report: folds are subjects; pairs and their test pairs."""
    return {"cv": LOSO, "folds": "subjects", "subjects": list(run.rows.subjects),
            "pairs": [{"train": [pair.class_a, pair.class_b], "test": list(pair.test_pair)}
                      for pair in run.pairs]}


def majority_rates(samples: PairSamples) -> np.ndarray:
    """Chance of each fold: the share of the larger class among its test samples."""
    classes = np.unique(samples.labels[samples.trainable])
    return np.array([max(np.mean(samples.labels[fold.test] == name) for name in classes)
                     for fold in samples.folds])


def _pair_result(run: LosoRun, pair: PairJob, folds: list[dict[str, float]],
                 maps: np.ndarray) -> PairResult:
    samples = run.samples[pair.key]
    held_out = np.array([run.rows.subjects[fold.fold] for fold in samples.folds])
    scores = {metric: np.array([fold[metric] for fold in folds]) for metric in METRICS}
    return PairResult(ALL_SUBJECTS, pair.class_a, pair.class_b, held_out, scores["accuracy"],
                      np.array([len(fold.train) for fold in samples.folds]),
                      np.array([len(fold.test) for fold in samples.folds]), maps[0][None],
                      np.empty(0, int), np.empty(0), scores["balanced_accuracy"],
                      scores["roc_auc"], maps[1], *pair.test_pair)


def _write_decode_outputs(run: LosoRun, results: list[PairResult]) -> pd.DataFrame:
    chance = {pair.key: majority_rates(run.samples[pair.key]) for pair in run.pairs}
    scores = scores_table(results, chance, run.identity["scoring"])
    summary = summary_table(scores)
    for result in results:
        run.output.write_image(weights_name(*result.key),
                               to_nifti(result.coef[0], run.mask, run.affine))
        run.output.write_image(patterns_name(*result.key),
                               to_nifti(result.pattern, run.mask, run.affine))
    run.output.write_table("scores.csv", scores)
    run.output.write_table("summary.csv", summary)
    return summary


def execute_loso_permute(run: LosoRun, client: Client, *, progress: bool = True,
                         block_voxels: int | None = None) -> pd.DataFrame:
    """Permutation tests of every pair across subjects on one kernel; write the outputs.

    Returns
    -------
    pandas.DataFrame
        The p-value table (``permutations/pvalues.csv``).
    """
    identity = run.identity
    saved = run.output.load_parts(PermutationScores)
    chunks = list(enumerate(range(-1, identity["n_permutations"],
                                  identity["permutations_per_task"])))
    tasks = [(pair, _chunk_key(pair, number), range(start, min(
        start + identity["permutations_per_task"], identity["n_permutations"])))
        for pair, (number, start) in itertools.product(run.pairs, chunks)]
    todo = [task for task in tasks if task[1] not in saved]
    submitted = time.perf_counter()
    if todo:
        kernel = submit_kernel(client, run.store_path, run.rows, int(run.mask.sum()),
                               block_size(block_voxels))
        futures = [client.submit(permutation_scores, kernel, run.samples[pair.key], key,
                                 identity["C"], identity["class_weight"], identity["seed"],
                                 indices, identity["scoring"]) for pair, key, indices in todo]
        n_done = sum(len(indices) for _, key, indices in tasks if key in saved)
        run_tasks(client, futures, on_result=lambda part: (run.output.save_part(part),
                                                           saved.__setitem__(part.key, part)),
                  count=lambda part: len(part.indices),
                  total=sum(len(indices) for _, _, indices in tasks), initial=n_done,
                  progress=progress, unit="permutation")
    computed = time.perf_counter()
    table = _write_permute_outputs(run, {pair.key: [saved[key] for item, key, _ in tasks
                                                    if item == pair]
                                         for pair in run.pairs})
    write_complete_manifest(
        run, identity, client, submitted, computed, design=loso_design(run),
        counts={"subjects": len(run.designs), "tasks": len(tasks),
                "tasks_computed": len(todo), "kernel_rows": run.rows.n_rows})
    return table


def _chunk_key(pair: PairJob, number: int) -> tuple[str, ...]:
    return (*pair.key, f"{number:05d}")


def _write_permute_outputs(run: LosoRun, parts: dict) -> pd.DataFrame:
    from nidecode.analyses.permute import _metric_p_value, _observed_and_null

    rows, scores = [], []
    others = [metric for metric in run.identity["scoring"] if metric != "accuracy"]
    for pair in run.pairs:
        samples = run.samples[pair.key]
        observed, null_folds = _observed_and_null(parts[pair.key])
        null = null_folds.mean(axis=1)
        run.output.write_array(null_name(*pair.key), null)
        names = {"subject": ALL_SUBJECTS, "class_a": pair.class_a, "class_b": pair.class_b,
                 "test_a": pair.test_pair[0], "test_b": pair.test_pair[1]}
        row = {**names, "accuracy": observed.mean(),
               "p_value": permutation_p_value(observed.mean(), null),
               "n_permutations": len(null),
               "n_distinct_permutations": count_distinct_permutations(
                   samples.labels, samples.permutation_groups),
               "null_mean": null.mean(), "null_std": null.std()}
        fold_values = {"accuracy": observed, "chance": null_folds.mean(axis=0)}
        for metric in others:
            row.update(_metric_p_value(run, parts[pair.key], pair.key, metric))
            fold_values[metric] = _observed_and_null(parts[pair.key], metric)[0]
        rows.append(row)
        held_out = [run.rows.subjects[fold.fold] for fold in samples.folds]
        scores.append(pd.DataFrame({**names, "fold": held_out, **fold_values}))
    table = pd.DataFrame(rows)
    run.output.write_table("permutations/pvalues.csv", table)
    run.output.write_table("summary.csv", summary_table(pd.concat(scores, ignore_index=True)))
    return table


